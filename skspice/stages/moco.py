"""Stage 1: contrastive feature learning with MoCo v2.

Two augmented views of each image go through a query encoder and a slowly
moving (momentum) key encoder; InfoNCE pulls a query towards its own key and
away from a queue of keys of earlier batches.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import SINGLE
from ..samples import as_samples
from ..training import Stage, cosine_schedule, iterate_minibatches, run_stage

__all__ = ["MoCo", "MoCoStage", "train_feature_model"]


def _projection(in_features, dim):
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, dim),
    )


class MoCo(nn.Module):
    """MoCo v2: query encoder, momentum key encoder and a queue of keys.

    Parameters
    ----------
    backbone : torch.nn.Module
        Feature extractor with ``out_features``; trained in place.
    dim : int, default=128
        Width of the projection (MLP head) output.
    queue_size : int, default=4096
        Negative keys kept.
    momentum : float, default=0.99
        Key-encoder momentum.
    temperature : float, default=0.2
        InfoNCE temperature (MoCo v2 / SPICE use 0.2).
    ctx : Context, default=SINGLE
        Distributed context (:mod:`skspice.distributed`). With several
        ranks, the key batch is shuffled across all ranks before the key
        encoder (shuffle-BN) and the keys of every rank enter the queue.
    """

    def __init__(
        self,
        backbone,
        dim=128,
        queue_size=4096,
        momentum=0.99,
        temperature=0.2,
        ctx=SINGLE,
    ):
        super().__init__()
        self.ctx = ctx
        self.encoder_q = nn.Sequential(
            backbone, _projection(backbone.out_features, dim)
        )
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad_(False)
        self.momentum = momentum
        self.temperature = temperature
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        #: Share of queries whose own key scored highest in the last batch.
        self.last_accuracy = torch.zeros(())

    @torch.no_grad()
    def momentum_update(self):
        """Move the key encoder towards the query encoder."""
        for pk, pq in zip(self.encoder_k.parameters(), self.encoder_q.parameters()):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def _keys(self, x, gen):
        """Normalised keys of every rank's key views (in rank order) and where
        this rank's keys start among them."""
        # MoCo's shuffled BatchNorm: the key batch (of all ranks) is permuted
        # and normalised in independent sub-batches, so batch statistics
        # cannot leak which key belongs to which query. On one process the
        # sub-batches stand in for the reference's GPUs.
        ctx = self.ctx
        x_all, offset = ctx.gather(x, return_offset=True)
        n = x_all.shape[0]
        perm = torch.randperm(n, generator=gen).to(x.device)  # same on all ranks
        chunks = max(1, min(4, n // 32) // ctx.world_size)
        mine = ctx.shard(x_all[perm])
        k = torch.cat([self.encoder_k(c) for c in mine.chunk(chunks)])
        k = ctx.gather(k)
        out = torch.empty_like(k)
        out[perm] = k
        return F.normalize(out, dim=1), offset

    @torch.no_grad()
    def _enqueue(self, keys):
        n, b = self.queue.shape[0], keys.shape[0]
        keys = keys.to(self.queue.dtype)  # bf16/fp16 under autocast
        if b > n:  # a batch larger than the queue: only its newest n keys fit
            self.queue_ptr.add_(b - n)
            keys = keys[-n:]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % n
        self.queue[idx] = keys
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % n)

    def forward(self, x_q, x_k, gen):
        """InfoNCE loss of a batch of query and key views (and enqueue keys).

        Parameters
        ----------
        x_q, x_k : torch.Tensor
            Two augmented views of the same images.
        gen : torch.Generator
            CPU generator for the key shuffle.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        q = F.normalize(self.encoder_q(x_q), dim=1)
        k_all, offset = self._keys(x_k, gen)
        k = k_all[offset : offset + q.shape[0]]
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone().T
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, target)
        # Instance-discrimination accuracy (own key above every queued key),
        # kept on the device: reading it would synchronise.
        self.last_accuracy = (logits.detach().argmax(1) == 0).float().mean()
        self._enqueue(k_all)
        return loss


class MoCoStage(Stage):
    """Stage 1 as a :class:`~skspice.training.Stage`.

    Parameters
    ----------
    moco : MoCo
        The model (on ``device``).
    data : Samples or torch.Tensor
        All training samples (see :mod:`skspice.samples`).
    augmenter : ImageAugmenter or TabularAugmenter
        Supplies ``contrastive`` views.
    batch_size : int
        Images per step.
    gen, device_gen : torch.Generator
        CPU generator (shuffling) and one on ``device`` (augmentation).
    device : torch.device
        Where training runs.
    ctx : Context, default=SINGLE
        Distributed context: each rank takes its share of every batch and
        runs ``moco`` through DistributedDataParallel.
    """

    name = "feature"

    def __init__(
        self, moco, data, augmenter, batch_size, gen, device_gen, device, ctx=SINGLE
    ):
        self.moco, self.data, self.augmenter = moco, as_samples(data), augmenter
        self.ctx = ctx
        self.model = ctx.wrap(moco, device)
        self.batch_size, self.gen, self.device_gen = batch_size, gen, device_gen
        self.device = device
        self._accuracy, self._steps = 0.0, 0

    def parameters(self):
        return [p for p in self.moco.parameters() if p.requires_grad]

    def steps_per_epoch(self):
        n = len(self.data)
        return max(1, n // min(self.batch_size, n))

    def batches(self, epoch):
        self.moco.train()
        self._accuracy, self._steps = 0.0, 0
        order = [
            self.ctx.shard(idx)
            for idx in iterate_minibatches(len(self.data), self.batch_size, self.gen)
        ]
        for x in self.data.stream(order, self.device):
            yield (
                self.augmenter.contrastive(x, self.device_gen),
                self.augmenter.contrastive(x, self.device_gen),
            )

    def loss(self, batch):
        loss = self.model(batch[0], batch[1], self.gen)
        self._accuracy = self._accuracy + self.moco.last_accuracy
        self._steps += 1
        return loss

    def after_step(self):
        self.moco.momentum_update()

    def progress_values(self):
        """Instance-discrimination accuracy of the epoch so far.

        Returns
        -------
        dict
            ``inst_acc``: share of the epoch's queries so far whose own key
            scores above every queued key (empty before the first step).
        """
        if not self._steps:
            return {}
        return {"inst_acc": float(self._accuracy) / self._steps}

    def state_dict(self):
        return {"moco": self.moco.state_dict()}

    def load_state_dict(self, state):
        self.moco.load_state_dict(state["moco"])


def train_feature_model(
    backbone,
    data,
    augmenter,
    *,
    epochs,
    batch_size,
    lr,
    dim,
    queue_size,
    momentum,
    temperature,
    gen,
    device_gen,
    device,
    history=None,
    verbose=0,
    checkpoint=None,
    precision=None,
    ctx=SINGLE,
):
    """Train ``backbone`` in place with MoCo v2 (SGD, cosine schedule).

    Parameters
    ----------
    backbone : torch.nn.Module
        Feature extractor (on ``device``), trained in place.
    data : Samples or torch.Tensor
        Training samples.
    augmenter : ImageAugmenter or TabularAugmenter
        Supplies contrastive views.
    epochs, batch_size : int
        Length of training and images per step.
    lr : float
        Initial SGD learning rate (momentum 0.9, weight decay 5e-4).
    dim, queue_size, momentum, temperature
        See :class:`MoCo`.
    gen, device_gen : torch.Generator
        CPU and ``device`` generators.
    device : torch.device
        Where training runs.
    history : list, optional
        Receives per-epoch records.
    verbose : int, default=0
        Progress printing.
    checkpoint : Checkpointer, optional
        Resume from and save epoch-end checkpoints.
    precision : torch.dtype, optional
        Autocast dtype (None: fp32); see :mod:`skspice.precision`.
    ctx : Context, default=SINGLE
        Distributed context (:mod:`skspice.distributed`).

    Returns
    -------
    moco : MoCo
        The trained MoCo model (its ``encoder_q[0]`` is ``backbone``).
    """
    moco = MoCo(backbone, dim, queue_size, momentum, temperature, ctx).to(device)
    # Every rank starts from rank 0's initial weights and queue.
    ctx.broadcast_module(moco)
    stage = MoCoStage(moco, data, augmenter, batch_size, gen, device_gen, device, ctx)
    opt = torch.optim.SGD(stage.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = cosine_schedule(opt, epochs * stage.steps_per_epoch())
    run_stage(
        stage,
        opt,
        epochs,
        scheduler=sched,
        history=history,
        verbose=verbose,
        checkpoint=checkpoint,
        device=device,
        precision=precision,
        ctx=ctx,
    )
    # Query BatchNorm statistics are per rank: keep rank 0's everywhere.
    ctx.broadcast_module(moco)
    return moco

"""Stage 2: SPICE-Self, clustering heads trained by prototype pseudo-labels.

The backbone is frozen. Several heads are trained at once: for each large
"pseudo-label batch" of ``M`` samples, every head's probabilities on weak
views pick its cluster prototypes (``prototype_pseudo_labels`` on the clean
embeddings), and the head learns those labels by cross-entropy on
strong views. After every epoch each head is scored by the same
pseudo-labelling on the whole data set and the head (and epoch) with the
lowest loss is kept: a label-free choice, unlike the reference code's
``checkpoint_best``, which is chosen by ground-truth accuracy.

Deviations from the reference code, both deliberate:

* the heads output logits and the loss is one cross-entropy over them; the
  reference applies softmax in the head and again inside the loss (a "double
  softmax" that flattens the gradients);
* the frozen backbone stays in evaluation mode, so its BatchNorm statistics
  do not drift on strongly augmented images (the reference calls
  ``model.train()`` on the frozen backbone).

The heads can also start from KMeans partitions (``head_init="kmeans"``,
which ``SPICEClustering`` uses for a frozen backbone): before SPICE-Self
each head learns its own KMeans partition of the prototype space by a short
cross-entropy fit (:func:`kmeans_partitions`,
:func:`fit_heads_to_partitions`). The reference starts from random heads.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from ..distributed import SINGLE
from ..pseudo_labels import prototype_pseudo_labels
from ..samples import as_samples
from ..training import Stage, apply_in_batches, iterate_minibatches, run_stage

__all__ = [
    "SELF",
    "ClusterHeads",
    "SelfLabelSettings",
    "SelfLabelStage",
    "fit_heads_to_partitions",
    "kmeans_partitions",
    "train_self_label",
]


@dataclass(frozen=True)
class SelfLabelSettings:
    """Stage-2 settings that are not estimator parameters, in one place.

    Parameters
    ----------
    pseudo_batch_per_cluster : int
        ``M / K``: samples per pseudo-labelling round and cluster (the
        reference's 500); ``M`` is at most the data-set size.
    batch_size : int
        Pseudo-labelled samples per optimiser step.
    n_repeat : int
        Passes over each round's pseudo-labelled samples.
    center_ratio : float
        Fraction of the per-cluster quota used to build prototypes.
    init_steps : int
        Optimiser steps of the KMeans warm start (``head_init="kmeans"``).
    init_batch_size : int
        Samples per warm-start step.
    init_lr : float
        Adam learning rate of the warm start.
    whiten_components : int
        Principal components kept by ``prototype_space="whitened"``
        (:func:`~skspice.pseudo_labels.whitened`).
    whiten_shrinkage_per_cluster : int
        Its shrinkage: the variance of component ``this * n_clusters`` is
        added to every component's before scaling, so that classes that are
        already far apart stay so.
    spectral_whitened : bool
        Whether ``prototype_space="spectral"`` builds its neighbour graph on
        the whitened embeddings (above settings) rather than on the
        embeddings themselves: the whitened graph's neighbours follow the
        classes more than the few dominant nuisance directions do.
    spectral_min_per_cluster : int
        ``prototype_space="auto"`` uses ``"spectral"`` for a backbone that
        stage 3 trains when there are at least this many samples per
        cluster (below, the embedding): on digits, 180 per cluster,
        spectral prototypes cost SPICE-Self 0.10-0.19.
    """

    pseudo_batch_per_cluster: int = 500
    batch_size: int = 128
    n_repeat: int = 8
    center_ratio: float = 0.5
    init_steps: int = 100
    init_batch_size: int = 1024
    init_lr: float = 1e-2
    whiten_components: int = 64
    whiten_shrinkage_per_cluster: int = 2
    spectral_whitened: bool = True
    spectral_min_per_cluster: int = 1000


#: The stage-2 settings ``SPICEClustering`` uses.
SELF = SelfLabelSettings()


def kmeans_partitions(space, n_clusters, n_partitions, random_state):
    """One KMeans partition of ``space`` per head, each from its own start.

    Parameters
    ----------
    space : torch.Tensor of shape (n, m)
        The coordinates prototypes are built in (L2-normalised).
    n_clusters : int
        Clusters per partition.
    n_partitions : int
        How many partitions (one per head).
    random_state : int
        Seeds the partitions' starts (one k-means++ start each, so the heads
        begin from different partitions).

    Returns
    -------
    ndarray of int64, shape (n_partitions, n)
    """
    x = space.detach().cpu().float().numpy()
    seeds = np.random.RandomState(random_state).randint(
        np.iinfo(np.int32).max, size=n_partitions
    )
    with warnings.catch_warnings():
        # Duplicate points (e.g. untrained features) make KMeans warn that it
        # found fewer distinct clusters; SPICE-Self goes on from there and
        # the estimator warns if clusters end up empty.
        warnings.simplefilter("ignore", ConvergenceWarning)
        parts = [
            KMeans(n_clusters, n_init=1, random_state=s).fit_predict(x) for s in seeds
        ]
    return np.stack(parts).astype(np.int64)


def fit_heads_to_partitions(
    heads, features, partitions, *, steps, batch_size, lr, gen, device
):
    """Warm-start every head on its partition by cross-entropy.

    Parameters
    ----------
    heads : ClusterHeads
        Heads to train, in place (on ``device``).
    features : torch.Tensor of shape (n, d)
        The heads' inputs (CPU).
    partitions : array-like of int, shape (n_heads, n)
        Head ``h`` learns to predict ``partitions[h]``.
    steps, batch_size : int
        Adam steps, and samples drawn (with replacement) per step.
    lr : float
        Adam learning rate.
    gen : torch.Generator
        CPU generator that draws the samples.
    device : torch.device
        Where training runs.

    Returns
    -------
    torch.Tensor of shape (n_heads,)
        Each head's agreement with its partition afterwards (fraction of
        samples whose top cluster is the partition's).
    """
    labels = torch.as_tensor(np.asarray(partitions), dtype=torch.long)
    n = features.shape[0]
    opt = torch.optim.Adam(heads.parameters(), lr=lr)
    heads.train()
    for _ in range(steps):
        idx = torch.randint(n, (min(batch_size, n),), generator=gen)
        logits = heads(features[idx].to(device).float())  # (H, b, K)
        target = labels[:, idx].to(device)  # (H, b)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    heads.eval()
    with torch.no_grad():
        top = apply_in_batches(
            lambda f: heads(f).argmax(-1).T, features, 4096, device
        ).T  # (H, n)
    return (top == labels).float().mean(1)


class ClusterHeads(nn.Module):
    """``n_heads`` independent clustering heads, evaluated together.

    Each head is ``Linear(d, d) -> ReLU -> Linear(d, K)`` and returns logits.
    The heads' weights are stacked so that all of them run as two batched
    matrix products: training ten heads costs about as much Python overhead
    as training one.

    Parameters
    ----------
    in_features : int
        Width of the backbone features.
    n_clusters : int
        Output clusters ``K``.
    n_heads : int, default=10
        Number of heads.
    """

    def __init__(self, in_features, n_clusters, n_heads=10):
        super().__init__()
        # Initialise like nn.Linear, head by head, then stack.
        first = [nn.Linear(in_features, in_features) for _ in range(n_heads)]
        second = [nn.Linear(in_features, n_clusters) for _ in range(n_heads)]
        self.w1 = nn.Parameter(torch.stack([m.weight.T for m in first]).detach())
        self.b1 = nn.Parameter(torch.stack([m.bias for m in first]).detach())
        self.w2 = nn.Parameter(torch.stack([m.weight.T for m in second]).detach())
        self.b2 = nn.Parameter(torch.stack([m.bias for m in second]).detach())

    @property
    def n_heads(self):
        """Number of heads."""
        return self.w1.shape[0]

    @property
    def n_clusters(self):
        """Number of clusters ``K``."""
        return self.w2.shape[2]

    def forward(self, features):
        """Compute the logits of every head.

        Parameters
        ----------
        features : torch.Tensor of shape (batch, d) or (n_heads, batch, d)
            The same samples for every head, or each head its own samples.

        Returns
        -------
        torch.Tensor of shape (n_heads, batch, K)
            Logits of every head.
        """
        if features.dim() == 2:
            hidden = torch.einsum("bd,hde->hbe", features, self.w1)
        else:
            hidden = torch.bmm(features, self.w1)
        hidden = torch.relu(hidden + self.b1[:, None])
        return torch.bmm(hidden, self.w2) + self.b2[:, None]

    def head(self, index):
        """Head ``index`` as a stand-alone ``nn.Sequential`` (a copy).

        Parameters
        ----------
        index : int
            Which head, in ``[0, n_heads)``.

        Returns
        -------
        torch.nn.Sequential
            ``Linear(d, d) -> ReLU -> Linear(d, K)`` with that head's weights,
            on the heads' device.
        """
        d, k = self.w2.shape[1], self.w2.shape[2]
        out = nn.Sequential(nn.Linear(self.w1.shape[1], d), nn.ReLU(), nn.Linear(d, k))
        with torch.no_grad():
            out[0].weight.copy_(self.w1[index].T)
            out[0].bias.copy_(self.b1[index])
            out[2].weight.copy_(self.w2[index].T)
            out[2].bias.copy_(self.b2[index])
        return out.to(self.w1.device)


class SelfLabelStage(Stage):
    """Stage 2 as a :class:`~skspice.training.Stage`.

    Parameters
    ----------
    backbone : torch.nn.Module
        Frozen feature extractor (on ``device``).
    heads : ClusterHeads
        Heads to train (on ``device``).
    data : Samples or torch.Tensor
        All samples (see :mod:`skspice.samples`).
    clean_features : torch.Tensor of shape (n, d)
        Backbone features of the un-augmented ``data`` (CPU); the heads'
        inputs when they are scored.
    prototype_space : torch.Tensor of shape (n, m)
        L2-normalised coordinates that prototypes are built from and matched
        against (the normalised ``clean_features`` in the reference, or their
        spectral coordinates).
    augmenter : ImageAugmenter or TabularAugmenter
        Supplies ``weak`` and ``strong`` views.
    pseudo_batch : int
        ``M``: samples per prototype pseudo-labelling round.
    batch_size : int
        Samples per optimiser step.
    n_repeat : int
        Passes over each round's pseudo-labelled samples.
    center_ratio : float
        Fraction of the per-cluster quota used to build prototypes.
    gen, device_gen : torch.Generator
        CPU and ``device`` generators.
    device : torch.device
        Where training runs.
    eval_batch_size : int, default=1024
        Samples per forward pass when every head is scored on the whole data
        set at the end of an epoch.
    encode_batch_size : int, default=1024
        Images per backbone forward pass when a pseudo-label batch is encoded
        (``pseudo_batch`` can be 500 x K images; encoding it in one pass
        would hold all their activations at once).
    ctx : Context, default=SINGLE
        Distributed context: each rank encodes its share of every
        pseudo-label batch (the features are gathered, so all ranks pick the
        same prototypes) and trains on its share of every step's samples,
        through DistributedDataParallel.
    """

    name = "self-label"

    def __init__(
        self,
        backbone,
        heads,
        data,
        clean_features,
        prototype_space,
        augmenter,
        *,
        pseudo_batch,
        batch_size,
        n_repeat,
        center_ratio,
        gen,
        device_gen,
        device,
        eval_batch_size=1024,
        encode_batch_size=1024,
        ctx=SINGLE,
    ):
        data = as_samples(data)
        self.ctx = ctx
        self.model = ctx.wrap(heads, device)
        self.backbone, self.heads, self.data = backbone, heads, data
        self.clean_features = clean_features
        self.embeddings = prototype_space
        self.augmenter = augmenter
        self.pseudo_batch = min(pseudo_batch, len(data))
        self.batch_size, self.n_repeat = batch_size, n_repeat
        self.center_ratio = center_ratio
        self.gen, self.device_gen, self.device = gen, device_gen, device
        self.eval_batch_size = eval_batch_size
        self.encode_batch_size = encode_batch_size
        self.best_loss = float("inf")
        self.best_head = None
        self.best_epoch = None
        self.best_state = None

    def parameters(self):
        return self.heads.parameters()

    def _round_steps(self):
        k = self.heads.n_clusters
        n_labels = (self.pseudo_batch // k) * k
        return max(1, n_labels // min(self.batch_size, n_labels)) * self.n_repeat

    def steps_per_epoch(self):
        return (len(self.data) // self.pseudo_batch) * self._round_steps()

    @torch.no_grad()
    def _encode(self, chunk):
        """Backbone features of weak and strong views of ``chunk``, computed
        ``encode_batch_size`` images at a time."""
        weak, strong = [], []
        parts = self.ctx.shard(chunk).split(self.encode_batch_size)
        for x in self.data.stream(parts, self.device):
            weak.append(self.backbone(self.augmenter.weak(x, self.device_gen)))
            strong.append(self.backbone(self.augmenter.strong(x, self.device_gen)))
        if not weak:  # this rank's share is empty
            weak = strong = [self.clean_features[:0].to(self.device)]
        gather = self.ctx.gather
        return gather(torch.cat(weak).float()), gather(torch.cat(strong).float())

    def batches(self, epoch):
        self.backbone.eval()
        n = len(self.data)
        for chunk in iterate_minibatches(n, self.pseudo_batch, self.gen):
            emb = self.embeddings[chunk].to(self.device, non_blocking=True)
            weak, strong = self._encode(chunk)
            self.heads.eval()
            with torch.no_grad():
                probs = self.heads(weak).softmax(-1)
            # One (positions, labels) list per head; all have the same length.
            picked = [
                prototype_pseudo_labels(p, emb, self.center_ratio)[:2] for p in probs
            ]
            self.heads.train()
            for _ in range(self.n_repeat):
                for pos in iterate_minibatches(
                    picked[0][0].shape[0], self.batch_size, self.gen
                ):
                    pos = self.ctx.shard(pos).to(self.device)
                    yield (
                        torch.stack([strong[idx[pos]] for idx, _ in picked]),
                        torch.stack([lab[pos] for _, lab in picked]),
                    )

    def loss(self, batch):
        features, labels = batch  # (H, b, d), (H, b)
        logits = self.model(features)
        # Every head has b samples, so the overall mean is the mean over heads.
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten())

    @torch.no_grad()
    def head_losses(self):
        """Label-free score of every head on the whole data set.

        Each head's probabilities on clean features are pseudo-labelled with
        ``M = n`` and its cross-entropy on the selected samples is returned.

        Returns
        -------
        torch.Tensor of shape (n_heads,)
        """
        self.heads.eval()
        logits = apply_in_batches(
            lambda f: self.heads(f).transpose(0, 1),
            self.clean_features,
            self.eval_batch_size,
            self.device,
        ).transpose(0, 1)  # (H, n, K)
        out = []
        for lg in logits:
            idx, lab, _ = prototype_pseudo_labels(
                lg.softmax(-1), self.embeddings, self.center_ratio
            )
            out.append(F.cross_entropy(lg[idx], lab))
        return torch.stack(out)

    def end_epoch(self, epoch):
        losses = self.head_losses()
        best = int(losses.argmin())
        if float(losses[best]) < self.best_loss:
            self.best_loss = float(losses[best])
            self.best_head, self.best_epoch = best, epoch + 1
            # head() already returns a detached copy: no second copy needed.
            self.best_state = self.heads.head(best).state_dict()
        return {"best_head_loss": float(losses[best]), "best_head": best}

    def progress_values(self):
        """The head kept so far and its pseudo-label loss.

        Returns
        -------
        dict
            ``best_head`` and ``best_loss`` (empty until the first epoch ends).
        """
        if self.best_head is None:
            return {}
        return {"best_head": self.best_head, "best_loss": self.best_loss}

    def state_dict(self):
        return {
            "heads": self.heads.state_dict(),
            "best_loss": self.best_loss,
            "best_head": -1 if self.best_head is None else self.best_head,
            "best_epoch": -1 if self.best_epoch is None else self.best_epoch,
            "best_state": self.best_state or {},
        }

    def load_state_dict(self, state):
        self.heads.load_state_dict(state["heads"])
        self.best_loss = state["best_loss"]
        self.best_head = None if state["best_head"] < 0 else state["best_head"]
        self.best_epoch = None if state["best_epoch"] < 0 else state["best_epoch"]
        self.best_state = state["best_state"] or None


def train_self_label(
    backbone,
    data,
    clean_features,
    augmenter,
    *,
    prototype_space=None,
    n_clusters,
    n_heads,
    head_init="random",
    epochs,
    lr,
    pseudo_batch,
    batch_size,
    n_repeat,
    center_ratio,
    gen,
    device_gen,
    device,
    history=None,
    verbose=0,
    checkpoint=None,
    precision=None,
    encode_batch_size=1024,
    ctx=SINGLE,
):
    """Train clustering heads on a frozen backbone and keep the best one.

    Parameters
    ----------
    backbone : torch.nn.Module
        Frozen feature extractor (on ``device``).
    data : Samples or torch.Tensor
        Training samples.
    clean_features : torch.Tensor of shape (n, d)
        Backbone features of the un-augmented samples (CPU).
    augmenter : ImageAugmenter or TabularAugmenter
        Supplies weak and strong views.
    prototype_space : torch.Tensor of shape (n, m), optional
        L2-normalised coordinates for the prototypes; the normalised
        ``clean_features`` (the reference's choice) when None.
    n_clusters, n_heads, epochs : int
        Clusters, heads trained together, and epochs.
    head_init : {"random", "kmeans"}, default="random"
        How the heads start: ``nn.Linear``'s random weights (the
        reference), or each fitted to its own KMeans partition of
        ``prototype_space`` (:func:`kmeans_partitions`,
        :func:`fit_heads_to_partitions`, with :data:`SELF`'s ``init_*``
        settings).
    lr : float
        Adam learning rate (no weight decay, constant, as in SPICE).
    pseudo_batch, batch_size, n_repeat, center_ratio
        See :class:`SelfLabelStage`.
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
    encode_batch_size : int, default=1024
        See :class:`SelfLabelStage`.
    ctx : Context, default=SINGLE
        Distributed context (:mod:`skspice.distributed`).

    Returns
    -------
    head : torch.nn.Module
        The selected head, with the weights of its best epoch.
    info : dict
        ``head`` (index), ``epoch`` and ``loss`` of the selection; with
        ``head_init="kmeans"`` also ``init_agreement``, that head's
        agreement with its KMeans partition after the warm start.
    """
    if prototype_space is None:
        prototype_space = F.normalize(clean_features, dim=1)
    heads = ClusterHeads(clean_features.shape[1], n_clusters, n_heads).to(device)
    init_agreement = None
    if head_init == "kmeans":
        seed = int(torch.randint(np.iinfo(np.int32).max, (1,), generator=gen))
        partitions = kmeans_partitions(prototype_space, n_clusters, n_heads, seed)
        init_agreement = fit_heads_to_partitions(
            heads,
            clean_features,
            partitions,
            steps=SELF.init_steps,
            batch_size=SELF.init_batch_size,
            lr=SELF.init_lr,
            gen=gen,
            device=device,
        )
    elif head_init != "random":
        raise ValueError(f"head_init must be 'random' or 'kmeans', got {head_init!r}")
    ctx.broadcast_module(heads)  # every rank starts from rank 0's heads
    stage = SelfLabelStage(
        backbone,
        heads,
        data,
        clean_features,
        prototype_space,
        augmenter,
        pseudo_batch=pseudo_batch,
        batch_size=batch_size,
        n_repeat=n_repeat,
        center_ratio=center_ratio,
        gen=gen,
        device_gen=device_gen,
        device=device,
        encode_batch_size=encode_batch_size,
        ctx=ctx,
    )
    opt = torch.optim.Adam(heads.parameters(), lr=lr, weight_decay=0.0)
    trainable = [p.requires_grad for p in backbone.parameters()]
    try:
        for p in backbone.parameters():
            p.requires_grad_(False)
        run_stage(
            stage,
            opt,
            epochs,
            history=history,
            verbose=verbose,
            checkpoint=checkpoint,
            device=device,
            precision=precision,
            ctx=ctx,
        )
    finally:
        # The caller's flags come back, also when training fails.
        for p, flag in zip(backbone.parameters(), trainable):
            p.requires_grad_(flag)
    head = heads.head(stage.best_head)
    head.load_state_dict(stage.best_state)
    info = {"head": stage.best_head, "epoch": stage.best_epoch, "loss": stage.best_loss}
    if init_agreement is not None:
        info["init_agreement"] = float(init_agreement[stage.best_head])
    return head, info

"""The one training loop shared by the three SPICE stages.

A stage supplies its batches, its loss and what to do after each optimiser
step (momentum-encoder update, EMA, ...); the loop owns everything else:
optimisation, the learning-rate schedule, the non-finite guard, the history
and progress reporting (:mod:`skspice.progress`). Writing it once keeps the
stages small and makes every stage behave the same under checkpointing and
interruption.
"""

import math
import os
import time

import torch

from .distributed import SINGLE
from .precision import autocast, grad_scaler
from .progress import StageProgress
from .samples import as_samples, whole_data_array

__all__ = ["Checkpointer", "Stage", "cosine_schedule", "run_stage"]


class Stage:
    """What a SPICE stage hands to :func:`run_stage`.

    Subclasses set ``name`` and implement :meth:`batches` and :meth:`loss`.
    """

    #: Human-readable stage name used in messages and the history.
    name = "stage"

    def parameters(self):
        """Parameters the optimiser updates."""
        raise NotImplementedError

    def steps_per_epoch(self):
        """Optimiser steps in one epoch (for the schedule)."""
        raise NotImplementedError

    def batches(self, epoch):
        """Yield the batches of one epoch; each is passed to :meth:`loss`.

        Parameters
        ----------
        epoch : int
            Index of the epoch, from 0.

        Yields
        ------
        object
            Whatever :meth:`loss` takes.
        """
        raise NotImplementedError

    def loss(self, batch):
        """Scalar loss of one batch, with a graph to differentiate.

        Parameters
        ----------
        batch : object
            One item yielded by :meth:`batches`.

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        raise NotImplementedError

    def after_step(self):
        """Hook run after every optimiser step."""

    def end_epoch(self, epoch):
        """Hook run after every epoch; returns extra values for the history.

        Parameters
        ----------
        epoch : int
            Index of the epoch that ended, from 0.

        Returns
        -------
        dict
            Added to the epoch's record in the history.
        """
        return {}

    def progress_values(self):
        """Values shown next to the loss on the progress bar (``verbose >= 1``).

        Read as often as the bar redraws (10 times a second at most) and
        after every epoch, so reading them may synchronise the device; keep
        them few and short (numbers).

        Returns
        -------
        dict of str to number
        """
        return {}

    def state_dict(self):
        """Everything a checkpoint needs to resume this stage (tensors, numbers).

        Returns
        -------
        dict
            Read back by :meth:`load_state_dict`.
        """
        return {}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned.

        Parameters
        ----------
        state : dict
            A value returned by :meth:`state_dict`.
        """


class Checkpointer:
    """Atomic epoch-end checkpoints of every stage, in one file.

    The file holds, per stage, the stage's state, the optimiser and schedule,
    the random-generator states and the training history at the end of the
    last finished epoch, plus free-form ``meta`` (e.g. the seed). Each save
    writes a temporary file and renames it, so a run killed mid-write leaves
    the previous checkpoint intact.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file; loaded if it exists.
    generators : list of torch.Generator
        Generators whose states are saved and restored with each stage.
    """

    def __init__(self, path, generators):
        self.path = os.fspath(path)
        self.generators = list(generators)
        self.state = {"meta": {}, "stages": {}}
        if os.path.exists(self.path):
            try:
                self.state = torch.load(
                    self.path, map_location="cpu", weights_only=True
                )
            except Exception as exc:
                raise ValueError(
                    f"checkpoint {self.path!r} is unreadable ({exc}); delete it to "
                    "start afresh."
                ) from exc

    @property
    def meta(self):
        """Free-form values saved with the checkpoint."""
        return self.state["meta"]

    def _rng_state(self):
        state = {
            "torch": torch.get_rng_state(),
            "generators": [g.get_state() for g in self.generators],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _set_rng_state(self, state):
        torch.set_rng_state(state["torch"])
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s)
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def restore(self, stage, optimizer, scheduler, history, scaler=None):
        """Load ``stage``'s saved state; return the number of finished epochs.

        Parameters
        ----------
        stage : Stage
            The stage to restore (found by its ``name``).
        optimizer : torch.optim.Optimizer
            Its optimiser, restored in place.
        scheduler : torch.optim.lr_scheduler.LRScheduler or None
            Its schedule, restored in place.
        history : list of dict
            Replaced in place by the saved history.
        scaler : torch.amp.GradScaler, optional
            fp16 gradient scaler, restored in place.

        Returns
        -------
        int
            Epochs already finished; 0 when nothing was saved for ``stage``.
        """
        saved = self.state["stages"].get(stage.name)
        if saved is None:
            return 0
        stage.load_state_dict(saved["stage"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        self._set_rng_state(saved["rng"])
        history[:] = saved["history"]
        return int(saved["epoch"])

    def save(self, stage, optimizer, scheduler, epochs_done, history, scaler=None):
        """Record ``stage`` after ``epochs_done`` epochs and write the file.

        Parameters
        ----------
        stage : Stage
            The stage to save (under its ``name``).
        optimizer : torch.optim.Optimizer
            Its optimiser.
        scheduler : torch.optim.lr_scheduler.LRScheduler or None
            Its schedule.
        epochs_done : int
            Epochs finished so far.
        history : list of dict
            The training history so far.
        scaler : torch.amp.GradScaler, optional
            fp16 gradient scaler.
        """
        self.state["stages"][stage.name] = {
            "epoch": epochs_done,
            "stage": stage.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "rng": self._rng_state(),
            "history": [dict(r) for r in history],
            "scaler": scaler.state_dict() if scaler is not None else {},
        }
        self.write()

    def write(self):
        """Write the checkpoint atomically (temporary file, then rename)."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        torch.save(self.state, tmp)
        os.replace(tmp, self.path)

    def remove(self):
        """Delete the checkpoint file (after a finished fit)."""
        if os.path.exists(self.path):
            os.remove(self.path)


def cosine_schedule(optimizer, total_steps, end_factor=0.0, warmup_steps=0):
    """Per-step cosine decay (with optional linear warm-up) as a scheduler.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Optimiser whose learning rates are scaled.
    total_steps : int
        Steps until the end of the schedule.
    end_factor : float, default=0.0
        Fraction of the initial rate reached at the end.
    warmup_steps : int, default=0
        Steps of linear warm-up from zero.

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
    """
    total_steps = max(1, int(total_steps))

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return end_factor + (1 - end_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_stage(
    stage,
    optimizer,
    n_epochs,
    *,
    scheduler=None,
    history=None,
    verbose=0,
    start_epoch=0,
    on_epoch_end=None,
    checkpoint=None,
    device=None,
    precision=None,
    ctx=SINGLE,
):
    """Train one stage for ``n_epochs`` epochs.

    Parameters
    ----------
    stage : Stage
        Supplies batches, the loss and hooks.
    optimizer : torch.optim.Optimizer
        Optimiser over ``stage.parameters()``.
    n_epochs : int
        Total epochs (including those before ``start_epoch``).
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every optimiser step.
    history : list, optional
        Receives one dict per epoch: ``stage``, ``epoch`` (1-based),
        ``loss`` (mean over the epoch's steps), ``seconds`` and the values
        returned by ``stage.end_epoch``.
    verbose : int, default=0
        0: silent; 1: a tqdm progress bar on stderr over all the stage's steps
        (``stage.steps_per_epoch() * n_epochs``), updated every step, with the
        epoch's running loss and ``stage.progress_values()``; 2 and more:
        also one line per epoch on stdout. Whatever ``verbose`` is, every
        epoch is logged at INFO level on the ``skspice.progress`` logger (the
        history values; the record itself as the log record's
        ``history_record``). See :mod:`skspice.progress`.
    start_epoch : int, default=0
        First epoch to run (0-based), to resume from a checkpoint.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch)`` after each epoch.
    checkpoint : Checkpointer, optional
        Resume from this stage's saved state (overriding ``start_epoch``) and
        save after every epoch.
    device : torch.device, optional
        Where the stage computes (for autocast); the CPU when None.
    precision : torch.dtype, optional
        Autocast dtype of the forward passes (batches and loss) from
        :func:`~skspice.precision.resolve_precision`; None for fp32. fp16
        adds a gradient scaler; backward passes run outside autocast.
    ctx : Context, default=SINGLE
        The distributed context (:mod:`skspice.distributed`): only rank 0
        shows progress and writes checkpoints; every rank reads them.

    Returns
    -------
    history : list of dict
    """
    history = [] if history is None else history
    device = torch.device("cpu") if device is None else device
    scaler = grad_scaler(device, precision)
    verbose = verbose if ctx.is_main else 0
    if checkpoint is not None:
        start_epoch = checkpoint.restore(stage, optimizer, scheduler, history, scaler)
    with StageProgress(stage, n_epochs, start_epoch, verbose) as progress:
        for epoch in range(start_epoch, n_epochs):
            progress.start_epoch(epoch)
            start = time.perf_counter()
            total, steps = 0.0, 0
            batches = iter(stage.batches(epoch))
            while True:
                # Views and forward passes in low precision; backward and the
                # optimiser step outside autocast, as PyTorch recommends.
                with autocast(device, precision):
                    batch = next(batches, None)
                    if batch is None:
                        break
                    loss = stage.loss(batch).float()
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{stage.name}: the loss became {loss.item()} at epoch "
                        f"{epoch + 1}, step {steps + 1}. Training diverged; try a "
                        "lower learning rate or a smaller batch size."
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                stage.after_step()
                total += loss.item()
                steps += 1
                progress.step(total / steps)
            record = {
                "stage": stage.name,
                "epoch": epoch + 1,
                "loss": total / max(steps, 1),
            }
            record.update(stage.end_epoch(epoch))
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            progress.end_epoch(record)
            if checkpoint is not None and ctx.is_main:
                checkpoint.save(stage, optimizer, scheduler, epoch + 1, history, scaler)
            if on_epoch_end is not None:
                on_epoch_end(epoch)
    return history


def iterate_minibatches(n, batch_size, gen, drop_last=True):
    """Yield index tensors of one shuffled pass over ``n`` samples.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Indices per batch (capped at ``n``).
    gen : torch.Generator
        CPU generator for the permutation.
    drop_last : bool, default=True
        Skip a final incomplete batch (unless it is the only one).

    Yields
    ------
    torch.Tensor of int64
    """
    batch_size = min(batch_size, n)
    order = torch.randperm(n, generator=gen)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, max(stop, batch_size), batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def apply_in_batches(fn, data, batch_size, device, precision=None, ctx=SINGLE):
    """Evaluate ``fn`` on ``data`` chunk by chunk, gathering results on the CPU.

    Parameters
    ----------
    fn : callable
        Maps a float32 batch on ``device`` to a tensor.
    data : Samples or torch.Tensor
        The samples (:class:`~skspice.samples.Samples` convert stored uint8
        images batch by batch).
    batch_size : int
        Samples per chunk; bounds memory.
    device : torch.device
        Where ``fn`` runs.
    precision : torch.dtype, optional
        Autocast dtype (None: fp32).
    ctx : Context, default=SINGLE
        In a distributed fit each rank evaluates a contiguous share of
        ``data`` and the shares are gathered, so every rank returns the
        whole result.

    Returns
    -------
    torch.Tensor
        The outputs in order on the CPU, float32 for floating outputs;
        memory-mapped when larger than a share of the available memory
        (:func:`~skspice.samples.whole_data_array`).
    """
    device = torch.device(device)
    data = as_samples(data)
    mine = ctx.share_range(len(data))
    start, stop = mine.start, mine.stop
    result, pos = None, 0
    batches = data.batches(batch_size, device, start, stop) if stop > start else ()
    for x in batches:
        with autocast(device, precision):
            out = fn(x)
        out = (out.float() if out.is_floating_point() else out).cpu()
        if result is None:  # the output's width is known at the first batch
            result = whole_data_array((stop - start,) + out.shape[1:], out.dtype)
        result[pos : pos + len(out)] = out
        pos += len(out)
    if result is None:  # an empty share: a zero-length output of the right shape
        with autocast(device, precision):
            out = fn(data.fetch(slice(0, 1), device))[:0]
        result = (out.float() if out.is_floating_point() else out).cpu()
    return ctx.gather(result)

"""The one training loop shared by the three SPICE stages.

A stage supplies its batches, its loss and what to do after each optimiser
step (momentum-encoder update, EMA, ...); the loop owns everything else:
optimisation, the learning-rate schedule, the non-finite guard, the history
and progress printing. Writing it once keeps the stages small and makes every
stage behave the same under checkpointing and interruption.
"""

import math
import time

import torch

__all__ = ["Stage", "cosine_schedule", "run_stage"]


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
        """Yield the batches of one epoch; each is passed to :meth:`loss`."""
        raise NotImplementedError

    def loss(self, batch):
        """Scalar loss of one batch, with a graph to differentiate."""
        raise NotImplementedError

    def after_step(self):
        """Hook run after every optimiser step."""

    def end_epoch(self, epoch):
        """Hook run after every epoch; returns extra values for the history."""
        return {}


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
        Print one line per epoch when positive.
    start_epoch : int, default=0
        First epoch to run (0-based), to resume from a checkpoint.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch)`` after each epoch (e.g. to save a
        checkpoint).

    Returns
    -------
    history : list of dict
    """
    history = [] if history is None else history
    for epoch in range(start_epoch, n_epochs):
        start = time.perf_counter()
        total, steps = 0.0, 0
        for batch in stage.batches(epoch):
            loss = stage.loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{stage.name}: the loss became {loss.item()} at epoch "
                    f"{epoch + 1}, step {steps + 1}. Training diverged; try a lower "
                    "learning rate or a smaller batch size."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            stage.after_step()
            total += loss.item()
            steps += 1
        record = {
            "stage": stage.name,
            "epoch": epoch + 1,
            "loss": total / max(steps, 1),
        }
        record.update(stage.end_epoch(epoch))
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        if verbose > 0:
            extras = " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in record.items()
                if k not in ("stage", "epoch")
            )
            print(f"[{stage.name}] epoch {epoch + 1}/{n_epochs} {extras}", flush=True)
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
def apply_in_batches(fn, data, batch_size, device):
    """Evaluate ``fn`` on ``data`` chunk by chunk, gathering results on the CPU.

    Parameters
    ----------
    fn : callable
        Maps a batch on ``device`` to a tensor.
    data : torch.Tensor
        Samples on the CPU (or already on ``device``).
    batch_size : int
        Samples per chunk; bounds memory.
    device : torch.device
        Where ``fn`` runs.

    Returns
    -------
    torch.Tensor
        Concatenated outputs on the CPU.
    """
    outs = [
        fn(data[i : i + batch_size].to(device, non_blocking=True)).cpu()
        for i in range(0, data.shape[0], batch_size)
    ]
    return torch.cat(outs)

"""What a fit shows while it runs: progress bars, messages and log records.

Everything goes through the ``skspice`` loggers at INFO level whatever
``verbose`` is: one record per epoch (its history values) and one at the
start and end of each long phase outside training. On top of that:

* ``verbose=0``: nothing is printed;
* ``verbose=1``: one tqdm bar per stage on stderr (``tqdm.auto``: a widget in
  notebooks), spanning all the stage's optimiser steps and updated after each
  step, its postfix showing the epoch's running loss and the stage's own
  :meth:`~skspice.training.Stage.progress_values`; plus one short line on
  stdout when a long phase (features, kNN, ...) starts;
* ``verbose>=2``: also one line per epoch and one when each phase ends.

Lines are written with ``tqdm.write`` so that they do not break a bar.
"""

import contextlib
import logging
import sys
import time

__all__ = ["StageProgress", "message", "phase"]

logger = logging.getLogger(__name__)


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_values(values):
    """Format values as ``key=value`` pairs, floats with four significant digits.

    Parameters
    ----------
    values : dict

    Returns
    -------
    str
    """
    return " ".join(f"{k}={_format(v)}" for k, v in values.items())


def _write(text):
    from tqdm.auto import tqdm

    # Clears any bar (stderr) while the line goes to stdout, then redraws it.
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def message(verbose, text, level=1, extra=None):
    """Log ``text`` at INFO level and print it when ``verbose >= level``.

    Parameters
    ----------
    verbose : int
        The estimator's ``verbose``.
    text : str
        The message.
    level : int, default=1
        Smallest ``verbose`` that prints it (on stdout, through ``tqdm.write``).
    extra : dict, optional
        Attributes added to the log record.
    """
    logger.info(text, extra=extra)
    if verbose >= level:
        _write(text)


@contextlib.contextmanager
def phase(verbose, text):
    """Report a long step outside training (features of all samples, kNN, ...).

    Logs ``text`` when it starts and ``text: done in S s`` when it ends;
    prints the first at ``verbose >= 1`` and the second at ``verbose >= 2``.

    Parameters
    ----------
    verbose : int
        The estimator's ``verbose``.
    text : str
        What the step does, e.g. ``"[semi] selecting reliable pseudo-labels"``.

    Yields
    ------
    None
    """
    message(verbose, text)
    start = time.perf_counter()
    yield
    message(verbose, f"{text}: done in {time.perf_counter() - start:.1f} s", level=2)


class StageProgress:
    """Progress bar and epoch log records of one :func:`~skspice.training.run_stage`.

    A context manager: the bar is closed (and stays on screen) when the
    stage ends or fails.

    Parameters
    ----------
    stage : Stage
        The stage being trained (its ``name``, ``steps_per_epoch`` and
        ``progress_values``).
    n_epochs : int
        Total epochs of the stage.
    start_epoch : int
        First epoch run (0-based); earlier ones count as done on the bar.
    verbose : int
        0: log only; 1: a bar; 2 and more: a bar and one line per epoch.
    """

    def __init__(self, stage, n_epochs, start_epoch, verbose):
        self.stage, self.n_epochs, self.verbose = stage, n_epochs, verbose
        try:
            per_epoch = int(stage.steps_per_epoch())
        except NotImplementedError:
            per_epoch = None
        self.bar = None
        self._last_postfix = -float("inf")
        logger.info(
            "[%s] epochs %d-%d of %d, %s steps each",
            stage.name,
            start_epoch + 1,
            n_epochs,
            n_epochs,
            "?" if per_epoch is None else per_epoch,
        )
        if verbose > 0 and start_epoch < n_epochs:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=None if per_epoch is None else per_epoch * n_epochs,
                initial=0 if per_epoch is None else per_epoch * start_epoch,
                desc=self._desc(start_epoch),
                unit="step",
                dynamic_ncols=True,
                leave=True,
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the bar; it stays on screen with its last values."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _postfix(self, loss):
        values = {"loss": loss} if loss is not None else {}
        values.update(self.stage.progress_values())
        self.bar.set_postfix_str(
            ", ".join(f"{k}={_format(v)}" for k, v in values.items()), refresh=False
        )

    def _desc(self, epoch):
        return f"{self.stage.name} epoch {epoch + 1}/{self.n_epochs}"

    def start_epoch(self, epoch):
        """Show epoch ``epoch`` (0-based) in the bar's description."""
        if self.bar is not None:
            self.bar.set_description_str(self._desc(epoch), refresh=False)

    def step(self, loss):
        """Advance the bar by one optimiser step; ``loss``: the epoch's mean so far."""
        if self.bar is None:
            return
        # New values about as often as tqdm redraws (its ``mininterval``).
        now = time.monotonic()
        if now - self._last_postfix >= self.bar.mininterval:
            self._last_postfix = now
            self._postfix(loss)
        self.bar.update(1)

    def end_epoch(self, record):
        """Log the epoch's history ``record``; print it at ``verbose >= 2``."""
        values = {k: v for k, v in record.items() if k not in ("stage", "epoch")}
        text = (
            f"[{self.stage.name}] epoch {record['epoch']}/{self.n_epochs} "
            f"{format_values(values)}"
        )
        # The record rides along for handlers: ``log_record.history_record``.
        message(self.verbose, text, level=2, extra={"history_record": dict(record)})
        if self.bar is not None:
            self._postfix(record["loss"])
            self.bar.refresh()

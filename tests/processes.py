"""Helpers for tests that kill a fit in a child process and resume it."""

import os
import signal
import time

import torch


def kill_at_first_checkpoint(proc, ckdir, timeout=120, group=False):
    """SIGKILL ``proc`` as soon as a checkpoint file appears in ``ckdir``.

    Checkpoints are written to a temporary name and renamed, so a ``.pt``
    file is always complete.

    Parameters
    ----------
    proc : subprocess.Popen
        The fit (started with ``start_new_session=True`` when ``group``).
    ckdir : pathlib.Path
        Its ``checkpoint_dir``.
    timeout : float, default=120
        Seconds to wait for the checkpoint.
    group : bool, default=False
        Kill the process group (e.g. torchrun and its workers).

    Returns
    -------
    dict
        The checkpoint it left.
    """
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if ckdir.is_dir() and any(p.suffix == ".pt" for p in ckdir.iterdir()):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the fit ended before it could be killed"
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    (ckpt,) = [p for p in ckdir.iterdir() if p.suffix == ".pt"]
    return torch.load(ckpt, weights_only=True)

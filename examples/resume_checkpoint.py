"""Interrupt a fit and resume it from its checkpoint (``checkpoint_dir=``).

With ``checkpoint_dir`` set, ``SPICEClustering.fit`` saves a checkpoint at the
end of every epoch of every stage. When a fit is interrupted (Ctrl-C, a
killed job, a lost machine), running the same fit again, with the same data
and parameters and the same ``checkpoint_dir``, finds that checkpoint and
continues from the last finished epoch, with the random-generator states of
the interrupted run: on the CPU the result equals an uninterrupted fit. The
file is deleted when the fit finishes.

This script shows it in one go:

1. it starts the fit in a child process (this same script with ``--child``)
   and, once the child has saved a checkpoint and run for ``--interrupt-after``
   seconds, interrupts it as Ctrl-C would (SIGINT; on Windows it is killed);
2. it runs the same fit again here, which resumes, and prints how many
   epochs came from the interrupted run and how long the rest took.

Digits, default parameters: about 2-3 minutes on a laptop CPU (the first
run is interrupted after 15 s). ``SKSPICE_EXAMPLE_QUICK=1`` runs a
few-second version (200 digits, a short fit), for tests.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.metrics import evaluate

# SKSPICE_EXAMPLE_QUICK=1: tiny data and short stages (for tests).
QUICK = os.environ.get("SKSPICE_EXAMPLE_QUICK", "0") not in ("", "0")


def make_fit(checkpoint_dir):
    """Data and estimator: identical in the child and the resuming run."""
    X, y = load_digits_images()
    params = dict(n_clusters=10, random_state=0)
    if QUICK:  # several feature epochs, so the child stops mid-stage
        X, y = X[:200], y[:200]
        params.update(feature_epochs=10, self_epochs=1, semi_epochs=1, batch_size=32)
    return X, y, SPICEClustering(checkpoint_dir=checkpoint_dir, **params)


def saved_epochs(checkpoint_dir):
    """Finished epochs per stage in the checkpoint, e.g. ``{"feature": 12}``.

    Peeks into the checkpoint file for display only: its layout is internal
    to skspice and may change.
    """
    for path in Path(checkpoint_dir).glob("*.pt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return {name: s["epoch"] for name, s in state["stages"].items()}
        except Exception:  # being replaced, or another layout
            return {}
    return {}


def child(checkpoint_dir):
    # A process started in the background by a non-interactive shell inherits
    # SIGINT as ignored, and Python then raises no KeyboardInterrupt: make
    # Ctrl-C (SIGINT) interrupt the fit whatever started us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    X, _, spice = make_fit(checkpoint_dir)
    try:
        spice.fit(X)
    except KeyboardInterrupt:
        print("child: interrupted; the checkpoint stays", flush=True)
        sys.exit(130)
    print("child: finished before it was interrupted", flush=True)


def interrupt_first_fit(checkpoint_dir, interrupt_after, timeout=600):
    """Run the fit in a child process and interrupt it once it has a checkpoint."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", checkpoint_dir],
    )
    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < timeout:
            if saved_epochs(checkpoint_dir) and (
                time.monotonic() - start >= interrupt_after
            ):
                break
            time.sleep(0.05)
        if proc.poll() is None:
            if os.name == "nt":
                proc.kill()  # Windows: no SIGINT for a child process
            else:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    finally:
        proc.wait()
    return time.monotonic() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="folder for the checkpoint (default: a temporary folder)",
    )
    parser.add_argument(
        "--interrupt-after",
        type=float,
        default=0.0 if QUICK else 15.0,
        help="seconds before the first fit is interrupted (default: 15)",
    )
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_dir = args.checkpoint_dir or tmp
        seconds = interrupt_first_fit(checkpoint_dir, args.interrupt_after)
        done = saved_epochs(checkpoint_dir)
        if not done:
            print("the first fit finished before it could be interrupted")
            return 1
        summary = ", ".join(
            f"{n} {stage} epoch{'' if n == 1 else 's'}" for stage, n in done.items()
        )
        print(f"first fit interrupted after {seconds:.1f} s; checkpoint: {summary}")

        X, y, spice = make_fit(checkpoint_dir)
        start = time.perf_counter()
        spice.fit(X)  # same data, parameters and folder: resumes
        seconds = time.perf_counter() - start
        total = {}
        for record in spice.history_:
            total[record["stage"]] = total.get(record["stage"], 0) + 1
        reused = ", ".join(f"{n} of {total.get(s, n)} {s}" for s, n in done.items())
        print(
            f"resumed: {reused} epochs came from the checkpoint, not re-run; "
            f"the rest of the fit took {seconds:.1f} s"
        )
        scores = evaluate(y, spice.labels_)
        print(
            f"SPICEClustering  ACC {scores['acc']:.3f}  NMI {scores['nmi']:.3f}  "
            f"ARI {scores['ari']:.3f}"
        )
        left = list(Path(checkpoint_dir).glob("*.pt"))
        print(f"checkpoint files left after the fit: {len(left)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

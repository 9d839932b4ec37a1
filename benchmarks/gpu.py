"""The default Fashion-MNIST fit on one GPU, in one command.

Reads the four Fashion-MNIST IDX files (``.gz`` or not) from a folder given
on the command line, so it runs on a machine without internet or apt, fits
:class:`skspice.SPICEClustering` with its defaults (the device-aware
``"auto"`` settings of :mod:`skspice.defaults`) and prints, per seed:

* seconds per stage and samples per second per stage (epochs x data-set
  size / stage seconds; stage 1 sees two views of each, stage 2 two, stage 3
  two plus the labelled batch);
* peak GPU memory (``torch.cuda.max_memory_allocated``) and the mean GPU
  utilisation sampled every 0.5 s (when ``torch.cuda.utilization`` works,
  i.e. with ``pynvml`` installed);
* ACC / NMI / ARI of SPICE-Self and of the final clustering, and the whole
  fit's wall time.

Each seed is one JSON line in ``--results``. ``--device cpu`` and
``--n-samples`` make a quick check where there is no GPU. ``--jobs 2`` runs
the seeds side by side, one process each with the CPU threads shared out:
one default fit of 28 px images left an H100 about 80 % idle, so two fits
side by side took no longer each (docs/benchmarks.md, "GPU"); the
utilisation is then that of the whole GPU.

Example (one H100: 7.7 minutes per seed, measured with two seeds sharing
the GPU; docs/benchmarks.md, "GPU")::

    PYTHONPATH=. python benchmarks/gpu.py --data /data/fashion-mnist \
        --seeds 0 1 --jobs 2
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.params import parse_params  # noqa: E402
from benchmarks.report import machine_info  # noqa: E402
from skspice import SPICEClustering  # noqa: E402
from skspice.datasets import load_dataset  # noqa: E402
from skspice.metrics import evaluate  # noqa: E402


class UtilisationSampler:
    """Mean GPU utilisation (percent) over a block, sampled every 0.5 s."""

    def __init__(self, device):
        self.device, self.samples = device, []
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.device.type == "cuda":
            try:
                torch.cuda.utilization(self.device)
            except Exception:  # no NVML: nothing to sample
                return self
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.5):
            self.samples.append(torch.cuda.utilization(self.device))

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self):
        """Mean utilisation, or None when it could not be sampled."""
        return float(np.mean(self.samples)) if self.samples else None


def stage_rates(model, n):
    """Samples per second of each stage: epochs x ``n`` / stage seconds."""
    rates = {}
    for stage, seconds in model.stage_seconds_.items():
        epochs = sum(r["stage"] == stage for r in model.history_)
        rates[stage] = epochs * n / max(seconds, 1e-9)
    return rates


def run_seed(X, y, seed, device, params):
    """One default fit; returns its record."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    model = SPICEClustering(
        n_clusters=10, device=str(device), random_state=seed, **params
    )
    start = time.perf_counter()
    with UtilisationSampler(device) as util:
        model.fit(X)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    final = evaluate(y, model.labels_)
    self_ = evaluate(y, model.self_labels_)
    return {
        "seed": seed,
        "n_samples": int(len(X)),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "params": params,
        "precision": model.precision_,
        "seconds": seconds,
        "stage_seconds": model.stage_seconds_,
        "samples_per_second": stage_rates(model, len(X)),
        "epochs": {
            s: sum(r["stage"] == s for r in model.history_)
            for s in ("feature", "self-label", "semi")
        },
        "peak_gpu_memory_mib": None if peak is None else peak / 2**20,
        "gpu_utilisation_percent": util.mean,
        "self": self_,
        "final": final,
    }


def describe(record):
    """One printable block per seed."""
    lines = [
        f"seed {record['seed']}: {record['n_samples']:,} images on "
        f"{record['gpu'] or record['device']} ({record['precision']}), "
        f"{record['seconds']:.0f} s in all"
    ]
    for stage, sec in record["stage_seconds"].items():
        rate = record["samples_per_second"].get(stage, 0.0)
        epochs = record["epochs"].get(stage, 0)
        lines.append(
            f"  {stage:<10} {sec:7.1f} s  {epochs:3d} epochs  {rate:9.0f} samples/s"
        )
    if record["peak_gpu_memory_mib"] is not None:
        lines.append(f"  peak GPU memory {record['peak_gpu_memory_mib']:.0f} MiB")
    if record["gpu_utilisation_percent"] is not None:
        lines.append(
            f"  mean GPU utilisation {record['gpu_utilisation_percent']:.0f} %"
        )
    for name in ("self", "final"):
        s = record[name]
        lines.append(
            f"  {name:<6} ACC {s['acc']:.3f}  NMI {s['nmi']:.3f}  ARI {s['ari']:.3f}"
        )
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", required=True, help="folder of the Fashion-MNIST IDX files"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--n-samples", type=int, default=None, help="random subset size")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an estimator parameter other than the defaults (repeatable)",
    )
    p.add_argument(
        "--jobs", type=int, default=1, help="seeds run side by side, one process each"
    )
    p.add_argument("--results", default="benchmarks/results/gpu.jsonl")
    return p


def run_side_by_side(argv, seeds, jobs):
    """Run each seed in its own process, ``jobs`` at a time; returns the
    worst exit status."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
    script = str(Path(__file__).resolve())
    pending, running, status = list(seeds), [], 0
    while pending or running:
        while pending and len(running) < jobs:
            cmd = [sys.executable, script, *argv, "--jobs", "1", "--seeds"]
            running.append(subprocess.Popen([*cmd, str(pending.pop(0))], env=env))
        running[0].wait()
        status = max(status, running.pop(0).returncode)
    return status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.jobs > 1 and len(args.seeds) > 1:
        # Each child gets every option but --seeds and --jobs.
        rest = _without(argv, ("--seeds", "--jobs"))
        return run_side_by_side(rest, args.seeds, args.jobs)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu for a quick check")
    params = parse_params(
        args.param,
        reserved={"n_clusters": "10", "device": "--device", "random_state": "--seeds"},
    )
    X, y = load_dataset("fashion-mnist", args.data, n_samples=args.n_samples)
    print(f"machine: {json.dumps(machine_info(str(device)))}")
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        record = run_seed(X, y, seed, device, params)
        print(describe(record), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")
    return 0


def _without(argv, options):
    """``argv`` without ``options`` and their values."""
    out, skip = [], False
    for arg in argv:
        if arg.startswith("--"):
            skip = arg.split("=")[0] in options
        if not skip:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())

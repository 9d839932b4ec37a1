"""Export a trained backbone and reuse it: does a second fit match the first?

Per seed: a default fit on a data set, ``save_backbone``, then a second fit
with ``backbone_weights=<file>`` and ``feature_epochs=0`` (stage 1 skipped).
Prints both ACC/NMI and the fit times; records go to a JSON-lines file.

Example::

    python benchmarks/export_roundtrip.py --sets digits --seeds 0 1
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import SETS, load_set  # noqa: E402
from skspice import SPICEClustering  # noqa: E402
from skspice.datasets import FASHION_MNIST_PATH  # noqa: E402
from skspice.metrics import evaluate  # noqa: E402


def _timed_fit(est, X):
    start = time.perf_counter()
    est.fit(X)
    return est, time.perf_counter() - start


def main(argv=None):
    """Fit, export, refit from the export; print and record both."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=["digits"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--data-path", default=FASHION_MNIST_PATH)
    p.add_argument("--results", default="docs/benchmarks-export.jsonl")
    args = p.parse_args(argv)
    for name in args.sets:
        X, y = load_set(name, args.data_path)
        for seed in args.seeds:
            first, t1 = _timed_fit(SPICEClustering(random_state=seed), X)
            with tempfile.TemporaryDirectory() as tmp:
                path = first.save_backbone(Path(tmp) / "backbone.pt")
                second, t2 = _timed_fit(
                    SPICEClustering(
                        backbone_weights=path, feature_epochs=0, random_state=seed
                    ),
                    X,
                )
            record = {
                "set": name,
                "seed": seed,
                "first": evaluate(y, first.labels_),
                "second": evaluate(y, second.labels_),
                "second_frozen_backbone": bool(second.frozen_backbone_),
                "second_prototype_space": second.prototype_space_,
                "first_seconds": t1,
                "second_seconds": t2,
            }
            with open(args.results, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(
                f"{name} seed {seed}: first fit ACC {record['first']['acc']:.3f} "
                f"(NMI {record['first']['nmi']:.3f}, {t1:.0f} s); from its exported "
                f"backbone ACC {record['second']['acc']:.3f} "
                f"(NMI {record['second']['nmi']:.3f}, {t2:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

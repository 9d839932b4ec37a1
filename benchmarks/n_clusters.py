"""Does the label-free recipe find the number of classes?

For each data set and seed, :func:`skspice.model_selection.scan_n_clusters`
trains stage 1 once and refits stages 2-3 for every candidate ``K``; it
prints the silhouette and mean reliability of each ``K``, the ``K`` each
criterion picks, and the ACC of each fit against the labels (which the
recipe never sees). Records go to a JSON-lines file.

Example::

    python benchmarks/n_clusters.py --sets digits --k 6 7 8 9 10 11 12 13 14
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import SETS, load_set  # noqa: E402
from skspice import SPICEClustering  # noqa: E402
from skspice.datasets import FASHION_MNIST_PATH  # noqa: E402
from skspice.metrics import evaluate  # noqa: E402
from skspice.model_selection import scan_n_clusters  # noqa: E402


def main(argv=None):
    """Scan the candidates on every set and seed; print and record."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=["digits"])
    p.add_argument("--k", nargs="+", type=int, default=list(range(6, 15)))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--data-path", default=FASHION_MNIST_PATH)
    p.add_argument("--results", default="docs/benchmarks-n-clusters.jsonl")
    args = p.parse_args(argv)
    for name in args.sets:
        X, y = load_set(name, args.data_path)
        for seed in args.seeds:
            start = time.perf_counter()
            scan = scan_n_clusters(SPICEClustering(random_state=seed), X, args.k)
            record = {
                "set": name,
                "seed": seed,
                "n_classes": int(np.unique(y).size),
                "n_clusters": scan["n_clusters"],
                "silhouette": scan["silhouette"],
                "reliability": scan["reliability"],
                "acc": [evaluate(y, e.labels_)["acc"] for e in scan["estimators"]],
                "pick_silhouette": scan["best"],
                "pick_reliability": scan["n_clusters"][
                    int(np.argmax(scan["reliability"]))
                ],
                "seconds": time.perf_counter() - start,
            }
            with open(args.results, "a") as f:
                f.write(json.dumps(record) + "\n")
            for k, s, r, a in zip(
                record["n_clusters"],
                record["silhouette"],
                record["reliability"],
                record["acc"],
            ):
                print(
                    f"{name} seed {seed} K={k}: silhouette {s:.3f} "
                    f"reliability {r:.3f} ACC {a:.3f}"
                )
            print(
                f"{name} seed {seed}: silhouette picks {record['pick_silhouette']}, "
                f"reliability picks {record['pick_reliability']} "
                f"({record['seconds']:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cluster Fashion-MNIST clothing images with SPICE and with KMeans.

Reads Fashion-MNIST from its IDX files (on Debian/Ubuntu
``apt-get install dataset-fashion-mnist`` puts them in
``/usr/share/datasets/fashion-mnist``), clusters a random subset of
``--n-samples`` images (default 10,000 of the 70,000) with
``SPICEClustering`` (default parameters) and with KMeans on the raw pixels,
prints accuracy (Hungarian-matched), NMI, ARI and time of each, and saves a
grid of the most confident samples of every cluster as ``fashion_mnist_clusters.png`` in
``--out`` (default: the current folder). The class labels are used only to
score the clusterings. Needs matplotlib (``pip install "skspice[plot]"``).

Run: ``python examples/fashion_mnist.py`` (about 5-8 minutes on a laptop CPU
for 10,000 images; all 70,000 take about 12 minutes on a 2-core CPU, see
docs/benchmarks.md). ``SKSPICE_EXAMPLE_QUICK=1`` runs a few-second version on
200 images with one epoch per stage, for tests.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from skspice import SPICEClustering
from skspice.datasets import FASHION_MNIST_PATH, load_fashion_mnist
from skspice.metrics import evaluate
from skspice.plotting import plot_cluster_grid

# SKSPICE_EXAMPLE_QUICK=1: tiny data and one epoch per stage (for tests).
QUICK = os.environ.get("SKSPICE_EXAMPLE_QUICK", "0") not in ("", "0")

CLASSES = [
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n-samples",
        type=int,
        default=None,
        help="images drawn at random from the 70,000 (default: 10000; 200 in "
        "quick mode)",
    )
    parser.add_argument(
        "--path", default=FASHION_MNIST_PATH, help="folder of the IDX files"
    )
    parser.add_argument("--out", default=".", help="folder for the PNG (default: .)")
    args = parser.parse_args(argv)
    n_samples = args.n_samples or (200 if QUICK else 10_000)

    X, y = load_fashion_mnist(args.path)  # (70000, 28, 28) uint8
    if n_samples < len(X):
        keep = np.random.default_rng(0).choice(len(X), n_samples, replace=False)
        X, y = X[keep], y[keep]
    print(f"Fashion-MNIST: {len(X)} images of 28x28 px, {len(CLASSES)} classes")

    params = dict(n_clusters=10, random_state=0)
    if QUICK:
        params.update(feature_epochs=1, self_epochs=1, semi_epochs=1)

    rows = []
    start = time.perf_counter()
    kmeans = KMeans(n_clusters=10, n_init=10, random_state=0)
    labels = kmeans.fit_predict(X.reshape(len(X), -1) / 255.0)
    rows.append(("KMeans (pixels)", evaluate(y, labels), time.perf_counter() - start))

    start = time.perf_counter()
    spice = SPICEClustering(**params).fit(X)
    rows.append(
        ("SPICEClustering", evaluate(y, spice.labels_), time.perf_counter() - start)
    )
    for name, scores, seconds in rows:
        print(
            f"{name:<16} ACC {scores['acc']:.3f}  NMI {scores['nmi']:.3f}  "
            f"ARI {scores['ari']:.3f}  time {seconds:6.1f} s"
        )

    # Which class dominates each cluster (labels used only for this summary).
    for c in range(10):
        members = y[spice.labels_ == c]
        if members.size:
            top = np.bincount(members, minlength=10).argmax()
            share = np.mean(members == top)
            print(f"cluster {c}: {members.size:5d} images, {share:.0%} {CLASSES[top]}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = plot_cluster_grid(
        X,
        spice.labels_,
        proba=spice.predict_proba(X),
        title="SPICE clusters of Fashion-MNIST (most confident first)",
    )
    path = out / "fashion_mnist_clusters.png"
    fig.savefig(path, dpi=100)
    print(f"saved {path}")


if __name__ == "__main__":
    main()

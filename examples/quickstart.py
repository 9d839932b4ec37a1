"""Quick start: cluster scikit-learn's digits with SPICE and with KMeans.

Loads the 1,797 8x8 handwritten digits, clusters them with
``SPICEClustering`` (default parameters) and with KMeans on the raw pixels,
prints accuracy (Hungarian-matched), NMI, ARI and wall time of each, and
saves two pictures into ``--out`` (default ``docs/img/``):

* ``quickstart_clusters.png``: ten samples of every SPICE cluster, the most
  confident first (``skspice.plotting.plot_cluster_grid``);
* ``quickstart_history.png``: the loss curves of the three training stages
  (``skspice.plotting.plot_history``).

The digit labels are used only to score the clusterings. Needs matplotlib
(``pip install "skspice[plot]"``).

Run: ``python examples/quickstart.py`` (about 2 minutes on a laptop CPU;
``SKSPICE_EXAMPLE_QUICK=1`` runs a few-second version on 200 digits with one
epoch per stage, for tests).
"""

import argparse
import os
import time
from pathlib import Path

from sklearn.cluster import KMeans

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.metrics import evaluate
from skspice.plotting import plot_cluster_grid, plot_history

# SKSPICE_EXAMPLE_QUICK=1: tiny data and one epoch per stage (for tests).
QUICK = os.environ.get("SKSPICE_EXAMPLE_QUICK", "0") not in ("", "0")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", default="docs/img", help="folder for the PNGs (default: docs/img)"
    )
    args = parser.parse_args(argv)

    X, y = load_digits_images()  # (1797, 8, 8) floats in [0, 1]
    params = dict(n_clusters=10, random_state=0)
    if QUICK:
        X, y = X[:200], y[:200]
        params.update(feature_epochs=1, self_epochs=1, semi_epochs=1)
    print(f"digits: {X.shape[0]} images of {X.shape[1]}x{X.shape[2]} px, 10 classes")

    rows = []
    start = time.perf_counter()
    kmeans = KMeans(n_clusters=10, n_init=10, random_state=0)
    labels = kmeans.fit_predict(X.reshape(len(X), -1))
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

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = plot_cluster_grid(
        X,
        spice.labels_,
        proba=spice.predict_proba(X),
        title="SPICE clusters of the digits (most confident first)",
    )
    history = plot_history(spice.history_)
    for fig, name in [
        (grid, "quickstart_clusters.png"),
        (history, "quickstart_history.png"),
    ]:
        fig.savefig(out / name, dpi=100)
        print(f"saved {out / name}")


if __name__ == "__main__":
    main()

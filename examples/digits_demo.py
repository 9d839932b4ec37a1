"""Cluster scikit-learn's handwritten digits with SPICE and with KMeans.

Prints accuracy (Hungarian-matched), NMI, ARI and wall time of each method,
one line each. Labels are used only to score the clusterings.

Run: ``python examples/digits_demo.py`` (about 2-4 minutes on a 2-core CPU;
``SKSPICE_EXAMPLE_QUICK=1`` runs a few-second version for tests).
``examples/quickstart.py`` does the same and also saves pictures of the
clusters and the loss curves.
"""

import os
import time

from sklearn.cluster import KMeans

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.metrics import evaluate

# SKSPICE_EXAMPLE_QUICK=1: tiny data and one epoch per stage (for tests).
QUICK = os.environ.get("SKSPICE_EXAMPLE_QUICK", "0") not in ("", "0")


def compare():
    """Fit KMeans and SPICE on digits, print one line each.

    Returns the images and the fitted SPICE model (for quickstart.py's plots).
    """
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
    return X, spice


def main():
    compare()


if __name__ == "__main__":
    main()

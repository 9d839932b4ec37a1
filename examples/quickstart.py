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
from pathlib import Path

from digits_demo import compare  # the comparison itself, shared with the README

from skspice.plotting import plot_cluster_grid, plot_history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", default="docs/img", help="folder for the PNGs (default: docs/img)"
    )
    args = parser.parse_args(argv)

    X, spice = compare()  # prints SPICE against KMeans

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

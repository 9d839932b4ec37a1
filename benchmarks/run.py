"""Benchmark :class:`skspice.SPICEClustering` against KMeans on a real data set.

Both methods cluster the same images; the ground-truth labels are used only to
score the clusterings (Hungarian-matched accuracy, NMI, ARI). Each method runs
in its own child process so that its wall time and peak resident memory are
measured separately. SPICE is also scored after each of its stages: KMeans on
the stage-1 features (``embedding_``), SPICE-Self (``self_labels_``) and the
final SPICE-Semi clustering (``labels_``).

Outputs, in ``--out-dir`` (default ``benchmarks/results/<dataset>``):

``results.json``
    Scores, times, memory, SPICE's per-stage results, the data set, the
    parameters and the machine.
``results.md``
    The same as a markdown table with the command and the machine.
``clusters.png``
    Random sample images of every SPICE cluster, one row per cluster.
``labels.npz``
    The sample indices, true labels and every method's cluster labels.

With ``--docs FILE`` the data set's section of ``FILE`` is written (replacing
the previous one of the same data set) and the grid is copied next to it, into
``img/clusters_<dataset>.png``.

Examples
--------
Defaults on the full digits data set (about 2-4 minutes on a 2-core CPU)::

    python benchmarks/run.py --dataset digits --docs docs/benchmarks.md

A quick smoke run::

    python benchmarks/run.py --dataset digits --n-samples 300 \\
        --param feature_epochs=2 --param self_epochs=1 --param semi_epochs=1
"""

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import run_method, write_json  # noqa: E402
from benchmarks.params import parse_params  # noqa: E402
from benchmarks.report import (  # noqa: E402
    dataset_key,
    machine_info,
    render_markdown,
    render_section,
    update_docs,
)
from skspice.datasets import load_dataset  # noqa: E402
from skspice.metrics import evaluate, pseudo_label_purity  # noqa: E402

__all__ = ["DATASETS", "RESERVED_PARAMS", "build_parser", "main", "save_cluster_grid"]

#: Data sets the script knows (:data:`skspice.datasets.DATASET_NAMES`), with a
#: human-readable title.
DATASETS = {
    "digits": "Digits (scikit-learn, 8x8 grayscale)",
    "fashion-mnist": "Fashion-MNIST (28x28 grayscale)",
    "cifar10": "CIFAR-10 (32x32 colour)",
    "cifar100": "CIFAR-100-20 (32x32 colour, 20 super-classes)",
    "folder": "Image folder",
}

BENCHMARKS_DIR = Path(__file__).resolve().parent
#: Parameters the script sets itself, refused by ``--param``.
RESERVED_PARAMS = {"n_clusters": "the number of classes", "random_state": "--seed"}
#: Resolution of ``clusters.png``.
GRID_DPI = 100


def save_cluster_grid(path, images, labels, n_clusters, per_cluster=10, seed=0):
    """Save random sample images of every cluster, one row per cluster, as a PNG.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    images : ndarray of shape (n, H, W) or (n, H, W, C)
        uint8 images in [0, 255] or float images in [0, 1].
    labels : array-like of shape (n,)
        Cluster of each image, ints in ``0 .. n_clusters - 1``.
    n_clusters : int
        Number of rows (empty clusters included).
    per_cluster : int, default=10
        Images shown per cluster.
    seed : int, default=0
        Seed of the choice of images.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure of :func:`skspice.plotting.plot_cluster_grid`, saved at
        :data:`GRID_DPI` dots per inch.
    """
    from skspice.plotting import plot_cluster_grid

    images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
    if len(images) != len(labels):
        raise ValueError(
            f"{len(images)} images but {len(labels)} labels: one per image."
        )
    # Shuffled data order: each row shows random members of its cluster.
    order = np.random.default_rng(seed).permutation(len(labels))
    fig = plot_cluster_grid(
        images[order],
        labels[order],
        proba=np.eye(n_clusters)[labels[order]],  # one row per cluster, even empty
        n_per_cluster=per_cluster,
        title=f"SPICE clusters: {per_cluster} random samples each",
    )
    fig.savefig(path, dpi=GRID_DPI)
    return fig


def build_parser():
    """The command-line parser.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=(
            "Benchmark SPICEClustering against KMeans (raw pixels) on a real "
            "data set: ACC, NMI, ARI, wall time and peak memory of each method, "
            "SPICE's scores after each stage, and a grid of SPICE's clusters."
        ),
        epilog=(
            "Example: python benchmarks/run.py --dataset digits "
            "--docs docs/benchmarks.md"
        ),
    )
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument(
        "--data-path",
        help=(
            "folder of the data set (required for cifar10, cifar100, folder; "
            "fashion-mnist defaults to /usr/share/datasets/fashion-mnist)"
        ),
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="folder only: resize images to this square size (default: as loaded)",
    )
    parser.add_argument(
        "--n-samples",
        type=int,
        help="cluster a random subset of this many images (seeded; default: all)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random_state of both methods, subset and grid seed (default: 0)",
    )
    parser.add_argument(
        "--out-dir",
        help="output folder (default: benchmarks/results/<dataset>)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "SPICEClustering parameter (repeatable), value read with "
            "ast.literal_eval, else a string, e.g. --param feature_epochs=50 "
            "--param device=cuda; unset parameters keep their defaults"
        ),
    )
    parser.add_argument(
        "--docs",
        metavar="FILE",
        help=(
            "also write this data set's section of a markdown file (e.g. "
            "docs/benchmarks.md), replacing its previous one, and copy the grid "
            "to img/clusters_<dataset>.png next to it"
        ),
    )
    return parser


def _check_params(params):
    from skspice import SPICEClustering

    valid = set(SPICEClustering().get_params())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(
            f"unknown SPICEClustering parameter(s) {', '.join(unknown)}; valid: "
            f"{', '.join(sorted(valid - set(RESERVED_PARAMS)))}."
        )


def _log(message):
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def main(argv=None):
    """Run the benchmark from the command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name (``sys.argv[1:]`` when None).

    Returns
    -------
    results : dict
        The content of ``results.json``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_path is not None and args.dataset == "digits":
        parser.error("--data-path is not used by --dataset digits.")
    if args.image_size is not None and args.dataset != "folder":
        parser.error("--image-size is only used by --dataset folder.")
    if args.n_samples is not None and args.n_samples < 1:
        parser.error("--n-samples must be positive.")
    try:
        params = parse_params(args.param, reserved=RESERVED_PARAMS)
        _check_params(params)
    except ValueError as exc:
        parser.error(str(exc))
    if args.data_path is None and args.dataset in ("cifar10", "cifar100", "folder"):
        parser.error(f"--dataset {args.dataset} needs --data-path.")

    started = time.perf_counter()
    X, y, info = load_dataset(
        args.dataset,
        args.data_path,
        args.n_samples,
        args.seed,
        args.image_size,
        return_info=True,
    )
    key = dataset_key(args.dataset, info["data_path"])
    title = DATASETS[args.dataset]
    if args.dataset == "folder":
        title = f"Image folder `{Path(info['data_path']).expanduser().resolve().name}`"
    out_dir = Path(args.out_dir) if args.out_dir else BENCHMARKS_DIR / "results" / key
    out_dir.mkdir(parents=True, exist_ok=True)
    k = info["n_classes"]
    _log(
        f"{key}: {len(X)} images of shape {X.shape[1:]}, {k} classes; "
        f"results in {out_dir}"
    )

    _log("KMeans on raw pixels ...")
    kmeans, kmeans_labels = run_method("kmeans", X, k, seed=args.seed)
    kmeans["scores"] = evaluate(y, kmeans_labels["labels"])

    _log(f"SPICEClustering with {params or 'default parameters'} ...")
    spice, spice_labels = run_method("spice", X, k, seed=args.seed, params=params)
    spice["scores"] = evaluate(y, spice_labels["labels"])
    semi_skipped = "semi" not in spice["epochs_run"]
    spice["stages"] = [
        {
            "stage": "feature",
            "name": "stage 1: MoCo features + KMeans",
            "labels": "KMeans(n_init=10) on embedding_",
            "scores": evaluate(y, spice_labels["embedding_kmeans_labels"]),
            "seconds": spice["stage_seconds"].get("feature"),
        },
        {
            "stage": "self-label",
            "name": "stage 2: SPICE-Self",
            "labels": "self_labels_",
            "scores": evaluate(y, spice_labels["self_labels"]),
            "seconds": spice["stage_seconds"].get("self-label"),
        },
        {
            "stage": "semi",
            "name": (
                "stage 3: SPICE-Semi (skipped)"
                if semi_skipped
                else f"stage 3: SPICE-Semi ({spice['n_reliable']} reliable)"
            ),
            "labels": "labels_",
            "scores": spice["scores"],
            "seconds": spice["stage_seconds"].get("semi"),
        },
    ]
    spice["reliable_fraction"] = spice["n_reliable"] / len(X)
    if not semi_skipped:  # how right the stage-3 labelled set was
        spice["reliable_purity"] = pseudo_label_purity(
            y, spice_labels["self_labels"], spice_labels["reliable_labels"]
        )

    np.savez(
        out_dir / "labels.npz",
        indices=info["indices"],
        y=y,
        kmeans=kmeans_labels["labels"],
        spice=spice_labels["labels"],
        spice_self=spice_labels["self_labels"],
        spice_embedding_kmeans=spice_labels["embedding_kmeans_labels"],
        reliable_mask=spice_labels["reliable_mask"],
        reliable_labels=spice_labels["reliable_labels"],
    )
    save_cluster_grid(
        out_dir / "clusters.png", X, spice_labels["labels"], k, seed=args.seed
    )

    machine = machine_info(device=spice["device_name"])
    results = {
        "dataset": key,
        "command": "python benchmarks/run.py " + shlex.join(argv),
        "seed": args.seed,
        "params": params,
        "n_samples": len(X),
        "image_shape": list(X.shape[1:]),
        "data": {
            "name": key,
            "title": title,
            "path": info["data_path"],
            "n_samples": len(X),
            "n_total": info["n_total"],
            "n_classes": k,
            "image_shape": list(X.shape[1:]),
            "dtype": str(X.dtype),
        },
        "machine": machine,
        "methods": {"kmeans": kmeans, "spice": spice},
        "total_seconds": time.perf_counter() - started,
        "files": {
            "results_json": "results.json",
            "results_md": "results.md",
            "clusters_png": "clusters.png",
            "labels_npz": "labels.npz",
        },
    }
    section = render_section(results, image_path="clusters.png", heading_level=1)
    (out_dir / "results.md").write_text(section)
    if args.docs:
        docs = Path(args.docs)
        image = docs.parent / "img" / f"clusters_{key}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_dir / "clusters.png", image)
        rel = image.relative_to(docs.parent).as_posix()
        update_docs(docs, key, render_section(results, image_path=rel))
        results["files"]["docs"] = str(docs)
        results["files"]["docs_image"] = str(image)
        _log(f"updated {docs} and {image}")
    write_json(out_dir / "results.json", results)
    # JSON round trip: the returned dict is exactly what the file holds.
    results = json.loads((out_dir / "results.json").read_text())
    print(render_markdown(results), end="", flush=True)
    return results


if __name__ == "__main__":
    main()

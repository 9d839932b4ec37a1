"""Generalisation suite: do SPICE's defaults hold on images we did not tune on?

Each image set of the suite is clustered by three methods, every one with
default settings and the true number of classes:

* ``kmeans``: KMeans (``n_init=10``) on the raw pixels;
* ``umap-gmm``: UMAP to 10 dimensions, then a Gaussian mixture (the N2D
  recipe without its autoencoder; needs ``umap-learn``, the ``bench`` extra);
* ``spice``: :class:`skspice.SPICEClustering` with its defaults.

The sets are digits and a Fashion-MNIST subset as they are, the same images
with random foreground/background colours (for Fashion-MNIST also under a
random lighting gradient with pixel noise, so that no frame is flat) and
with random contrast polarity,
and synthetic shapes of our own (:mod:`skspice.synthetic`). ``glyphs-colour``
and ``textures`` are held-out sets: they are never used to choose defaults,
and are run with ``--held-out`` only (``textures``, colour textures with no
flat background, was made for issue 12 before its tuning began).

Every fit is recorded in a JSON-lines file (``--results``) as soon as it ends,
so an interrupted run resumes where it stopped, and runs made on different
machines (say SPICE on a GPU, the baselines on a CPU) can be merged. With
``--docs FILE`` the table of mean and spread over seeds is written into
``FILE`` between ``<!-- benchmark:suite:... -->`` markers.

Examples
--------
The whole suite, two seeds, table into the docs::

    python benchmarks/suite.py --seeds 0 1 --docs docs/benchmarks.md

Only the baselines, or only some sets::

    python benchmarks/suite.py --methods kmeans umap-gmm --sets digits shapes
"""

import argparse
import functools
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import flatten_pixels, run_method  # noqa: E402
from benchmarks.params import parse_params  # noqa: E402
from benchmarks.report import update_docs  # noqa: E402
from skspice.datasets import (  # noqa: E402
    FASHION_MNIST_PATH,
    load_digits_images,
    load_fashion_mnist,
)
from skspice.metrics import evaluate  # noqa: E402
from skspice.synthetic import (  # noqa: E402
    make_glyphs,
    make_shapes,
    make_textures,
    random_colors,
    random_lighting,
    random_polarity,
)

#: Images per set drawn from Fashion-MNIST and per synthetic set.
SUBSET = 10_000
#: Seed of every data-set transformation (not of the methods).
DATA_SEED = 1234
METHODS = ("kmeans", "umap-gmm", "spice")


def _fashion(path):
    X, y = load_fashion_mnist(path)
    idx = np.random.default_rng(DATA_SEED).choice(len(X), SUBSET, replace=False)
    return X[idx], y[idx]


def _variant(load, kind):
    def make(path):
        X, y = load(path)
        if kind == "colour":
            return random_colors(X, DATA_SEED), y
        if kind == "polarity":
            return random_polarity(X, DATA_SEED), y
        if kind == "colour-shaded":
            return random_lighting(random_colors(X, DATA_SEED), DATA_SEED), y
        return X, y

    return make


_DIGITS = lambda path: load_digits_images()  # noqa: E731
_SHAPES = lambda path: make_shapes(SUBSET, 28, DATA_SEED)  # noqa: E731
_GLYPHS = lambda path: make_glyphs(SUBSET, 32, DATA_SEED)  # noqa: E731
_TEXTURES = lambda path: make_textures(SUBSET, 32, DATA_SEED)  # noqa: E731
_FASHION_ALL = lambda path: load_fashion_mnist(path)  # noqa: E731

#: name -> (loader taking the Fashion-MNIST folder, description, group).
#: Groups: "suite" runs by default, "held-out" with ``--held-out``, "extra"
#: only when named with ``--sets``.
SETS = {
    "digits": (_variant(_DIGITS, None), "digits, 1,797 x 8x8 gray", "suite"),
    "digits-colour": (
        _variant(_DIGITS, "colour"),
        "digits in random colours, 8x8 RGB",
        "suite",
    ),
    "digits-polarity": (
        _variant(_DIGITS, "polarity"),
        "digits, half inverted, 8x8 gray",
        "suite",
    ),
    "fashion": (_variant(_fashion, None), "Fashion-MNIST 10k, 28x28 gray", "suite"),
    "fashion-colour": (
        _variant(_fashion, "colour"),
        "Fashion-MNIST 10k in random colours, 28x28 RGB",
        "suite",
    ),
    "fashion-colour-shaded": (
        _variant(_fashion, "colour-shaded"),
        "Fashion-MNIST 10k in random colours, shaded, noisy, 28x28 RGB",
        "suite",
    ),
    "fashion-polarity": (
        _variant(_fashion, "polarity"),
        "Fashion-MNIST 10k, half inverted, 28x28 gray",
        "suite",
    ),
    "shapes": (_variant(_SHAPES, None), "shapes (ours) 10k, 28x28 gray", "suite"),
    "shapes-colour": (
        _variant(_SHAPES, "colour"),
        "shapes (ours) 10k in random colours, 28x28 RGB",
        "suite",
    ),
    "glyphs-colour": (
        _variant(_GLYPHS, "colour"),
        "held out: letters (ours) 10k in random colours, 32x32 RGB",
        "held-out",
    ),
    "textures": (
        _variant(_TEXTURES, None),
        "held out: colour textures (ours) 10k, 32x32 RGB, no flat background",
        "held-out",
    ),
    "fashion-70k": (
        _variant(_FASHION_ALL, None),
        "Fashion-MNIST, all 70k, 28x28 gray",
        "extra",
    ),
    "fashion-70k-colour": (
        _variant(_FASHION_ALL, "colour"),
        "Fashion-MNIST, all 70k in random colours, 28x28 RGB",
        "extra",
    ),
}


def umap_gmm(X, n_clusters, seed):
    """UMAP (10-d) of the raw pixels, then a Gaussian mixture.

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C)
        Images.
    n_clusters : int
        Mixture components.
    seed : int
        Seeds UMAP and the mixture.

    Returns
    -------
    ndarray of shape (n,)
        Cluster labels.
    """
    import umap
    from sklearn.mixture import GaussianMixture

    rows = flatten_pixels(X)
    emb = umap.UMAP(
        n_components=10, n_neighbors=15, min_dist=0.0, random_state=seed
    ).fit_transform(rows)
    return GaussianMixture(n_clusters, random_state=seed).fit_predict(emb)


@functools.lru_cache(maxsize=2)
def load_set(name, data_path):
    """Images and labels of one set, made once per run (not per fit)."""
    X, y = SETS[name][0](data_path)
    X.setflags(write=False)  # shared between fits: nobody may modify it
    return X, y


def run_one(name, method, seed, data_path, params):
    """Fit one method on one set; return a JSON-able record."""
    X, y = load_set(name, data_path)
    k = int(np.unique(y).size)
    record = {"set": name, "method": method, "seed": seed, "n": int(len(X))}
    if method == "umap-gmm":
        start = time.perf_counter()
        labels = umap_gmm(X, k, seed)
        record.update(seconds=time.perf_counter() - start, device="cpu")
    else:
        result, out = run_method(method, X, k, seed=seed, params=params)
        labels = out["labels"]
        record.update(seconds=result["fit_seconds"], device="cpu")
        if method == "spice":
            record.update(
                device=result["device_name"],
                stage_seconds=result["stage_seconds"],
                self=evaluate(y, out["self_labels"]),
                embedding_kmeans=evaluate(y, out["embedding_kmeans_labels"]),
                n_reliable=result["n_reliable"],
                contrast_normalization=result.get("contrast_normalization"),
            )
    record.update(evaluate(y, labels))
    return record


def load_records(path):
    """Records of a JSON-lines results file (empty list if missing)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def summarize(records):
    """Mean and spread of ACC/NMI over seeds, per set and method.

    Parameters
    ----------
    records : list of dict
        As written by :func:`run_one`; the last record of a (set, method,
        seed) wins.

    Returns
    -------
    dict
        ``{set: {method: {"acc": (mean, spread), "nmi": ..., "seconds": mean,
        "seeds": n, "device": str}}}``; spread is half the range.
    """
    latest = {}
    for r in records:
        latest[(r["set"], r["method"], r["seed"])] = r
    table = {}
    for (s, m, _), r in sorted(latest.items()):
        table.setdefault(s, {}).setdefault(m, []).append(r)
    out = {}
    for s, methods in table.items():
        for m, rs in methods.items():
            entry = {"seeds": len(rs), "device": rs[0].get("device", "cpu")}
            if all("self" in r for r in rs):
                entry["self_acc"] = float(np.mean([r["self"]["acc"] for r in rs]))
            for key in ("acc", "nmi", "seconds"):
                v = np.array([r[key] for r in rs], dtype=float)
                entry[key] = (float(v.mean()), float(np.ptp(v) / 2))
            out.setdefault(s, {})[m] = entry
    return out


def render_table(summary):
    """The suite's markdown table (one row per set)."""
    head = (
        "| set | KMeans ACC / NMI | UMAP + GMM ACC / NMI | SPICE ACC / NMI | "
        "SPICE-Self ACC | SPICE time | seeds |\n|---|---|---|---|---:|---:|---:|\n"
    )
    rows = []
    for name, (_, desc, _) in SETS.items():
        if name not in summary:
            continue
        cells = []
        for m in METHODS:
            e = summary[name].get(m)
            if e is None:
                cells.append("not run")
                continue
            (a, da), (n, _) = e["acc"], e["nmi"]
            spread = f" (±{da:.3f})" if e["seeds"] > 1 else ""
            cells.append(f"{a:.3f}{spread} / {n:.3f}")
        sp = summary[name].get("spice")
        time_cell = f"{sp['seconds'][0]:.0f} s ({sp['device']})" if sp else "-"
        self_cell = f"{sp['self_acc']:.3f}" if sp and "self_acc" in sp else "-"
        seeds = max(e["seeds"] for e in summary[name].values())
        rows.append(
            f"| {desc} | "
            + " | ".join(cells)
            + f" | {self_cell} | {time_cell} | {seeds} |"
        )
    return head + "\n".join(rows) + "\n"


def build_parser():
    """The command-line parser."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=None)
    p.add_argument("--held-out", action="store_true", help="also run held-out sets")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--data-path", default=FASHION_MNIST_PATH)
    p.add_argument("--results", default="docs/benchmarks-suite.jsonl")
    p.add_argument("--jobs", type=int, default=1, help="fits run at once")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="SPICEClustering parameter (Python literal), repeatable",
    )
    p.add_argument("--docs", default=None, help="markdown file to write the table to")
    p.add_argument(
        "--section",
        default="suite",
        help="key of the docs section (one per results file), e.g. for ablations",
    )
    p.add_argument("--title", default="Generalisation suite", help="section heading")
    p.add_argument("--redo", action="store_true", help="rerun finished fits")
    return p


def main(argv=None):
    """Run the missing fits, print the table, optionally write it to docs."""
    args = build_parser().parse_args(argv)
    params = parse_params(args.param)
    names = args.sets or [n for n, (_, _, g) in SETS.items() if g == "suite"]
    if args.held_out and args.sets is None:
        names += [n for n, (_, _, g) in SETS.items() if g == "held-out"]
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["set"], r["method"], r["seed"]) for r in load_records(results)}
    todo = [
        (s, m, seed)
        for s in names
        for m in args.methods
        for seed in args.seeds
        if args.redo or (s, m, seed) not in done
    ]
    if "umap-gmm" in args.methods:
        try:
            import umap  # noqa: F401
        except ImportError:
            print("umap-learn is not installed: skipping umap-gmm", flush=True)
            todo = [t for t in todo if t[1] != "umap-gmm"]

    def job(task):
        try:
            record = run_one(*task, args.data_path, params)
        except Exception as exc:  # one failed fit must not lose the others
            print(f"{task}: FAILED: {exc!r}", flush=True)
            return None
        record["params"] = {k: repr(v) for k, v in params.items()}
        with open(results, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"{record['set']:>17} {record['method']:>8} seed {record['seed']}: "
            f"ACC {record['acc']:.3f} NMI {record['nmi']:.3f} "
            f"({record['seconds']:.0f} s, {record.get('device')})",
            flush=True,
        )
        return record

    # Heavy fits first, so that parallel jobs finish together.
    todo.sort(key=lambda t: (t[1] != "spice", t[0].startswith("digits")))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(job, todo))
    table = render_table(summarize(load_records(results)))
    print(table)
    if args.docs:
        overrides = ", ".join(f"`{k}={v!r}`" for k, v in params.items())
        section = (
            f"## {args.title}\n\n"
            f"Written by `python benchmarks/suite.py` from `{os.fspath(results)}`. "
            "ACC and NMI are means over the seeds (± half the range of ACC). "
            "Every method uses the true number of classes and its defaults"
            + (f", SPICE with {overrides}" if overrides else "")
            + "; labels are used only for scoring.\n\n"
            + table
        )
        update_docs(args.docs, args.section, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

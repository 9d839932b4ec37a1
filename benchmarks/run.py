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
import ast
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "DATASETS",
    "cluster_grid",
    "grid_size",
    "load_dataset",
    "machine_info",
    "main",
    "parse_params",
    "render_markdown",
    "render_section",
    "run_method",
    "update_docs",
]

#: Data sets the script knows, with a human-readable title.
DATASETS = {
    "digits": "Digits (scikit-learn, 8x8 grayscale)",
    "fashion-mnist": "Fashion-MNIST (28x28 grayscale)",
    "cifar10": "CIFAR-10 (32x32 colour)",
    "cifar100": "CIFAR-100-20 (32x32 colour, 20 super-classes)",
    "folder": "Image folder",
}

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
_WORKER_FLAG = "--_worker"
_NEAREST = getattr(Image, "Resampling", Image).NEAREST
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
# Parameters the script sets itself.
_RESERVED_PARAMS = {"n_clusters": "the number of classes", "random_state": "--seed"}

# Layout of the cluster grid (see :func:`grid_size`).
GRID_MIN_CELL = 32
GRID_MAX_CELL = 96
GRID_LABEL_WIDTH = 72
GRID_PAD = 2
GRID_MIN_ROW = 28  # two lines of the default font


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------


def dataset_key(dataset, data_path=None):
    """Name of a data set's results folder, docs section and image.

    Parameters
    ----------
    dataset : str
        One of :data:`DATASETS`.
    data_path : str or os.PathLike, default=None
        The data set's path; only used for ``"folder"``.

    Returns
    -------
    key : str
        ``dataset``, or ``"folder-<folder name>"`` for an image folder so that
        several folders do not overwrite each other's results.
    """
    if dataset != "folder" or data_path is None:
        return dataset
    name = Path(data_path).expanduser().resolve().name or "root"
    return "folder-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def load_dataset(dataset, data_path=None, n_samples=None, seed=0, image_size=None):
    """Load a data set and optionally draw a seeded random subset.

    Parameters
    ----------
    dataset : {"digits", "fashion-mnist", "cifar10", "cifar100", "folder"}
        Which data set. ``cifar100`` uses the 20 coarse labels.
    data_path : str or os.PathLike, default=None
        Folder of the data set files; required for ``cifar10``, ``cifar100``
        and ``folder``, optional for ``fashion-mnist`` (default: Debian's
        ``/usr/share/datasets/fashion-mnist``), unused for ``digits``.
    n_samples : int, default=None
        Size of a random subset (drawn without replacement with ``seed``,
        kept in data set order); ``None`` or at least the data set size keeps
        every image.
    seed : int, default=0
        Seed of the subset.
    image_size : int, default=None
        ``folder`` only: the size images are resized to (``None``: the size of
        the first image).

    Returns
    -------
    X : ndarray of shape (n, H, W) or (n, H, W, 3)
        Images, uint8 in [0, 255] or float32 in [0, 1] (digits).
    y : ndarray of shape (n,)
        Class labels.
    info : dict
        ``name``, ``title``, ``n_total`` (size before subsetting),
        ``n_classes`` (classes of the whole data set), ``indices`` (the
        subset's positions in the data set, an ndarray), ``data_path``.

    Raises
    ------
    ValueError
        If ``dataset`` is unknown, a required ``data_path`` is missing or
        ``n_samples`` is not positive.
    """
    from skspice import datasets as ds

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}.")
    if data_path is None and dataset in ("cifar10", "cifar100", "folder"):
        raise ValueError(f"dataset {dataset!r} needs a data path (--data-path).")
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}.")
    title = DATASETS[dataset]
    if dataset == "digits":
        X, y = ds.load_digits_images()
    elif dataset == "fashion-mnist":
        path = ds.FASHION_MNIST_PATH if data_path is None else data_path
        X, y = ds.load_fashion_mnist(path=path)
        data_path = path
    elif dataset == "cifar10":
        X, y = ds.load_cifar10(data_path)
    elif dataset == "cifar100":
        X, y = ds.load_cifar100(data_path, coarse=True)
    else:
        X, y = ds.load_image_folder(data_path, image_size=image_size)
        title = f"Image folder `{Path(data_path).expanduser().resolve().name}`"
    n_total = len(X)
    n_classes = len(np.unique(y))
    indices = np.arange(n_total)
    if n_samples is not None and n_samples < n_total:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(n_total, size=n_samples, replace=False))
        X, y = X[indices], y[indices]
    info = {
        "name": dataset_key(dataset, data_path),
        "title": title,
        "n_total": int(n_total),
        "n_classes": int(n_classes),
        "indices": indices,
        "data_path": None if data_path is None else str(data_path),
    }
    return X, y, info


def flatten_pixels(X):
    """Raw pixels as float32 rows in [0, 1] (the KMeans input).

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C)
        uint8 images in [0, 255] or float images in [0, 1].

    Returns
    -------
    ndarray of shape (n, H * W * C), dtype float32
    """
    X = np.asarray(X)
    rows = X.reshape(len(X), -1)
    if X.dtype == np.uint8:
        return rows.astype(np.float32) / np.float32(255.0)
    return rows.astype(np.float32)


# ----------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------


def parse_params(items):
    """Parse ``KEY=VALUE`` strings into SPICEClustering keyword arguments.

    Parameters
    ----------
    items : list of str
        ``KEY=VALUE`` pairs. Values are read with :func:`ast.literal_eval`
        (numbers, tuples, ``None``, quoted strings ...) and kept as plain
        strings when that fails (``device=cuda``, ``feature_epochs=auto``).

    Returns
    -------
    params : dict
        Later pairs override earlier ones.

    Raises
    ------
    ValueError
        If an item has no ``=``, the key is not an identifier, or the key is
        one the script sets itself (``n_clusters``, ``random_state``).
    """
    params = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}.")
        if key in _RESERVED_PARAMS:
            raise ValueError(
                f"--param {key}=... is not allowed: the script sets it from "
                f"{_RESERVED_PARAMS[key]}."
            )
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = raw
        params[key] = value
    return params


# ----------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------


def _read_status_kib(field):
    """A ``/proc/self/status`` memory field in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss():
    """Peak resident memory of the calling process, in MiB.

    Returns
    -------
    peak : dict
        ``ru_maxrss_mib``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
        (KiB on Linux, bytes on macOS). ``vmhwm_mib``: ``VmHWM`` from
        ``/proc/self/status`` (Linux only, else None). ``peak_rss_mib``: the
        value to report, ``vmhwm_mib`` when available.

    Notes
    -----
    On Linux, ``ru_maxrss`` is preserved across ``execve``: a freshly started
    child process reports at least the peak of the process that started it
    (with ``vfork``, which :mod:`subprocess` uses, the parent's whole peak).
    ``VmHWM`` is the high-water mark of the child's own address space, i.e.
    its ``ru_maxrss`` without that inheritance, so it is preferred.
    """
    ru_maxrss_mib = None
    try:
        import resource

        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ru_maxrss_mib = raw / (2**20 if sys.platform == "darwin" else 1024)
    except ImportError:  # Windows
        pass
    hwm = _read_status_kib("VmHWM")
    vmhwm_mib = None if hwm is None else hwm / 1024
    return {
        "peak_rss_mib": vmhwm_mib if vmhwm_mib is not None else ru_maxrss_mib,
        "peak_rss_source": "VmHWM" if vmhwm_mib is not None else "ru_maxrss",
        "ru_maxrss_mib": ru_maxrss_mib,
        "vmhwm_mib": vmhwm_mib,
    }


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if hasattr(obj, "tolist"):  # ndarrays, tensors
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return repr(obj)


def _write_json(path, obj):
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True)
    Path(path).write_text(text + "\n")


def _worker_kmeans(X, spec):
    from sklearn.cluster import KMeans

    start = time.perf_counter()
    rows = flatten_pixels(X)
    kmeans = KMeans(n_clusters=spec["n_clusters"], n_init=10, random_state=spec["seed"])
    labels = kmeans.fit_predict(rows)
    fit_seconds = time.perf_counter() - start
    memory = peak_rss()  # before anything else is allocated
    return {"fit_seconds": fit_seconds, **memory}, {"labels": labels}


def _worker_spice(X, spec):
    import torch
    from sklearn.cluster import KMeans

    import skspice
    from skspice import SPICEClustering

    params = {k: ast.literal_eval(v) for k, v in spec["params"].items()}
    estimator = SPICEClustering(
        n_clusters=spec["n_clusters"], random_state=spec["seed"], **params
    )
    before_fit = peak_rss()["peak_rss_mib"]
    start = time.perf_counter()
    estimator.fit(X)
    fit_seconds = time.perf_counter() - start
    memory = peak_rss()  # the fit's peak, before the extra scoring below

    device = estimator.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    cuda = device.type == "cuda"

    start = time.perf_counter()
    kmeans = KMeans(n_clusters=spec["n_clusters"], n_init=10, random_state=spec["seed"])
    embedding_labels = kmeans.fit_predict(estimator.embedding_)
    embedding_seconds = time.perf_counter() - start

    epochs = {}
    for record in estimator.history_:
        epochs[record["stage"]] = epochs.get(record["stage"], 0) + 1
    result = {
        "fit_seconds": fit_seconds,
        **memory,
        "rss_before_fit_mib": before_fit,
        "stage_seconds": dict(estimator.stage_seconds_),
        "n_reliable": int(estimator.reliable_mask_.sum()),
        "contrast_normalization": bool(estimator.contrast_normalization_),
        "horizontal_flip": bool(estimator.horizontal_flip_),
        "kmeans_on_embedding_seconds": embedding_seconds,
        "embedding_dim": int(estimator.embedding_.shape[1]),
        "epochs_run": epochs,
        "selected_head": estimator.selected_head_,
        "history": estimator.history_,
        "params_used": {
            k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
            for k, v in estimator.get_params().items()
        },
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "cuda_max_memory_allocated_mib": (
            torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
        ),
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "skspice_version": skspice.__version__,
    }
    labels = {
        "labels": estimator.labels_,
        "self_labels": estimator.self_labels_,
        "embedding_kmeans_labels": embedding_labels,
        "reliable_mask": estimator.reliable_mask_,
    }
    return result, labels


def _worker(spec_path):
    """Child-process entry point: fit one method, write its results."""
    start = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    X = np.load(spec["data"])
    fn = {"kmeans": _worker_kmeans, "spice": _worker_spice}[spec["method"]]
    result, labels = fn(X, spec)
    result["process_seconds"] = time.perf_counter() - start
    np.savez(spec["labels_out"], **labels)
    _write_json(spec["out"], result)
    return 0


def run_method(method, X, n_clusters, seed=0, params=None, workdir=None):
    """Fit one method in a fresh child process and return its results.

    The child re-runs this script with a hidden flag, loads ``X`` from a
    ``.npy`` file, fits, and writes its results to a file. Only the images go
    to the child; the labels stay in the parent.

    Parameters
    ----------
    method : {"kmeans", "spice"}
        ``"kmeans"``: ``KMeans(n_clusters, n_init=10, random_state=seed)`` on
        the raw pixels flattened to [0, 1] floats. ``"spice"``:
        ``SPICEClustering(n_clusters, random_state=seed, **params)`` on the
        images, then ``KMeans(n_init=10)`` on its ``embedding_``.
    X : ndarray of shape (n, H, W) or (n, H, W, C)
        The images.
    n_clusters : int
        Number of clusters.
    seed : int, default=0
        ``random_state`` of the method.
    params : dict, default=None
        SPICEClustering keyword arguments (``repr``-able literals).
    workdir : str or os.PathLike, default=None
        Folder for the exchange files (a temporary one when None).

    Returns
    -------
    result : dict
        ``fit_seconds``, ``process_seconds`` (including imports and loading),
        ``peak_rss_mib`` (peak resident memory of the child, see
        :func:`peak_rss`), ``ru_maxrss_mib``, ``vmhwm_mib``, and for SPICE
        ``stage_seconds``, ``n_reliable``, ``device_name`` etc.
    labels : dict of ndarray
        ``labels``; for SPICE also ``self_labels``,
        ``embedding_kmeans_labels`` and ``reliable_mask``.

    Raises
    ------
    RuntimeError
        If the child process fails.
    """
    if method not in ("kmeans", "spice"):
        raise ValueError(f"method must be 'kmeans' or 'spice', got {method!r}.")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        data = tmp / "X.npy"
        np.save(data, np.asarray(X))
        spec = {
            "method": method,
            "data": str(data),
            "n_clusters": int(n_clusters),
            "seed": int(seed),
            "params": {k: repr(v) for k, v in (params or {}).items()},
            "out": str(tmp / "result.json"),
            "labels_out": str(tmp / "labels.npz"),
        }
        spec_path = tmp / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        command = [sys.executable, str(Path(__file__).resolve())]
        proc = subprocess.run(command + [_WORKER_FLAG, str(spec_path)], env=env)
        if proc.returncode != 0:
            raise RuntimeError(
                f"the {method} child process failed with exit status "
                f"{proc.returncode}; its error is printed above."
            )
        result = json.loads(Path(spec["out"]).read_text())
        with np.load(spec["labels_out"]) as npz:
            labels = {k: npz[k] for k in npz.files}
    return result, labels


# ----------------------------------------------------------------------------
# machine
# ----------------------------------------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory_gib():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def machine_info(device="cpu"):
    """Describe the machine and the software versions.

    Parameters
    ----------
    device : str, default="cpu"
        The device SPICE used (``torch.cuda.get_device_name()`` or "cpu").

    Returns
    -------
    info : dict
        ``platform``, ``processor``, ``cpu_model``, ``cpu_count``,
        ``memory_gib``, ``python``, ``numpy``, ``torch``, ``sklearn``,
        ``skspice``, ``pillow``, ``device``, ``git_commit``, ``date`` (UTC,
        ISO 8601).
    """
    import PIL
    import sklearn
    import torch

    import skspice

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _total_memory_gib(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "skspice": skspice.__version__,
        "pillow": PIL.__version__,
        "device": device,
        "git_commit": _git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def describe_machine(machine):
    """One line naming the machine and the software versions.

    Parameters
    ----------
    machine : dict
        As returned by :func:`machine_info`.

    Returns
    -------
    str
    """
    memory = machine.get("memory_gib")
    memory = f"{memory:.0f} GiB RAM" if memory else "unknown RAM"
    return (
        f"{machine.get('cpu_model') or 'unknown CPU'} "
        f"({machine.get('cpu_count')} logical CPUs), {memory}, "
        f"{machine.get('platform')}; device: {machine.get('device')}; "
        f"Python {machine.get('python')}, torch {machine.get('torch')}, "
        f"scikit-learn {machine.get('sklearn')}, skspice {machine.get('skspice')}"
    )


# ----------------------------------------------------------------------------
# cluster grid
# ----------------------------------------------------------------------------


def _cell_size(height, width, min_cell=GRID_MIN_CELL, max_cell=GRID_MAX_CELL):
    """Displayed size of one image: integer upscaling of small images."""
    side = max(height, width)
    if side < min_cell:
        factor = math.ceil(min_cell / side)
        return height * factor, width * factor
    if side > max_cell:
        scale = max_cell / side
        return max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


def grid_size(
    n_rows,
    image_shape,
    per_cluster=10,
    min_cell=GRID_MIN_CELL,
    max_cell=GRID_MAX_CELL,
    label_width=GRID_LABEL_WIDTH,
    pad=GRID_PAD,
):
    """Pixel size ``(width, height)`` of a :func:`cluster_grid` image.

    Parameters
    ----------
    n_rows : int
        Number of clusters (rows).
    image_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)`` of one image.
    per_cluster, min_cell, max_cell, label_width, pad
        As in :func:`cluster_grid`.

    Returns
    -------
    size : tuple of int
        ``(label_width + per_cluster * (w + pad) + pad,
        pad + n_rows * (max(h, 28) + pad))`` where ``(h, w)`` is the displayed
        image size: images smaller than ``min_cell`` are upscaled by the
        smallest integer factor reaching it, larger than ``max_cell``
        downscaled to it.
    """
    h, w = _cell_size(image_shape[0], image_shape[1], min_cell, max_cell)
    row = max(h, GRID_MIN_ROW)
    return label_width + per_cluster * (w + pad) + pad, pad + n_rows * (row + pad)


def _to_uint8(images):
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(images, 0, 255).astype(np.uint8)


def cluster_grid(
    images,
    labels,
    n_clusters=None,
    per_cluster=10,
    random_state=0,
    min_cell=GRID_MIN_CELL,
    max_cell=GRID_MAX_CELL,
    label_width=GRID_LABEL_WIDTH,
    pad=GRID_PAD,
):
    """Grid of random sample images of every cluster, composed with PIL.

    One row per cluster ``0 .. n_clusters - 1`` (empty clusters included),
    with the cluster id and its size (``n=...``) in a label column on the
    left, then up to ``per_cluster`` images of the cluster drawn at random.

    Parameters
    ----------
    images : ndarray of shape (n, H, W) or (n, H, W, C)
        uint8 images in [0, 255] or float images in [0, 1]; ``C`` in {1, 3}.
    labels : array-like of shape (n,)
        Cluster of each image (non-negative ints).
    n_clusters : int, default=None
        Number of rows; at least ``max(labels) + 1``.
    per_cluster : int, default=10
        Images shown per cluster.
    random_state : int, default=0
        Seed of the choice of images.
    min_cell : int, default=32
        Images smaller than this are upscaled (nearest neighbour) by the
        smallest integer factor reaching it, so 8x8 digits show as 32x32.
    max_cell : int, default=96
        Images larger than this are downscaled (bilinear) to it.
    label_width : int, default=72
        Width of the label column.
    pad : int, default=2
        Gap between images.

    Returns
    -------
    grid : PIL.Image.Image
        An RGB image of size :func:`grid_size`.
    """
    images = _to_uint8(images)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise ValueError(
            "images must be (n, H, W) or (n, H, W, C) with one label per image, "
            f"got shape {images.shape} and {len(labels)} labels."
        )
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative cluster ids.")
    n_rows = max(int(labels.max()) + 1 if labels.size else 0, int(n_clusters or 0))
    height, width = images.shape[1:3]
    cell_h, cell_w = _cell_size(height, width, min_cell, max_cell)
    row_h = max(cell_h, GRID_MIN_ROW)
    size = grid_size(
        n_rows, (height, width), per_cluster, min_cell, max_cell, label_width, pad
    )
    canvas = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    rng = np.random.default_rng(random_state)
    resample = _NEAREST if cell_h >= height else _BILINEAR
    for c in range(n_rows):
        top = pad + c * (row_h + pad)
        members = np.flatnonzero(labels == c)
        text_top = top + (row_h - GRID_MIN_ROW) // 2  # centred in the row
        draw.text((pad + 2, text_top + 2), f"cluster {c}", fill=(0, 0, 0))
        draw.text((pad + 2, text_top + 15), f"n={len(members)}", fill=(90, 90, 90))
        chosen = rng.choice(members, size=min(per_cluster, len(members)), replace=False)
        for j, i in enumerate(chosen):
            tile = Image.fromarray(images[i])
            if tile.size != (cell_w, cell_h):
                tile = tile.resize((cell_w, cell_h), resample)
            left = label_width + j * (cell_w + pad) + pad
            canvas.paste(tile.convert("RGB"), (left, top + (row_h - cell_h) // 2))
    return canvas


# ----------------------------------------------------------------------------
# markdown
# ----------------------------------------------------------------------------


def _fmt_seconds(seconds):
    if seconds is None:
        return "-"
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def _fmt_mib(mib):
    return "-" if mib is None else f"{mib:.0f}"


def table_rows(results):
    """The rows of the results table.

    Parameters
    ----------
    results : dict
        The content of ``results.json``.

    Returns
    -------
    rows : list of dict
        ``method``, ``scores`` (``acc``, ``nmi``, ``ari``), ``seconds`` and
        ``peak_rss_mib`` (None for stage rows: memory is per process).
    """
    kmeans, spice = results["methods"]["kmeans"], results["methods"]["spice"]
    rows = [
        {
            "method": "KMeans (raw pixels, n_init=10)",
            "scores": kmeans["scores"],
            "seconds": kmeans["fit_seconds"],
            "peak_rss_mib": kmeans["peak_rss_mib"],
        },
        {
            "method": "SPICEClustering (final `labels_`)",
            "scores": spice["scores"],
            "seconds": spice["fit_seconds"],
            "peak_rss_mib": spice["peak_rss_mib"],
        },
    ]
    for stage in spice["stages"]:
        rows.append(
            {
                "method": stage["name"],
                "scores": stage["scores"],
                "seconds": stage["seconds"],
                "peak_rss_mib": None,
            }
        )
    return rows


def render_markdown(results):
    """The results table in markdown.

    Parameters
    ----------
    results : dict
        The content of ``results.json``.

    Returns
    -------
    table : str
        One row per method (KMeans, SPICEClustering) and one per SPICE stage;
        columns ACC, NMI, ARI, time (s), peak RSS (MiB). Stage rows give the
        stage's own time and no memory (memory is measured per process).
    """
    lines = [
        "| Method | ACC | NMI | ARI | time (s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table_rows(results):
        s = row["scores"]
        lines.append(
            f"| {row['method']} | {s['acc']:.3f} | {s['nmi']:.3f} | {s['ari']:.3f} "
            f"| {_fmt_seconds(row['seconds'])} | {_fmt_mib(row['peak_rss_mib'])} |"
        )
    return "\n".join(lines) + "\n"


def render_section(results, image_path="clusters.png", heading_level=2):
    """A self-contained markdown section: data, command, machine, table, grid.

    Parameters
    ----------
    results : dict
        The content of ``results.json``.
    image_path : str, default="clusters.png"
        Link to the cluster grid, relative to the markdown file.
    heading_level : int, default=2
        Level of the section heading.

    Returns
    -------
    section : str
    """
    data, spice = results["data"], results["methods"]["spice"]
    machine = results["machine"]
    shape = "x".join(str(s) for s in data["image_shape"])
    params = results["params"]
    params_text = (
        ", ".join(f"`{k}={v!r}`" for k, v in sorted(params.items()))
        if params
        else "none (defaults)"
    )
    subset = (
        f"a random subset of {data['n_samples']} of the {data['n_total']} images "
        f"(seed {results['seed']})"
        if data["n_samples"] < data["n_total"]
        else f"all {data['n_samples']} images"
    )
    n = data["n_samples"]
    reliable = spice["n_reliable"]
    stage_times = ", ".join(
        f"{k} {_fmt_seconds(v)} s" for k, v in spice["stage_seconds"].items()
    )
    commit = machine.get("git_commit")
    commit = f", commit `{commit[:12]}`" if commit else ""
    extra_kmeans = _fmt_seconds(spice["kmeans_on_embedding_seconds"])
    if "semi" in spice.get("epochs_run", {"semi": 1}):
        semi_text = (
            f"SPICE-Semi trained on {reliable} reliable pseudo-labels "
            f"({100 * reliable / n:.1f}% of the samples)."
        )
    else:
        semi_text = "Stage 3 was skipped (`semi_epochs=0`): `labels_` are SPICE-Self's."
    hashes = "#" * heading_level
    lines = [
        f"{hashes} {data['title']}",
        "",
        f"{subset[0].upper()}{subset[1:]}, {shape} px, {data['n_classes']} classes "
        f"(`n_clusters={data['n_classes']}`). Labels are used only for scoring.",
        "",
        f"* Command: `{results['command']}`",
        f"* Machine: {describe_machine(machine)}",
        f"* Date: {machine.get('date')}{commit}",
        f"* SPICEClustering parameters overridden: {params_text}; "
        f"`random_state={results['seed']}`.",
        "",
        render_markdown(results).rstrip("\n"),
        "",
        "ACC is Hungarian-matched accuracy; NMI uses the arithmetic mean. Time is "
        "the fit's wall time (stage rows: that stage alone; "
        f"{stage_times}). The stage-1 row scores KMeans (n_init=10) on the "
        f"stage-1 features, which took {extra_kmeans} s more (not part of "
        f"SPICE's fit). {semi_text} Peak RSS is the high-water resident "
        "memory of the child "
        "process that ran the method, including the Python interpreter and "
        f"imports ({_fmt_mib(spice.get('rss_before_fit_mib'))} MiB before "
        "SPICE's fit).",
        "",
        f"![Random samples of each SPICE cluster]({image_path})",
        "",
        "Random samples of each SPICE cluster (one row per cluster, with its size).",
        "",
    ]
    return "\n".join(lines)


_DOCS_HEADER = (
    "# Benchmarks\n\n"
    "SPICEClustering against KMeans on real data sets, written by "
    "`benchmarks/run.py --docs`. Each section is replaced when its data set is "
    "benchmarked again.\n"
)


def _markers(key):
    return (
        f"<!-- benchmark:{key}:start -->",
        f"<!-- benchmark:{key}:end -->",
    )


def update_docs(docs_path, key, section):
    """Write or replace one data set's section of a markdown file.

    The section is wrapped in ``<!-- benchmark:KEY:start -->`` /
    ``<!-- benchmark:KEY:end -->`` comments. A previous section with the same
    key is replaced in place; a new key is appended at the end; everything
    else in the file is kept. A missing file is created with a short header.

    Parameters
    ----------
    docs_path : str or os.PathLike
        The markdown file.
    key : str
        The data set's key (e.g. ``"digits"``).
    section : str
        Markdown of the section.

    Returns
    -------
    path : pathlib.Path
        ``docs_path``.
    """
    path = Path(docs_path)
    start, end = _markers(key)
    block = f"{start}\n{section.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else _DOCS_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------


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
            f"{', '.join(sorted(valid - set(_RESERVED_PARAMS)))}."
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
    results : dict or int
        The content of ``results.json`` (an int exit status for the hidden
        child-process mode).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [_WORKER_FLAG]:
        return _worker(argv[1])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_path is not None and args.dataset == "digits":
        parser.error("--data-path is not used by --dataset digits.")
    if args.image_size is not None and args.dataset != "folder":
        parser.error("--image-size is only used by --dataset folder.")
    if args.n_samples is not None and args.n_samples < 1:
        parser.error("--n-samples must be positive.")
    try:
        params = parse_params(args.param)
        _check_params(params)
    except ValueError as exc:
        parser.error(str(exc))
    if args.data_path is None and args.dataset in ("cifar10", "cifar100", "folder"):
        parser.error(f"--dataset {args.dataset} needs --data-path.")

    started = time.perf_counter()
    X, y, info = load_dataset(
        args.dataset, args.data_path, args.n_samples, args.seed, args.image_size
    )
    key = info["name"]
    out_dir = Path(args.out_dir) if args.out_dir else BENCHMARKS_DIR / "results" / key
    out_dir.mkdir(parents=True, exist_ok=True)
    k = info["n_classes"]
    _log(
        f"{key}: {len(X)} images of shape {X.shape[1:]}, {k} classes; "
        f"results in {out_dir}"
    )

    from skspice.metrics import evaluate

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

    np.savez(
        out_dir / "labels.npz",
        indices=info["indices"],
        y=y,
        kmeans=kmeans_labels["labels"],
        spice=spice_labels["labels"],
        spice_self=spice_labels["self_labels"],
        spice_embedding_kmeans=spice_labels["embedding_kmeans_labels"],
        reliable_mask=spice_labels["reliable_mask"],
    )
    grid = cluster_grid(X, spice_labels["labels"], n_clusters=k, random_state=args.seed)
    grid.save(out_dir / "clusters.png")

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
            "title": info["title"],
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
    _write_json(out_dir / "results.json", results)
    # JSON round trip: the returned dict is exactly what the file holds.
    results = json.loads((out_dir / "results.json").read_text())
    print(render_markdown(results), end="", flush=True)
    return results


if __name__ == "__main__":
    if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, str(REPO_ROOT))
    status = main()
    sys.exit(status if isinstance(status, int) else 0)

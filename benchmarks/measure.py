"""Fit one clustering method in a fresh child process and measure it.

:func:`run_method` starts this file as a script on a spec file; the child
loads the images, fits KMeans (raw pixels) or :class:`skspice.SPICEClustering`,
and writes its labels, wall times and peak resident memory back, so that each
method's time and memory are measured on their own.
"""

import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["flatten_pixels", "peak_rss", "run_method", "write_json"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def flatten_pixels(X):
    """Raw pixels as float32 rows in [0, 1] (the KMeans input).

    The scaling of :func:`skspice.inputs.as_model_input` (uint8 divided by
    255, floats kept), in numpy alone: importing :mod:`skspice` imports torch,
    which would inflate the KMeans child's peak memory several times over.

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


def write_json(path, obj):
    """Write ``obj`` as indented JSON (numpy values as plain numbers and lists).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    obj : object
        JSON-able data; numpy scalars and arrays, sets, tuples and paths are
        converted, anything else is written as its ``repr``.
    """
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
    from skspice.estimator import _resolve_device

    params = {k: ast.literal_eval(v) for k, v in spec["params"].items()}
    estimator = SPICEClustering(
        n_clusters=spec["n_clusters"], random_state=spec["seed"], **params
    )
    before_fit = peak_rss()["peak_rss_mib"]
    start = time.perf_counter()
    estimator.fit(X)
    fit_seconds = time.perf_counter() - start
    memory = peak_rss()  # the fit's peak, before the extra scoring below

    device = _resolve_device(estimator.device)  # the device the fit used
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
        "reliable_labels": estimator.reliable_labels_,
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
    write_json(spec["out"], result)
    return 0


def run_method(method, X, n_clusters, seed=0, params=None, workdir=None):
    """Fit one method in a fresh child process and return its results.

    The child runs this file as a script, loads ``X`` from a
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
        command = [sys.executable, str(Path(__file__).resolve()), str(spec_path)]
        proc = subprocess.run(command, env=env)
        if proc.returncode != 0:
            raise RuntimeError(
                f"the {method} child process failed with exit status "
                f"{proc.returncode}; its error is printed above."
            )
        result = json.loads(Path(spec["out"]).read_text())
        with np.load(spec["labels_out"]) as npz:
            labels = {k: npz[k] for k in npz.files}
    return result, labels


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))

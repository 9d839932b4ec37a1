"""Figures of a clustering: sample grids, loss curves, confusion, reliability.

Every function returns a :class:`matplotlib.figure.Figure` built with the
object API: nothing is shown, no pyplot state is touched and the global
backend is left alone. Save a figure with ``fig.savefig("clusters.png")``;
in a Jupyter notebook a returned figure displays as the cell's value.

matplotlib is an optional dependency: ``pip install "skspice[plot]"``.
"""

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np

from .inputs import as_model_input
from .metrics import cluster_accuracy, match_clusters

__all__ = [
    "plot_cluster_grid",
    "plot_confusion",
    "plot_history",
    "plot_reliability",
]

#: Panel titles of the stages in ``SPICEClustering.history_``.
STAGE_TITLES = {
    "feature": "Stage 1: MoCo features",
    "self-label": "Stage 2: SPICE-Self",
    "semi": "Stage 3: SPICE-Semi",
}

# Layout of plot_cluster_grid, in inches.
_CELL = 0.62  # longer side of one image
_GAP = 0.04  # between images
_LABEL = 1.35  # row-label column
_TOP = 0.45  # title band


def _new_figure(figsize):
    """A pyplot-free Figure (no backend is selected or changed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "skspice.plotting needs matplotlib; install it with "
            'pip install "skspice[plot]"'
        ) from exc
    return Figure(figsize=figsize)


def _int_labels(labels, n, name="labels"):
    """``labels`` as a 1-D int64 array of length ``n``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but there are {n} samples; "
            "pass one label per sample."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"{name} must hold integer cluster ids, got {arr.dtype}.")
    return arr.astype(np.int64)


# --------------------------------------------------------------- cluster grid
def plot_cluster_grid(
    images, labels, *, proba=None, n_per_cluster=10, title=None, max_clusters=None
):
    """Grid of sample images, one row per cluster.

    Each row shows up to ``n_per_cluster`` images of one cluster, the most
    confident first when ``proba`` is given (by ``proba[i, labels[i]]``),
    else in data order, with ``"cluster k (n=...)"`` on its left.

    Parameters
    ----------
    images : array-like or list of PIL images
        Images ``(n, H, W)`` or ``(n, H, W, C)`` with ``C`` in {1, 3}, uint8
        in [0, 255] or floats in [0, 1], or a list of PIL images of one size
        (the inputs :class:`~skspice.SPICEClustering` takes).
    labels : array-like of int, shape (n,)
        Cluster of each image, e.g. ``est.labels_``. Samples with a negative
        label (``-1`` in ``reliable_labels_``) are left out.
    proba : array-like of shape (n, n_clusters), default=None
        Cluster probabilities, e.g. ``est.predict_proba(images)``; orders
        each row by confidence and makes every cluster of ``proba`` a row,
        empty ones included.
    n_per_cluster : int, default=10
        Images per row.
    title : str, default=None
        Figure title; ``None`` names the number of clusters and the order.
    max_clusters : int, default=None
        Show at most this many clusters: the largest ones, in order of
        cluster id. ``None`` shows all.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One row of axes per cluster, ``n_per_cluster`` axes per row.

    Raises
    ------
    ValueError
        If the images are not images, or ``labels`` / ``proba`` do not match
        them.

    Examples
    --------
    >>> from skspice.datasets import load_digits_images
    >>> from skspice.plotting import plot_cluster_grid
    >>> X, y = load_digits_images()
    >>> fig = plot_cluster_grid(X[:200], y[:200], n_per_cluster=8)
    >>> len(fig.axes)
    80
    >>> fig.savefig("digit_grid.png")  # doctest: +SKIP
    """
    data, profile = as_model_input(images, argname="images")
    if profile.kind != "image":
        raise ValueError(
            f"images must be (n, H, W) or (n, H, W, C) images, got 2-D rows of "
            f"shape {data.shape}; reshape flattened images first."
        )
    n = data.shape[0]
    labels = _int_labels(labels, n)
    if not isinstance(n_per_cluster, (int, np.integer)) or n_per_cluster < 1:
        raise ValueError(
            f"n_per_cluster must be a positive int, got {n_per_cluster!r}."
        )
    if max_clusters is not None and (
        not isinstance(max_clusters, (int, np.integer)) or max_clusters < 1
    ):
        raise ValueError(f"max_clusters must be a positive int, got {max_clusters!r}.")
    n_rows = int(labels.max()) + 1 if labels.size else 0
    confidence = None
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != n:
            raise ValueError(
                f"proba must have shape (n_samples, n_clusters) = ({n}, k), got "
                f"{proba.shape}."
            )
        if n_rows > proba.shape[1]:
            raise ValueError(
                f"labels go up to cluster {n_rows - 1} but proba has only "
                f"{proba.shape[1]} columns."
            )
        n_rows = proba.shape[1]
        keep = labels >= 0
        confidence = np.full(n, -np.inf)
        confidence[keep] = proba[np.flatnonzero(keep), labels[keep]]
    if n_rows == 0:
        raise ValueError("labels holds no cluster id >= 0; nothing to show.")
    sizes = np.bincount(labels[labels >= 0], minlength=n_rows)
    clusters = np.arange(n_rows)
    if max_clusters is not None and max_clusters < n_rows:
        largest = np.argsort(-sizes, kind="stable")[:max_clusters]
        clusters = np.sort(largest)

    # (n, H, W) grayscale or (n, H, W, 3) colour, floats in [0, 1]
    pictures = data[:, 0] if data.shape[1] == 1 else data.transpose(0, 2, 3, 1)
    height, width = pictures.shape[1:3]
    scale = _CELL / max(height, width)
    cell_w, cell_h = width * scale, height * scale
    fig_w = _LABEL + n_per_cluster * (cell_w + _GAP)
    fig_h = _TOP + len(clusters) * (cell_h + _GAP) + 0.1
    fig = _new_figure((fig_w, fig_h))
    axes = fig.subplots(len(clusters), n_per_cluster, squeeze=False)
    fig.subplots_adjust(
        left=_LABEL / fig_w,
        right=1 - 0.05 / fig_w,
        top=1 - _TOP / fig_h,
        bottom=0.1 / fig_h,
        wspace=_GAP / cell_w,
        hspace=_GAP / cell_h,
    )
    # Small images stay crisp; large ones are smoothed when shrunk.
    interpolation = "nearest" if max(height, width) <= 64 else "antialiased"
    for row, c in zip(axes, clusters):
        members = np.flatnonzero(labels == c)
        if confidence is not None:  # most confident first, ties in data order
            members = members[np.argsort(-confidence[members], kind="stable")]
        for ax, i in zip(row, members[:n_per_cluster]):
            ax.imshow(
                pictures[i],
                cmap="gray" if pictures.ndim == 3 else None,
                vmin=0.0,
                vmax=1.0,
                interpolation=interpolation,
            )
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        row[0].set_ylabel(
            f"cluster {c} (n={sizes[c]})",
            rotation=0,
            ha="right",
            va="center",
            fontsize=9,
        )
    if title is None:
        order = "most confident first" if confidence is not None else "data order"
        shown = f"{len(clusters)} of {n_rows}" if len(clusters) < n_rows else n_rows
        title = f"{shown} clusters, up to {n_per_cluster} samples each ({order})"
    fig.suptitle(title, y=1 - 0.12 / fig_h, va="top", fontsize=11)
    return fig


# -------------------------------------------------------------------- history
def _finite_loss(record):
    loss = record.get("loss")
    if isinstance(loss, bool) or not isinstance(loss, (Real, np.number)):
        return False
    return math.isfinite(float(loss))


def plot_history(history):
    """Loss curves of a fit, one panel per stage.

    Parameters
    ----------
    history : list of dict
        ``est.history_``: one record per epoch with ``stage``, ``epoch`` and
        ``loss`` (other keys are ignored). Records without a finite ``loss``
        are skipped. Panels follow the stages' order of appearance and are
        titled ``"Stage 1: MoCo features"`` (``"feature"``),
        ``"Stage 2: SPICE-Self"`` (``"self-label"``) and
        ``"Stage 3: SPICE-Semi"`` (``"semi"``); other stage names are used
        as they are.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes per stage, epoch on x, loss on y.

    Raises
    ------
    ValueError
        If ``history`` is not a list of records with ``stage`` and ``epoch``,
        or no record has a finite loss.

    Examples
    --------
    >>> from skspice.plotting import plot_history
    >>> history = [
    ...     {"stage": "feature", "epoch": 1, "loss": 5.1},
    ...     {"stage": "feature", "epoch": 2, "loss": 4.2},
    ...     {"stage": "self-label", "epoch": 1, "loss": 0.9},
    ... ]
    >>> fig = plot_history(history)  # or plot_history(est.history_)
    >>> [ax.get_title() for ax in fig.axes]
    ['Stage 1: MoCo features', 'Stage 2: SPICE-Self']
    """
    if isinstance(history, (str, bytes, Mapping)) or not hasattr(history, "__iter__"):
        raise ValueError(
            "history must be a list of dicts (est.history_), got "
            f"{type(history).__name__}."
        )
    curves = {}
    for i, record in enumerate(history):
        if not isinstance(record, Mapping):
            raise ValueError(
                f"history[{i}] is a {type(record).__name__}, not a dict with "
                "'stage', 'epoch' and 'loss'."
            )
        missing = [key for key in ("stage", "epoch") if key not in record]
        if missing:
            raise ValueError(f"history[{i}] has no {' or '.join(map(repr, missing))}.")
        if not _finite_loss(record):
            continue
        epochs, losses = curves.setdefault(str(record["stage"]), ([], []))
        epochs.append(record["epoch"])
        losses.append(float(record["loss"]))
    if not curves:
        raise ValueError("history has no record with a finite 'loss'; nothing to plot.")

    fig = _new_figure((3.6 * len(curves) + 0.4, 3.2))
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (stage, (epochs, losses)) in zip(axes, curves.items()):
        ax.plot(epochs, losses, marker="o" if len(epochs) <= 30 else None, ms=3)
        ax.set_title(STAGE_TITLES.get(stage, stage), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        if len(set(epochs)) <= 10:  # few epochs: a tick at each
            ax.set_xticks(sorted(set(epochs)))
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("Training loss per stage", fontsize=11)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ confusion
def plot_confusion(y_true, y_pred, *, normalize=True):
    """Confusion matrix of clusters against known classes, after matching.

    Clusters are mapped one-to-one to classes by the Hungarian matching of
    :func:`skspice.metrics.match_clusters`; column ``j`` holds the samples of
    the cluster matched to class ``j``, so the diagonal counts the correctly
    clustered samples and its share is the ACC in the title
    (:func:`skspice.metrics.cluster_accuracy`). Surplus clusters (more
    clusters than classes) get extra columns on the right.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Known class labels.
    y_pred : array-like of shape (n_samples,)
        Cluster labels, e.g. ``est.labels_``.
    normalize : bool, default=True
        Show each row as shares of its class (rows sum to 1); ``False``
        shows counts.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes (plus a colour bar): rows are classes, columns matched
        clusters; cells are annotated up to 30 rows and columns.

    Raises
    ------
    ValueError
        If the label arrays are empty or of different lengths.

    Examples
    --------
    >>> from skspice.plotting import plot_confusion
    >>> fig = plot_confusion([0, 0, 1, 1, 2], [2, 2, 0, 1, 1])
    >>> fig.axes[0].get_title()
    'Clusters vs classes after Hungarian matching: ACC 0.800'
    """
    mapping = match_clusters(y_true, y_pred)  # validates the labels
    acc = cluster_accuracy(y_true, y_pred)
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    classes = np.unique(y_true)
    matched = {cls: cluster for cluster, cls in mapping.items()}
    surplus = [c for c in np.unique(y_pred).tolist() if c not in mapping]
    columns = [matched.get(cls) for cls in classes.tolist()] + surplus
    table = np.zeros((len(classes), len(columns)), dtype=np.int64)
    for j, cluster in enumerate(columns):
        if cluster is None:  # class left without a cluster: an empty column
            continue
        in_cluster = y_pred == cluster
        table[:, j] = [np.count_nonzero(in_cluster & (y_true == c)) for c in classes]
    if normalize:
        values = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    else:
        values = table.astype(np.float64)

    side = 0.5 * max(len(classes), len(columns))
    fig = _new_figure((min(max(side + 2.2, 4.8), 20), min(max(side + 1.4, 4.0), 18)))
    ax = fig.subplots()
    image = ax.imshow(
        values,
        cmap="Blues",
        vmin=0.0,
        vmax=1.0 if normalize else max(values.max(), 1.0),
        aspect="auto",
    )
    fig.colorbar(image, ax=ax, label="share of class" if normalize else "samples")
    col_names = [
        f"{cls}\n(c{cluster})" if cluster is not None else f"{cls}\n(none)"
        for cls, cluster in zip(classes.tolist(), columns)
    ] + [f"-\n(c{c})" for c in surplus]
    ax.set_xticks(range(len(columns)), col_names, fontsize=8)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes.tolist()], fontsize=8)
    ax.set_xlabel("matched class (cluster id)")
    ax.set_ylabel("true class")
    if max(table.shape) <= 30:
        top = values.max() if values.size else 0.0
        for (i, j), v in np.ndenumerate(values):
            text = f"{v:.2f}" if normalize else f"{int(v)}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > 0.5 * top else "black",
            )
    ax.set_title(
        f"Clusters vs classes after Hungarian matching: ACC {acc:.3f}", fontsize=10
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- reliability
def plot_reliability(reliability, labels=None, *, threshold=None):
    """Histogram of per-sample reliability scores, overall or per cluster.

    Parameters
    ----------
    reliability : array-like of shape (n_samples,)
        Scores in [0, 1], e.g. ``est.reliability_`` (top probability times
        the share of neighbours in the same cluster).
    labels : array-like of int, shape (n_samples,), default=None
        Cluster of each sample, e.g. ``est.labels_``: one small histogram
        per cluster, titled with its size (and its share above
        ``threshold``). ``None``: one histogram of all samples.
    threshold : float in [0, 1], default=None
        Draw a vertical line there; the legend (and each cluster's title)
        gives the share of samples with a score above it.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes, or one per cluster (in order of cluster id).

    Raises
    ------
    ValueError
        If the scores are not finite values in [0, 1], ``labels`` does not
        match them, or ``threshold`` is outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skspice.plotting import plot_reliability
    >>> scores = np.array([0.2, 0.95, 0.99, 0.5])
    >>> fig = plot_reliability(scores, threshold=0.9)  # or est.reliability_
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'threshold 0.9: 50% above (2 of 4)'
    """
    scores = np.asarray(reliability, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"reliability must be a non-empty 1-D array of scores, got shape "
            f"{scores.shape}."
        )
    if not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1:
        raise ValueError(
            "reliability must hold finite scores in [0, 1] (est.reliability_), "
            f"got values in [{np.nanmin(scores):.4g}, {np.nanmax(scores):.4g}]."
        )
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (Real, np.number)):
            raise ValueError(
                f"threshold must be a number in [0, 1], got {threshold!r}."
            )
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}.")
        threshold = float(threshold)
    bins = np.linspace(0.0, 1.0, 21)

    def share_text(values):
        above = int(np.count_nonzero(values > threshold))
        return f"{above / values.size:.0%} above ({above} of {values.size})"

    def draw(ax, values, legend):
        ax.hist(values, bins=bins, color="tab:blue", edgecolor="white")
        ax.set_xlim(0.0, 1.0)
        if threshold is not None:
            label = f"threshold {threshold:g}: {share_text(values)}"
            ax.axvline(threshold, color="tab:red", linestyle="--", label=label)
            if legend:
                ax.legend(loc="upper left", fontsize=8)

    if labels is None:
        fig = _new_figure((6.0, 3.6))
        ax = fig.subplots()
        draw(ax, scores, legend=True)
        ax.set_xlabel("reliability")
        ax.set_ylabel("samples")
        ax.set_title(f"Reliability of {scores.size} cluster assignments", fontsize=10)
        fig.tight_layout()
        return fig

    labels = _int_labels(labels, scores.size)
    clusters = np.unique(labels)
    n_cols = min(5, clusters.size)
    n_rows = math.ceil(clusters.size / n_cols)
    fig_h = 2.0 * n_rows + 0.6 + (0.35 if threshold is not None else 0.0)
    fig = _new_figure((2.5 * n_cols + 0.3, fig_h))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True)
    for k, (ax, c) in enumerate(zip(axes.flat, clusters)):
        values = scores[labels == c]
        draw(ax, values, legend=False)
        name = f"cluster {c} (n={values.size})"
        if threshold is not None:
            name += f": {np.mean(values > threshold):.0%} > {threshold:g}"
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if k + n_cols >= clusters.size:  # lowest panel of its column
            ax.set_xlabel("reliability", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes.flat[clusters.size :]:
        ax.set_visible(False)
    fig.suptitle(f"Reliability per cluster ({scores.size} samples)", fontsize=11)
    bottom = 0.0
    if threshold is not None:
        line = axes.flat[0].lines[0]
        fig.legend(
            [line],
            [f"threshold {threshold:g}: {share_text(scores)} of all samples"],
            loc="lower center",
            fontsize=9,
            frameon=False,
        )
        bottom = 0.35 / fig_h
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    return fig

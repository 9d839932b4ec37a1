"""skspice.plotting: what each figure draws, on tiny fake data."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # no display; the functions themselves never set a backend

from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from skspice.plotting import (  # noqa: E402
    plot_cluster_grid,
    plot_confusion,
    plot_history,
    plot_reliability,
)


def _images(n=12, h=8, w=8, seed=0):
    """Distinct float images: image i is filled with a unique pattern."""
    rng = np.random.default_rng(seed)
    return rng.random((n, h, w)).astype(np.float32)


def _row_labels(fig, n_cols):
    return [ax.get_ylabel() for ax in fig.axes[::n_cols]]


def _suptitle(fig):
    get = getattr(fig, "get_suptitle", None)  # matplotlib >= 3.8
    return get() if get is not None else fig._suptitle.get_text()


def _drawn(ax):
    return np.asarray(ax.images[0].get_array())


# --------------------------------------------------------------- cluster grid
def test_grid_rows_labels_and_data_order():
    X = _images(12)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1])
    fig = plot_cluster_grid(X, labels, n_per_cluster=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 3
    assert _row_labels(fig, 3) == [
        "cluster 0 (n=4)",
        "cluster 1 (n=5)",
        "cluster 2 (n=3)",
    ]
    # Without proba: data order; cluster 1's row shows samples 1, 4, 7.
    for j, i in enumerate([1, 4, 7]):
        np.testing.assert_allclose(_drawn(fig.axes[3 + j]), X[i], atol=1e-6)
    assert "data order" in _suptitle(fig)


def test_grid_orders_by_confidence_of_own_cluster():
    X = _images(6)
    labels = np.array([0, 0, 0, 1, 1, 1])
    proba = np.array(
        [
            [0.6, 0.4],
            [0.9, 0.1],  # most confident of cluster 0
            [0.7, 0.3],
            [0.99, 0.01],  # cluster 1 by label: confidence 0.01, last
            [0.2, 0.8],
            [0.05, 0.95],  # most confident of cluster 1
        ]
    )
    fig = plot_cluster_grid(X, labels, proba=proba, n_per_cluster=3, title="T")
    assert _suptitle(fig) == "T"
    order = [1, 2, 0, 5, 4, 3]
    for ax, i in zip(fig.axes, order):
        np.testing.assert_allclose(_drawn(ax), X[i], atol=1e-6)


def test_grid_shows_empty_clusters_of_proba_and_leaves_cells_blank():
    X = _images(4)
    labels = np.array([0, 0, 2, 2])
    proba = np.full((4, 4), 0.25)
    fig = plot_cluster_grid(X, labels, proba=proba, n_per_cluster=5)
    assert len(fig.axes) == 4 * 5
    assert _row_labels(fig, 5)[1] == "cluster 1 (n=0)"
    assert _row_labels(fig, 5)[3] == "cluster 3 (n=0)"
    assert [len(ax.images) for ax in fig.axes[:5]] == [1, 1, 0, 0, 0]


def test_grid_max_clusters_keeps_the_largest_in_id_order():
    X = _images(10)
    labels = np.array([0, 1, 1, 1, 2, 3, 3, 3, 3, 2])
    fig = plot_cluster_grid(X, labels, n_per_cluster=2, max_clusters=2)
    assert _row_labels(fig, 2) == ["cluster 1 (n=3)", "cluster 3 (n=4)"]
    assert "2 of 4 clusters" in _suptitle(fig)


def test_grid_uint8_colour_and_pil_inputs():
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, size=(4, 28, 20, 3), dtype=np.uint8)
    fig = plot_cluster_grid(colour, [0, 1, 0, 1], n_per_cluster=2)
    drawn = _drawn(fig.axes[0])
    assert drawn.shape == (28, 20, 3)
    np.testing.assert_allclose(drawn, colour[0] / 255.0, atol=1e-6)

    gray = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    pil = [Image.fromarray(g) for g in gray]
    fig = plot_cluster_grid(pil, [0, 0, 0], n_per_cluster=3)
    assert len(fig.axes) == 3
    np.testing.assert_allclose(_drawn(fig.axes[2]), gray[2] / 255.0, atol=1e-6)


def test_grid_leaves_out_negative_labels():
    X = _images(4)
    fig = plot_cluster_grid(X, [-1, 0, -1, 0], n_per_cluster=2)
    assert _row_labels(fig, 2) == ["cluster 0 (n=2)"]
    np.testing.assert_allclose(_drawn(fig.axes[0]), X[1], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=[0, 1]), "labels has 2 entries but there are 4 samples"),
        (dict(labels=[0, 1, 0, 1], proba=np.ones((3, 2))), "proba must have shape"),
        (dict(labels=[0, 1, 2, 0], proba=np.ones((4, 2))), "proba has only 2"),
        (dict(labels=[0, 0, 1, 1], n_per_cluster=0), "n_per_cluster"),
        (dict(labels=[-1, -1, -1, -1]), "no cluster id"),
        (dict(labels=[0.5, 0, 1, 1]), "integer cluster ids"),
    ],
)
def test_grid_bad_input_is_a_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_cluster_grid(_images(4), **kwargs)


def test_grid_rejects_non_images():
    with pytest.raises(ValueError, match="images must be"):
        plot_cluster_grid(np.zeros((4, 5)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="float pixels"):
        plot_cluster_grid(np.full((2, 8, 8), 3.0), [0, 1])


# -------------------------------------------------------------------- history
def test_history_one_panel_per_stage_and_skips_records_without_loss():
    history = [
        {"stage": "feature", "epoch": 1, "loss": 5.0, "seconds": 1.0},
        {"stage": "feature", "epoch": 2, "loss": float("nan")},
        {"stage": "feature", "epoch": 3, "loss": 4.0},
        {"stage": "self-label", "epoch": 1, "loss": 1.0},
        {"stage": "self-label", "epoch": 2},  # no loss
        {"stage": "self-label", "epoch": 3, "loss": None},
        {"stage": "semi", "epoch": 1, "loss": 0.5, "reliable_kept": [1, 2]},
        {"stage": "semi", "epoch": 2, "loss": 0.25},
    ]
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == [
        "Stage 1: MoCo features",
        "Stage 2: SPICE-Self",
        "Stage 3: SPICE-Semi",
    ]
    curves = [ax.lines[0].get_xydata().tolist() for ax in fig.axes]
    assert curves == [[[1, 5.0], [3, 4.0]], [[1, 1.0]], [[1, 0.5], [2, 0.25]]]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert all(ax.get_ylabel() == "loss" for ax in fig.axes)


def test_history_stage_without_any_loss_gets_no_panel_and_unknown_names_stay():
    history = [
        {"stage": "feature", "epoch": 1, "loss": float("inf")},
        {"stage": "custom", "epoch": 1, "loss": 2.0},
    ]
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["custom"]


@pytest.mark.parametrize(
    "history, match",
    [
        ([], "no record with a finite 'loss'"),
        ([{"stage": "semi", "epoch": 1, "loss": None}], "no record with a finite"),
        ([{"epoch": 1, "loss": 1.0}], r"history\[0\] has no 'stage'"),
        ([{"stage": "semi", "loss": 1.0}], r"history\[0\] has no 'epoch'"),
        ([1.0], r"history\[0\] is a float"),
        ({"stage": "semi"}, "list of dicts"),
    ],
)
def test_history_bad_input_is_a_value_error(history, match):
    with pytest.raises(ValueError, match=match):
        plot_history(history)


# ------------------------------------------------------------------ confusion
def test_confusion_matrix_after_matching():
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    # cluster 7 -> class 0, cluster 3 -> class 1, cluster 5 -> class 2
    y_pred = np.array([7, 7, 3, 3, 3, 3, 5, 5, 5, 7])
    fig = plot_confusion(y_true, y_pred, normalize=False)
    ax = fig.axes[0]
    counts = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(counts, [[2, 1, 0], [0, 3, 0], [1, 0, 3]])
    assert ax.get_title() == ("Clusters vs classes after Hungarian matching: ACC 0.800")
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "0\n(c7)",
        "1\n(c3)",
        "2\n(c5)",
    ]
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        ["2", "1", "0", "0", "3", "0", "1", "0", "3"]
    )

    shares = np.asarray(plot_confusion(y_true, y_pred).axes[0].images[0].get_array())
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(shares[2], [0.25, 0.0, 0.75])


def test_confusion_surplus_clusters_and_missing_clusters():
    y_true = np.array(["a", "a", "b", "b", "b"])
    y_pred = np.array([0, 1, 2, 2, 1])  # three clusters, two classes
    ax = plot_confusion(y_true, y_pred, normalize=False).axes[0]
    counts = np.asarray(ax.images[0].get_array())
    # a <- cluster 0 (or 1), b <- cluster 2, one surplus column
    assert counts.shape == (2, 3)
    assert counts.sum() == 5
    assert np.trace(counts[:, :2]) == 3
    assert ax.get_xticklabels()[-1].get_text().startswith("-\n(c")

    ax = plot_confusion([0, 1, 2, 2], [4, 4, 4, 4], normalize=False).axes[0]
    counts = np.asarray(ax.images[0].get_array())
    # one cluster, matched to class 2; classes 0 and 1 get empty columns
    np.testing.assert_array_equal(counts, [[0, 0, 1], [0, 0, 1], [0, 0, 2]])
    assert ax.get_xticklabels()[0].get_text() == "0\n(none)"
    assert ax.get_title().endswith("ACC 0.500")


def test_confusion_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        plot_confusion([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="at least one label"):
        plot_confusion([], [])


# ---------------------------------------------------------------- reliability
def test_reliability_histogram_threshold_and_share():
    scores = np.array([0.1, 0.5, 0.91, 0.95, 1.0, 0.3, 0.2, 0.8])
    fig = plot_reliability(scores, threshold=0.9)
    (ax,) = fig.axes
    assert sum(p.get_height() for p in ax.patches) == scores.size
    (line,) = ax.lines
    assert line.get_xdata()[0] == 0.9
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["threshold 0.9: 38% above (3 of 8)"]
    assert ax.get_title() == "Reliability of 8 cluster assignments"

    fig = plot_reliability(scores)  # no threshold: no line, no legend
    assert not fig.axes[0].lines and fig.axes[0].get_legend() is None


def test_reliability_per_cluster_small_multiples():
    scores = np.array([0.1, 0.95, 0.99, 0.5, 0.97, 0.2, 0.3])
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    fig = plot_reliability(scores, labels, threshold=0.9)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "cluster 0 (n=2): 50% > 0.9",
        "cluster 1 (n=2): 50% > 0.9",
        "cluster 2 (n=3): 33% > 0.9",
    ]
    assert [sum(p.get_height() for p in ax.patches) for ax in visible] == [2, 2, 3]
    (legend,) = fig.legends
    assert legend.get_texts()[0].get_text() == (
        "threshold 0.9: 43% above (3 of 7) of all samples"
    )


def test_reliability_many_clusters_wrap_into_rows():
    labels = np.arange(12) % 7
    fig = plot_reliability(np.linspace(0, 1, 12), labels)
    assert len(fig.axes) == 10  # 2 rows of 5
    assert sum(ax.get_visible() for ax in fig.axes) == 7


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([0.5, 1.2],), {}, r"finite scores in \[0, 1\]"),
        (([0.5, float("nan")],), {}, "finite scores"),
        ((np.zeros((2, 2)),), {}, "1-D"),
        (([],), {}, "non-empty"),
        (([0.5, 0.6], [0]), {}, "labels has 1 entries but there are 2"),
        (([0.5, 0.6],), {"threshold": 1.5}, r"threshold must be in \[0, 1\]"),
        (([0.5, 0.6],), {"threshold": "high"}, "threshold must be a number"),
    ],
)
def test_reliability_bad_input_is_a_value_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_reliability(*args, **kwargs)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "skspice\[plot\]"'):
        plot_reliability([0.5])

"""Choosing n_clusters without labels (skspice.model_selection)."""

import numpy as np
import pytest
from params import quick_params
from sklearn.model_selection import GridSearchCV

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.model_selection import (
    embedding_silhouette,
    scan_n_clusters,
    silhouette_scorer,
)


def _blobs(k, per=30, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(d)[:k] * 5
    X = np.concatenate([c + rng.normal(size=(per, d)) for c in centers])
    return X, np.repeat(np.arange(k), per)


def test_silhouette_prefers_the_true_partition():
    X, y = _blobs(3)
    true = embedding_silhouette(X, y)
    merged = embedding_silhouette(X, np.minimum(y, 1))
    shuffled = embedding_silhouette(X, np.random.default_rng(0).permutation(y))
    assert true > merged > shuffled
    assert -1 <= shuffled < 0.1 < true <= 1


def test_silhouette_single_cluster_and_subsample():
    X, y = _blobs(3, per=200)
    assert embedding_silhouette(X, np.zeros(len(X), dtype=int)) == -1.0
    full = embedding_silhouette(X, y, sample_size=10_000)
    sub = embedding_silhouette(X, y, sample_size=300, random_state=1)
    assert sub == pytest.approx(full, abs=0.05)
    assert sub == embedding_silhouette(X, y, sample_size=300, random_state=1)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits_images()
    return X[:120]


def test_scan_trains_stage_one_once_and_scores_every_k(digits):
    template = SPICEClustering(**quick_params(feature_epochs=2))
    scan = scan_n_clusters(template, digits, [3, 5])
    assert scan["n_clusters"] == [3, 5]
    assert len(scan["silhouette"]) == len(scan["reliability"]) == 2
    assert scan["best"] == [3, 5][int(np.argmax(scan["silhouette"]))]
    first, second = scan["estimators"]
    assert (first.n_clusters, second.n_clusters) == (3, 5)
    # Both refits skip stage 1 and share its features.
    for est in scan["estimators"]:
        assert "feature" not in {r["stage"] for r in est.history_}
    np.testing.assert_allclose(first.embedding_, second.embedding_, atol=1e-5)
    for est, s in zip(scan["estimators"], scan["silhouette"]):
        assert s == pytest.approx(embedding_silhouette(est.embedding_, est.labels_))
    assert template.n_clusters == 10  # the template is not fitted or changed
    assert not hasattr(template, "labels_")


def test_scan_rejects_empty_candidates(digits):
    with pytest.raises(ValueError, match="candidates"):
        scan_n_clusters(SPICEClustering(), digits, [])


def test_silhouette_scorer_in_grid_search_without_labels(digits):
    search = GridSearchCV(
        SPICEClustering(**quick_params()),
        {"n_clusters": [2, 4]},
        scoring=silhouette_scorer,
        cv=2,
    ).fit(digits)
    assert search.best_params_["n_clusters"] in (2, 4)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (np.abs(scores) <= 1).all()

"""Tests for skspice.metrics."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skspice.metrics import cluster_accuracy, evaluate, match_clusters

Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_accuracy_is_one_under_any_relabelling(perm):
    y_pred = np.asarray(perm)[Y_TRUE]
    assert cluster_accuracy(Y_TRUE, y_pred) == 1.0


def test_accuracy_is_one_for_arbitrary_cluster_ids():
    y_pred = np.array([10, 10, -3, -3, -3, 7, 7, 7, 7])
    assert cluster_accuracy(Y_TRUE, y_pred) == 1.0
    # String labels work too.
    assert cluster_accuracy(list("aabbb"), [1, 1, 0, 0, 0]) == 1.0


def test_accuracy_partial_case_by_hand():
    y_true = [0, 0, 0, 1, 1, 1]
    y_pred = [1, 1, 0, 0, 0, 0]
    # Contingency (cluster x class): c0 -> [1, 3], c1 -> [2, 0].
    # Best matching c1->0, c0->1 gives 2 + 3 = 5 correct.
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    # The greedy identity mapping would give only 1/6.


def test_accuracy_larger_hand_case():
    y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    y_pred = [2, 2, 2, 1, 0, 0, 2, 1, 1, 0]
    # Table rows = clusters 0,1,2; columns = classes 0,1,2:
    # c0: [0, 2, 1]; c1: [1, 0, 2]; c2: [3, 1, 0]
    # Best: c2->0 (3) + c0->1 (2) + c1->2 (2) = 7.
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(0.7)


def test_accuracy_more_clusters_than_classes():
    # Surplus cluster's samples count as errors.
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(0.75)
    # Every sample in its own cluster: only one sample per class can match.
    assert cluster_accuracy([0, 0, 0, 1, 1], [0, 1, 2, 3, 4]) == pytest.approx(0.4)


def test_accuracy_fewer_clusters_than_classes():
    assert cluster_accuracy([0, 1, 2, 2], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert cluster_accuracy([0, 1, 2], [5, 5, 5]) == pytest.approx(1 / 3)


def test_accuracy_returns_python_float_in_unit_interval():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 50)
    y_pred = rng.integers(0, 4, 50)
    acc = cluster_accuracy(y_true, y_pred)
    assert type(acc) is float
    assert 0.25 <= acc <= 1.0  # never below the majority matching floor of 1/K


def test_accuracy_matches_brute_force_over_permutations():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 4, 40)
    y_pred = rng.integers(0, 4, 40)
    best = max(
        np.mean(np.asarray(p)[y_pred] == y_true)
        for p in itertools.permutations(range(4))
    )
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(best)


def test_match_clusters_mapping():
    y_true = [5, 5, 7, 7, 9]
    y_pred = [2, 2, 0, 0, 1]
    mapping = match_clusters(y_true, y_pred)
    assert mapping == {2: 5, 0: 7, 1: 9}
    assert all(type(k) is int and type(v) is int for k, v in mapping.items())


def test_match_clusters_leaves_out_surplus_clusters():
    mapping = match_clusters([0, 0, 1, 1, 1], [3, 3, 4, 4, 8])
    assert mapping == {3: 0, 4: 1}


def test_match_clusters_mapping_reproduces_accuracy():
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = np.array([2, 2, 2, 1, 0, 0, 2, 1, 1, 0])
    mapping = match_clusters(y_true, y_pred)
    assert mapping == {2: 0, 0: 1, 1: 2}
    mapped = np.array([mapping[c] for c in y_pred])
    assert np.mean(mapped == y_true) == pytest.approx(cluster_accuracy(y_true, y_pred))


def test_match_clusters_string_classes():
    assert match_clusters(["cat", "cat", "dog"], [1, 1, 0]) == {1: "cat", 0: "dog"}


def test_evaluate_keys_and_values():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 3, 30)
    y_pred = rng.integers(0, 4, 30)
    scores = evaluate(y_true, y_pred)
    assert set(scores) == {"acc", "nmi", "ari"}
    assert all(type(v) is float for v in scores.values())
    assert scores["acc"] == cluster_accuracy(y_true, y_pred)
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(y_true, y_pred))


def test_evaluate_perfect_clustering():
    scores = evaluate(Y_TRUE, (Y_TRUE + 1) % 3)
    assert scores == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})


@pytest.mark.parametrize("fn", [cluster_accuracy, evaluate, match_clusters])
def test_empty_input_raises(fn):
    with pytest.raises(ValueError, match="at least one label"):
        fn([], [])


@pytest.mark.parametrize("fn", [cluster_accuracy, evaluate, match_clusters])
def test_length_mismatch_raises(fn):
    with pytest.raises(ValueError):
        fn([0, 1, 1], [0, 1])


def test_two_dimensional_labels_raise():
    with pytest.raises(ValueError):
        cluster_accuracy(np.zeros((3, 2)), np.zeros((3, 2)))


def test_pseudo_label_purity_matches_on_the_whole_clustering():
    from skspice.metrics import pseudo_label_purity

    y = np.array([0, 0, 1, 1, 1, 2])
    clusters = np.array([1, 1, 0, 0, 1, 2])  # 1 -> class 0, 0 -> 1, 2 -> 2
    pseudo = np.array([1, -1, 0, 1, -1, 2])  # right, -, right, wrong, -, right
    assert pseudo_label_purity(y, clusters, pseudo) == 0.75
    assert np.isnan(pseudo_label_purity(y, clusters, np.full(6, -1)))
    with pytest.raises(ValueError):
        pseudo_label_purity(y, clusters, pseudo[:3])

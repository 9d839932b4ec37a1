"""Tests for skspice.pseudo_labels on small hand-made tensors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skspice.pseudo_labels import (
    UNLABELED,
    knn_indices,
    neighbor_smoothed,
    prototype_pseudo_labels,
    reliability_scores,
    reliable_pseudo_labels,
    spectral_coordinates,
    whitened,
)

# ---------------------------------------------------------------------------
# prototype_pseudo_labels
# ---------------------------------------------------------------------------


def _three_blobs():
    """12 unit vectors in 3-D, four per axis (samples 4c..4c+3 near e_c)."""
    gen = torch.Generator().manual_seed(0)
    centers = torch.eye(3).repeat_interleave(4, dim=0)
    feats = centers + 0.1 * torch.rand(12, 3, generator=gen)
    return F.normalize(feats, dim=1)


def _probs_from_ranking(top_per_cluster, m, k):
    """Probabilities whose column c ranks ``top_per_cluster[c]`` first (in order)."""
    probs = torch.full((m, k), 0.01)
    for c, top in enumerate(top_per_cluster):
        for rank, i in enumerate(top):
            probs[i, c] = 0.9 - 0.1 * rank
    return probs


def test_prototypes_are_mean_of_top_confident_samples():
    feats = _three_blobs()
    # M=12, K=3 -> n=4, n_center=int(0.5*4)=2. Top samples chosen on purpose
    # across blobs so the prototype is not just a blob centre.
    tops = [(5, 0), (1, 9), (11, 10)]
    probs = _probs_from_ranking(tops, 12, 3)
    _, _, protos = prototype_pseudo_labels(probs, feats)
    assert protos.shape == (3, 3)
    for c, top in enumerate(tops):
        torch.testing.assert_close(protos[c], feats[list(top)].mean(0))


def test_center_ratio_sets_number_of_prototype_members():
    feats = _three_blobs()
    tops = [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    probs = _probs_from_ranking(tops, 12, 3)
    # center_ratio=1 -> all n=4 top samples; tiny ratio -> at least one.
    _, _, full = prototype_pseudo_labels(probs, feats, center_ratio=1.0)
    _, _, one = prototype_pseudo_labels(probs, feats, center_ratio=0.01)
    for c, top in enumerate(tops):
        torch.testing.assert_close(full[c], feats[list(top)].mean(0))
        torch.testing.assert_close(one[c], feats[top[0]])


def test_each_cluster_gets_exactly_m_div_k_labels():
    gen = torch.Generator().manual_seed(1)
    m, k = 23, 4  # 23 // 4 = 5, remainder 3 samples get nothing extra
    feats = F.normalize(torch.randn(m, 6, generator=gen), dim=1)
    probs = torch.softmax(torch.randn(m, k, generator=gen), dim=1)
    idx, labels, protos = prototype_pseudo_labels(probs, feats)
    assert idx.shape == labels.shape == (k * (m // k),)
    assert protos.shape == (k, 6)
    assert torch.bincount(labels, minlength=k).tolist() == [m // k] * k
    assert idx.min() >= 0 and idx.max() < m
    for c in range(k):
        # Within one cluster a sample is labelled at most once.
        members = idx[labels == c]
        assert members.unique().numel() == members.numel()


def test_nearest_samples_to_prototype_get_its_label():
    feats = _three_blobs()
    # The most confident samples of cluster c lie in blob c.
    tops = [(2, 3), (4, 6), (9, 11)]
    probs = _probs_from_ranking(tops, 12, 3)
    idx, labels, protos = prototype_pseudo_labels(probs, feats)
    for c in range(3):
        got = set(idx[labels == c].tolist())
        assert got == set(range(4 * c, 4 * c + 4))
        # Brute force: the n largest dot products with the prototype.
        scores = feats @ protos[c]
        assert got == set(scores.argsort(descending=True)[:4].tolist())


def test_label_follows_probabilities_not_cluster_order():
    feats = _three_blobs()
    # Cluster 0's confident samples are in blob 2, cluster 2's in blob 0.
    tops = [(8, 9), (4, 5), (0, 1)]
    probs = _probs_from_ranking(tops, 12, 3)
    idx, labels, _ = prototype_pseudo_labels(probs, feats)
    assert set(idx[labels == 0].tolist()) == {8, 9, 10, 11}
    assert set(idx[labels == 2].tolist()) == {0, 1, 2, 3}


def test_one_sample_can_serve_several_clusters():
    feats = _three_blobs()
    # Sample 0 is the most confident sample of every cluster.
    probs = torch.full((12, 3), 0.01)
    probs[0] = 0.95
    probs[4, 1] = 0.5
    probs[8, 2] = 0.5
    probs[1, 0] = 0.5
    _, _, protos = prototype_pseudo_labels(probs, feats)
    torch.testing.assert_close(protos[1], feats[[0, 4]].mean(0))
    torch.testing.assert_close(protos[2], feats[[0, 8]].mean(0))


def test_fewer_samples_than_clusters_raises():
    probs = torch.full((3, 5), 0.2)
    feats = F.normalize(torch.ones(3, 2), dim=1)
    with pytest.raises(ValueError, match="at least one sample per cluster"):
        prototype_pseudo_labels(probs, feats)


def test_row_mismatch_raises():
    probs = torch.full((6, 2), 0.5)
    feats = torch.ones(5, 3)
    with pytest.raises(ValueError, match="6 rows but features has 5"):
        prototype_pseudo_labels(probs, feats)


# ---------------------------------------------------------------------------
# knn_indices
# ---------------------------------------------------------------------------


def _brute_force_knn(feats, k):
    x = feats.numpy().astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 5, 13, 2048])
def test_knn_matches_brute_force(chunk_size):
    gen = torch.Generator().manual_seed(3)
    feats = F.normalize(torch.randn(13, 5, generator=gen), dim=1)
    got = knn_indices(feats, 4, chunk_size=chunk_size)
    assert got.shape == (13, 4)
    assert got.dtype == torch.long
    np.testing.assert_array_equal(got.numpy(), _brute_force_knn(feats, 4))


def test_knn_self_first_even_with_duplicates():
    feats = F.normalize(
        torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]),
        dim=1,
    )
    got = knn_indices(feats, 3, chunk_size=2)
    np.testing.assert_array_equal(got[:, 0].numpy(), np.arange(5))
    # The two other copies are the next neighbours of each duplicate.
    for i in range(3):
        assert set(got[i, 1:].tolist()) == {0, 1, 2} - {i}


def test_knn_does_not_modify_features():
    gen = torch.Generator().manual_seed(4)
    feats = F.normalize(torch.randn(7, 3, generator=gen), dim=1)
    before = feats.clone()
    knn_indices(feats, 7, chunk_size=3)
    torch.testing.assert_close(feats, before)


def test_knn_k_equal_n_is_a_permutation():
    gen = torch.Generator().manual_seed(5)
    feats = F.normalize(torch.randn(6, 3, generator=gen), dim=1)
    got = knn_indices(feats, 6, chunk_size=4)
    for row in got.tolist():
        assert sorted(row) == list(range(6))


@pytest.mark.parametrize("k", [0, -1, 6])
def test_knn_k_out_of_bounds_raises(k):
    feats = F.normalize(torch.ones(5, 2), dim=1)
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
        knn_indices(feats, k)


# ---------------------------------------------------------------------------
# reliable_pseudo_labels
# ---------------------------------------------------------------------------


def _onehot_probs(pred, conf, k):
    """Probabilities with argmax ``pred`` and top value ``conf``."""
    pred = np.asarray(pred)
    conf = np.broadcast_to(np.asarray(conf, dtype=np.float64), pred.shape)
    probs = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    probs[np.arange(len(pred)), pred] = conf
    return torch.tensor(probs, dtype=torch.float32)


def test_reliable_known_case_without_balancing():
    # 8 samples, 2 clusters, 4 neighbours each (self first).
    pred = [0, 0, 0, 0, 1, 1, 1, 1]
    conf = [0.999, 0.999, 0.5, 0.999, 0.999, 0.999, 0.999, 0.999]
    probs = _onehot_probs(pred, conf, 2)
    neighbors = torch.tensor(
        [
            [0, 1, 2, 3],  # all agree, confident -> reliable
            [1, 0, 2, 4],  # 3/4 agree < 0.9 -> not reliable
            [2, 0, 1, 3],  # agree but conf 0.5 -> not reliable
            [3, 0, 1, 2],  # reliable
            [4, 5, 6, 7],  # reliable
            [5, 4, 6, 7],  # reliable
            [6, 4, 5, 0],  # 3/4 agree -> not reliable
            [7, 4, 5, 6],  # reliable
        ]
    )
    labels = reliable_pseudo_labels(probs, neighbors, consistency=0.9, balance=False)
    assert isinstance(labels, np.ndarray)
    assert labels.shape == (8,)
    np.testing.assert_array_equal(labels, [0, -1, -1, 0, 1, 1, -1, 1])
    assert UNLABELED == -1


def test_reliable_consistency_is_inclusive_and_confidence_exclusive():
    pred = [0, 0, 0, 0, 1, 1, 1, 1]
    probs = _onehot_probs(pred, [0.99, 0.995, 0.995, 0.995, 0.995] + [0.995] * 3, 2)
    neighbors = torch.tensor(
        [
            [0, 1, 2, 3],
            [1, 0, 2, 4],  # exactly 3/4 = 0.75 agree
            [2, 0, 1, 3],
            [3, 0, 1, 2],
            [4, 5, 6, 7],
            [5, 4, 6, 7],
            [6, 4, 5, 7],
            [7, 4, 5, 6],
        ]
    )
    labels = reliable_pseudo_labels(
        probs, neighbors, confidence=0.99, consistency=0.75, balance=False
    )
    # Sample 0: conf == 0.99 is not > 0.99; sample 1: 0.75 >= 0.75 passes.
    np.testing.assert_array_equal(labels, [-1, 0, 0, 0, 1, 1, 1, 1])


def _unbalanced_case():
    # 20 samples: cluster 0 has 12 reliable, cluster 1 has 5, cluster 2 has 3.
    pred = np.array([0] * 12 + [1] * 5 + [2] * 3)
    probs = _onehot_probs(pred, 0.999, 3)
    neighbors = torch.tensor(
        [
            [i] + [j for j in range(20) if pred[j] == pred[i] and j != i][:2]
            for i in range(20)
        ]
    )
    return pred, probs, neighbors


def test_reliable_balances_to_smallest_cluster():
    pred, probs, neighbors = _unbalanced_case()
    labels = reliable_pseudo_labels(probs, neighbors, random_state=0)
    counts = np.bincount(labels[labels >= 0], minlength=3)
    assert counts.tolist() == [3, 3, 3]
    kept = labels >= 0
    # Kept samples keep their predicted cluster; the rest are -1.
    np.testing.assert_array_equal(labels[kept], pred[kept])
    assert set(np.unique(labels[~kept]).tolist()) == {-1}
    # The smallest cluster is kept whole.
    assert (labels[17:] == 2).all()


def test_reliable_balancing_is_deterministic_with_random_state():
    _, probs, neighbors = _unbalanced_case()
    a = reliable_pseudo_labels(probs, neighbors, random_state=7)
    b = reliable_pseudo_labels(probs, neighbors, random_state=7)
    np.testing.assert_array_equal(a, b)
    c = reliable_pseudo_labels(probs, neighbors, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(a, c)
    # Over several seeds the subsample of cluster 0 changes.
    subsets = {
        tuple(
            np.flatnonzero(
                reliable_pseudo_labels(probs, neighbors, random_state=s) == 0
            )
        )
        for s in range(6)
    }
    assert len(subsets) > 1


def test_reliable_accepts_numpy_inputs():
    _, probs, neighbors = _unbalanced_case()
    a = reliable_pseudo_labels(probs, neighbors, random_state=1)
    b = reliable_pseudo_labels(probs.numpy(), neighbors.numpy(), random_state=1)
    np.testing.assert_array_equal(a, b)


def test_reliable_fallback_fills_empty_and_unpredicted_clusters():
    # 16 samples, 4 clusters. Cluster 0: 6 reliable (0-5). Cluster 1: predicted
    # for samples 6-8 but never confidently. Cluster 2: 3 reliable (9-11) and 4
    # unsure (12-15); sample 12 has a larger cluster-1 probability than member
    # 8 but is not a member. Cluster 3: predicted by nobody.
    rows = (
        [[0.999, 0.0005, 0.0, 0.0005]] * 6
        + [[0.28, 0.42, 0.0, 0.30], [0.1, 0.8, 0.0, 0.1], [0.3, 0.4, 0.0, 0.3]]
        + [[0.0005, 0.0, 0.999, 0.0005]] * 3
        + [
            [0.05, 0.45, 0.5, 0.0],
            [0.01, 0.0, 0.9, 0.09],
            [0.07, 0.0, 0.9, 0.03],
            [0.06, 0.0, 0.9, 0.04],
        ]
    )
    probs = torch.tensor(rows, dtype=torch.float32)
    pred = probs.argmax(1).numpy()
    np.testing.assert_array_equal(pred, [0] * 6 + [1] * 3 + [2] * 7)
    neighbors = torch.tensor(
        [
            [i] + [j for j in range(16) if pred[j] == pred[i] and j != i][:2]
            for i in range(16)
        ]
    )
    with pytest.warns(UserWarning, match=r"clusters \[1, 3\]"):
        labels = reliable_pseudo_labels(
            probs, neighbors, min_per_cluster=2, balance=False
        )
    counts = np.bincount(labels[labels >= 0], minlength=4)
    assert (counts >= 2).all()
    # Cluster 1 gets its own most confident members (7 then 6), not sample 12.
    assert np.flatnonzero(labels == 1).tolist() == [6, 7]
    # Cluster 3 takes the free samples with the highest probability for it.
    assert np.flatnonzero(labels == 3).tolist() == [8, 13]
    # Originally reliable samples keep their labels; the rest stay -1.
    np.testing.assert_array_equal(labels[:6], 0)
    np.testing.assert_array_equal(labels[9:12], 2)
    np.testing.assert_array_equal(labels[[12, 14, 15]], -1)

    with pytest.warns(UserWarning):
        balanced = reliable_pseudo_labels(
            probs, neighbors, min_per_cluster=2, random_state=0
        )
    assert np.bincount(balanced[balanced >= 0], minlength=4).tolist() == [2] * 4
    np.testing.assert_array_equal(balanced[[6, 7, 8, 13]], [1, 1, 3, 3])


def test_reliable_min_per_cluster_is_capped_by_n_over_k():
    # 6 samples, 3 clusters -> at most 2 per cluster can be demanded.
    probs = _onehot_probs([0, 0, 0, 0, 1, 1], 0.6, 3)
    neighbors = torch.arange(6)[:, None]
    with pytest.warns(UserWarning):
        labels = reliable_pseudo_labels(
            probs, neighbors, min_per_cluster=50, balance=False
        )
    assert np.bincount(labels[labels >= 0], minlength=3).tolist() == [2, 2, 2]


def test_reliable_fallback_when_every_sample_is_already_reliable():
    # A collapsed head: all 6 samples confidently in clusters 0 or 1 with
    # consistent neighbours, nobody predicts cluster 2. Sample 2 has the
    # highest probability for cluster 2, so it is the one to move there.
    p2 = np.array([0.001, 0.002, 0.004, 0.0015, 0.001, 0.0012])
    pred = np.array([0, 0, 0, 1, 1, 1])
    probs = np.zeros((6, 3))
    probs[:, 2] = p2
    probs[np.arange(6), pred] = 1 - p2
    neighbors = torch.tensor(
        [
            [i] + [j for j in range(6) if pred[j] == pred[i] and j != i][:1]
            for i in range(6)
        ]
    )
    with pytest.warns(UserWarning, match=r"clusters \[2\]"):
        labels = reliable_pseudo_labels(torch.tensor(probs), neighbors, balance=False)
    assert np.bincount(labels[labels >= 0], minlength=3).min() >= 1
    assert np.flatnonzero(labels == 2).tolist() == [2]


def test_reliable_no_warning_when_all_clusters_have_samples(recwarn):
    _, probs, neighbors = _unbalanced_case()
    reliable_pseudo_labels(probs, neighbors, random_state=0)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


# ---------------------------------------------------------------- spectral


def _two_rings(n_per_ring=150, seed=0):
    """Two concentric circles in 2-D, padded to 4-D and L2-normalised after a
    shift, so that centroids cannot separate them but a neighbour graph can."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, size=2 * n_per_ring)
    radius = np.repeat([1.0, 3.0], n_per_ring)
    xy = np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
    xy += rng.normal(scale=0.05, size=xy.shape)
    # Embed in 3-D on the unit sphere's cap: the rings stay rings.
    pts = np.concatenate([xy, np.full((len(xy), 1), 10.0)], 1)
    y = np.repeat([0, 1], n_per_ring)
    return torch.nn.functional.normalize(
        torch.tensor(pts, dtype=torch.float32), dim=1
    ), y


def _kmeans_acc(z, y, k):
    from sklearn.cluster import KMeans

    from skspice.metrics import cluster_accuracy

    labels = KMeans(k, n_init=10, random_state=0).fit_predict(np.asarray(z))
    return cluster_accuracy(y, labels)


def test_spectral_coordinates_shape_and_norm():
    feats, _ = _two_rings()
    z = spectral_coordinates(feats, 2, random_state=0)
    assert z.shape == (len(feats), 2) and z.dtype == torch.float32
    np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_spectral_coordinates_follow_the_graph_not_centroids():
    feats, y = _two_rings()
    assert _kmeans_acc(feats, y, 2) < 0.75  # centroids cut the rings in half
    assert _kmeans_acc(spectral_coordinates(feats, 2, random_state=0), y, 2) == 1.0


def test_spectral_coordinates_disconnected_components_and_large_n():
    # Ten tight, far-apart blobs: a graph of ten components (a repeated
    # eigenvalue) with more samples than the dense-solver limit.
    rng = np.random.default_rng(0)
    centres = torch.nn.functional.normalize(torch.randn(10, 16), dim=1) * 5
    y = np.repeat(np.arange(10), 120)
    feats = centres[y] + 0.01 * torch.tensor(rng.normal(size=(len(y), 16)))
    feats = torch.nn.functional.normalize(feats.float(), dim=1)
    z = spectral_coordinates(feats, 10, random_state=0)
    assert _kmeans_acc(z, y, 10) == 1.0


def test_spectral_coordinates_deterministic_and_validated():
    feats, _ = _two_rings(60)
    a = spectral_coordinates(feats, 2, random_state=3)
    b = spectral_coordinates(feats, 2, random_state=3)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="needs more samples"):
        spectral_coordinates(feats[:2], 2)


# ---------------------------------------------------------------- smoothed


def _noisy_blobs(n_per_blob=100, noise=0.6, seed=0):
    """Two groups on the unit sphere of R^8 whose noise makes them overlap."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:2]
    y = np.repeat([0, 1], n_per_blob)
    pts = centres[y] + noise * rng.normal(size=(len(y), 8))
    return F.normalize(torch.tensor(pts, dtype=torch.float32), dim=1), y


def _spread(z, y):
    """Mean cosine distance of the samples to their group's mean direction."""
    out = []
    for c in np.unique(y):
        members = z[torch.from_numpy(y == c)]
        mean = F.normalize(members.mean(0), dim=0)
        out.append(1 - (members @ mean).mean())
    return float(torch.stack(out).mean())


def test_neighbor_smoothed_shape_norm_and_input_unchanged():
    feats, _ = _noisy_blobs()
    before = feats.clone()
    z = neighbor_smoothed(feats, n_neighbors=10)
    assert z.shape == feats.shape and z.dtype == torch.float32
    np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, atol=1e-5)
    torch.testing.assert_close(feats, before)  # the caller's tensor is untouched


def test_neighbor_smoothed_tightens_groups():
    feats, y = _noisy_blobs()
    z = neighbor_smoothed(feats, n_neighbors=10)
    assert _spread(z, y) < 0.8 * _spread(feats, y)
    # Averaging within a neighbourhood keeps the groups apart.
    assert _kmeans_acc(z, y, 2) >= _kmeans_acc(feats, y, 2) - 0.05


def test_neighbor_smoothed_is_the_neighbour_mean_in_any_chunking():
    feats, _ = _noisy_blobs(30)
    # One neighbour (the sample itself): nothing changes.
    torch.testing.assert_close(neighbor_smoothed(feats, n_neighbors=1), feats)
    nb = knn_indices(feats, 5)
    expected = F.normalize(feats[nb].mean(1), dim=1)
    torch.testing.assert_close(neighbor_smoothed(feats, 5, chunk_size=7), expected)
    # More neighbours than samples: all samples, i.e. the global mean direction.
    z = neighbor_smoothed(feats[:4], n_neighbors=50)
    torch.testing.assert_close(z, z[:1].expand(4, -1))


def test_neighbor_smoothed_validated():
    feats, _ = _noisy_blobs(10)
    with pytest.raises(ValueError, match="n_neighbors must be at least 1"):
        neighbor_smoothed(feats, n_neighbors=0)


# ---------------------------------------------------------------- whitened


def _dominated_blobs(n_per_blob=150, seed=0):
    """Two groups apart along one axis of small variance, while a Gaussian
    nuisance axis of large variance (no class information) dominates the
    distances."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n_per_blob)
    pts = rng.normal(scale=0.05, size=(len(y), 6))
    pts[:, 0] += np.where(y == 0, -0.3, 0.3)  # the classes, 0.6 apart
    pts[:, 1] += rng.normal(scale=2.0, size=len(y))  # the nuisance
    pts[:, 2] += 10.0  # away from the origin, as embeddings are
    return torch.tensor(pts, dtype=torch.float32), y


def test_whitened_shape_norm_variance_and_input_unchanged():
    feats, _ = _dominated_blobs()
    before = feats.clone()
    z = whitened(feats, n_components=3, random_state=0)
    assert z.shape == (len(feats), 3) and z.dtype == torch.float32
    np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, atol=1e-5)
    torch.testing.assert_close(feats, before)  # the caller's tensor is untouched
    # Without shrinkage the directions are those of PCA whitening (every kept
    # component at unit variance), so the nuisance axis no longer outweighs
    # the class axis.
    from sklearn.decomposition import PCA

    raw = PCA(3, whiten=True, random_state=0).fit_transform(feats.numpy())
    np.testing.assert_allclose(raw.var(0, ddof=1), 1.0, rtol=0.02)
    expected = F.normalize(torch.from_numpy(raw).float(), dim=1)
    torch.testing.assert_close(z, expected, atol=1e-4, rtol=1e-4)


def test_whitened_lets_centroids_find_the_small_variance_classes():
    feats, y = _dominated_blobs()
    # KMeans on the raw features splits along the nuisance axis...
    assert _kmeans_acc(F.normalize(feats, dim=1), y, 2) < 0.7
    # ...and on the whitened components along the classes, shrunk or not.
    for rank in (None, 2):
        z = whitened(feats, n_components=2, shrinkage_rank=rank, random_state=0)
        assert _kmeans_acc(z, y, 2) > 0.95


def _separated_with_noise(sd=0.1, seed=0):
    """Four well-separated groups in two dimensions, 20 dimensions of small
    isotropic noise besides."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 100)
    centres = np.array([[3, 3], [3, -3], [-3, 3], [-3, -3]])
    pts = rng.normal(scale=sd, size=(len(y), 22))
    pts[:, :2] += centres[y] + rng.normal(scale=0.5, size=(len(y), 2))
    pts[:, 2] += 20.0
    return torch.tensor(pts, dtype=torch.float32), y


def test_whitened_shrinkage_keeps_well_separated_groups():
    feats, y = _separated_with_noise()
    assert _kmeans_acc(F.normalize(feats, dim=1), y, 4) == 1.0
    # Full whitening lifts the 20 noise directions to the groups' level...
    full = whitened(feats, n_components=21, random_state=0)
    assert _kmeans_acc(full, y, 4) < 0.8
    # ...the shrinkage keeps them small.
    shrunk = whitened(feats, n_components=21, shrinkage_rank=8, random_state=0)
    assert _kmeans_acc(shrunk, y, 4) == 1.0


def test_whitened_caps_components_deterministic_and_validated():
    feats, _ = _dominated_blobs(10)
    assert whitened(feats, n_components=64, random_state=0).shape == (20, 6)
    assert whitened(feats[:4], n_components=64, random_state=0).shape == (4, 3)
    a = whitened(feats, 3, random_state=1)
    torch.testing.assert_close(a, whitened(feats, 3, random_state=1))
    with pytest.raises(ValueError, match="n_components must be at least 1"):
        whitened(feats, n_components=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        whitened(feats[:1])
    with pytest.raises(ValueError, match="shrinkage_rank must be at least 1"):
        whitened(feats, shrinkage_rank=0)
    # A rank beyond the components kept uses the last one.
    torch.testing.assert_close(
        whitened(feats, 3, shrinkage_rank=3, random_state=0),
        whitened(feats, 3, shrinkage_rank=50, random_state=0),
    )


def test_reliable_counts_without_fallback():
    pred, probs, neighbors = _unbalanced_case()
    labels, counts = reliable_pseudo_labels(
        probs, neighbors, random_state=0, return_counts=True
    )
    assert counts["passed"].tolist() == [12, 5, 3]
    assert counts["added"].tolist() == [0, 0, 0]
    assert counts["kept"].tolist() == [3, 3, 3]
    np.testing.assert_array_equal(
        counts["kept"], np.bincount(labels[labels >= 0], minlength=3)
    )
    # The counts do not change the labels.
    np.testing.assert_array_equal(
        labels, reliable_pseudo_labels(probs, neighbors, random_state=0)
    )


def test_reliable_counts_report_the_fallback():
    # Cluster 2 has a single reliable sample; the floor of 3 adds two more,
    # its own most confident members (samples 18 and 19, unsure ones).
    pred = np.array([0] * 8 + [1] * 8 + [2] * 4)
    conf = np.array([0.999] * 16 + [0.999, 0.6, 0.9, 0.8])
    probs = _onehot_probs(pred, conf, 3)
    neighbors = torch.tensor(
        [
            [i] + [j for j in range(20) if pred[j] == pred[i] and j != i][:2]
            for i in range(20)
        ]
    )
    with pytest.warns(UserWarning, match=r"clusters \[2\]"):
        labels, counts = reliable_pseudo_labels(
            probs, neighbors, min_per_cluster=3, random_state=0, return_counts=True
        )
    assert counts["passed"].tolist() == [8, 8, 1]
    assert counts["added"].tolist() == [0, 0, 2]
    assert counts["kept"].tolist() == [3, 3, 3]
    assert np.flatnonzero(labels == 2).tolist() == [16, 18, 19]
    # A floor the clusters already reach adds nothing and warns nothing.
    _, counts = reliable_pseudo_labels(
        probs, neighbors, min_per_cluster=1, return_counts=True
    )
    assert counts["added"].tolist() == [0, 0, 0]
    assert counts["kept"].tolist() == [1, 1, 1]


def test_reliability_scores_are_confidence_times_agreement():
    pred = [0, 0, 0, 1, 1, 1]
    conf = [0.999, 0.9, 0.5, 0.8, 0.999, 0.7]
    probs = _onehot_probs(pred, conf, 2)
    neighbors = torch.tensor(
        [
            [0, 1, 2, 3],
            [1, 0, 2, 4],
            [2, 0, 1, 5],
            [3, 4, 5, 0],
            [4, 3, 5, 1],
            [5, 1, 2, 0],
        ]
    )
    scores = reliability_scores(probs, neighbors)
    agree = np.array([0.75, 0.75, 0.75, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(scores, np.array(conf) * agree, rtol=1e-6)
    assert scores.dtype == np.float64 and scores.shape == (6,)
    assert (scores >= 0).all() and (scores <= 1).all()
    # A reliable sample under the default test scores at least 0.99 * 0.9.
    probs = _onehot_probs([0] * 10, 0.995, 2)
    neighbors = torch.stack([torch.roll(torch.arange(10), -i) for i in range(10)])
    assert (reliability_scores(probs, neighbors) >= 0.99 * 0.9).all()

"""The pseudo-labelling maths of SPICE, as pure functions on tensors.

* :func:`prototype_pseudo_labels` - SPICE-Self: the most confident samples of
  each cluster define a prototype; the samples nearest each prototype get its
  label.
* :func:`knn_indices` - chunked cosine k-nearest neighbours (never an n x n
  matrix).
* :func:`neighbor_smoothed` - each sample's embedding averaged with its
  nearest neighbours', a space for the SPICE-Self prototypes.
* :func:`whitened` - PCA-whitened embeddings, another such space.
* :func:`reliable_pseudo_labels` - SPICE-Semi: keep samples that are confident
  and agree with their feature-space neighbours, balanced across clusters.
* :func:`reliability_scores` - the same two criteria as a graded per-sample
  score.

Nothing here knows of models, data loading or ground truth.
"""

import warnings

import numpy as np
import torch

__all__ = [
    "knn_indices",
    "neighbor_smoothed",
    "prototype_pseudo_labels",
    "reliability_scores",
    "reliable_pseudo_labels",
    "spectral_coordinates",
    "whitened",
]

#: Label given to samples that are not selected.
UNLABELED = -1


def prototype_pseudo_labels(probs, features, center_ratio=0.5):
    """Prototype pseudo-labelling of one batch (SPICE-Self).

    With ``M`` samples and ``K`` clusters, let ``n = M // K``. For each cluster
    the ``max(1, int(center_ratio * n))`` samples with the highest probability
    for it (chosen column by column, so one sample may serve two clusters)
    are averaged into a prototype; then the ``n`` samples with the largest dot
    product to that prototype get the cluster's label. Every cluster receives
    exactly ``n`` labels, so no cluster can be emptied by the labelling itself.

    Parameters
    ----------
    probs : torch.Tensor of shape (M, K)
        Cluster probabilities of the head being trained.
    features : torch.Tensor of shape (M, D)
        L2-normalised embeddings of the same samples.
    center_ratio : float, default=0.5
        Fraction of ``n`` used to build each prototype.

    Returns
    -------
    indices : torch.Tensor of shape (K * n,)
        Positions (into the batch) of the labelled samples; a position can
        occur under more than one cluster.
    labels : torch.Tensor of shape (K * n,)
        Their pseudo-labels.
    prototypes : torch.Tensor of shape (K, D)
        The cluster prototypes.
    """
    m_samples, k = probs.shape
    if features.shape[0] != m_samples:
        raise ValueError(
            f"probs has {m_samples} rows but features has {features.shape[0]}."
        )
    n = m_samples // k
    if n < 1:
        raise ValueError(
            f"prototype pseudo-labelling needs at least one sample per cluster: got "
            f"{m_samples} samples for {k} clusters."
        )
    n_center = max(1, int(center_ratio * n))
    top = probs.topk(n_center, dim=0).indices  # (n_center, K)
    prototypes = features[top].mean(dim=0)  # (K, D)
    scores = features @ prototypes.T  # (M, K)
    nearest = scores.topk(n, dim=0).indices  # (n, K)
    labels = torch.arange(k, device=probs.device).repeat(n)
    return nearest.reshape(-1), labels, prototypes


def knn_indices(features, k, chunk_size=None, rows=None):
    """Indices of each sample's ``k`` nearest neighbours by cosine similarity.

    The sample itself is included (it is its own nearest neighbour), as in the
    reference code. Similarities are computed ``chunk_size`` rows at a time,
    so memory is ``O(chunk_size * n)``, not ``O(n^2)``.

    Parameters
    ----------
    features : torch.Tensor of shape (n, D)
        L2-normalised embeddings.
    k : int
        Neighbours per sample, at most ``n``.
    chunk_size : int, optional
        Rows per similarity block; by default as many as keep a block at
        about 2**23 similarities (32 MiB), at least 64 and at most 2048.
    rows : slice, optional
        Only these samples' neighbours (among all samples), e.g. one rank's
        share in a distributed fit; all rows by default.

    Returns
    -------
    torch.Tensor of shape (n, k), or (rows, k) with ``rows``
        Neighbour indices, most similar first.
    """
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for {n} samples, got {k}.")
    if chunk_size is None:
        chunk_size = int(min(2048, max(64, 2**23 // n)))
    first, last, _ = (rows or slice(None)).indices(n)
    out = torch.empty(
        (max(0, last - first), k), dtype=torch.long, device=features.device
    )
    for start in range(first, last, chunk_size):
        stop = min(start + chunk_size, last)
        block = features[start:stop] @ features.T
        # Put each row's own sample first even when duplicates tie with it.
        mine = torch.arange(block.shape[0], device=features.device)
        block[mine, mine + start] = float("inf")
        out[start - first : stop - first] = block.topk(k, dim=1).indices
    return out


def neighbor_smoothed(features, n_neighbors=10, chunk_size=4096):
    """Each sample's embedding averaged with its nearest neighbours', normalised.

    One step of feature propagation over the ``n_neighbors``-nearest-neighbour
    graph (the sample itself included): a sample's coordinates move towards
    the region its neighbours share, which damps the nuisance variation a
    pretrained backbone keeps (lighting, size, colour), while, unlike
    :func:`spectral_coordinates`, the space keeps every dimension of the
    features. Centroid prototypes built here follow the neighbourhood
    structure more closely than in the raw embedding.

    Parameters
    ----------
    features : torch.Tensor of shape (n, D)
        L2-normalised embeddings.
    n_neighbors : int, default=10
        Neighbours averaged per sample, itself included (capped at ``n``).
    chunk_size : int, default=4096
        Samples averaged at a time, so that memory stays at
        ``chunk_size * n_neighbors * D`` values.

    Returns
    -------
    torch.Tensor of shape (n, D), float32
        L2-normalised smoothed embeddings.

    Examples
    --------
    >>> import torch
    >>> from skspice.pseudo_labels import neighbor_smoothed
    >>> x = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6]]), dim=1)
    >>> z = neighbor_smoothed(x, n_neighbors=2)  # both become their mean direction
    >>> [round(v, 3) for v in z[0].tolist()], bool((z[0] == z[1]).all())
    ([0.949, 0.316], True)
    """
    features = torch.as_tensor(features).float()
    n = features.shape[0]
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}.")
    nb = knn_indices(features, int(min(n_neighbors, n)))
    out = torch.empty_like(features)
    for start in range(0, n, chunk_size):
        idx = nb[start : start + chunk_size]
        out[start : start + chunk_size] = features[idx].mean(dim=1)
    return torch.nn.functional.normalize(out, dim=1)


def whitened(features, n_components=64, shrinkage_rank=None, random_state=None):
    """PCA-whitened embeddings, with the whitening shrunk to keep clear classes.

    Features of a backbone trained on other images spend most of their
    variance on a few directions that need not separate the classes at hand
    (for ImageNet features of small grayscale or colour-shuffled images:
    brightness, colour, scale). Centroids, and so KMeans and SPICE-Self's
    prototypes, follow those directions. Here the features are projected on
    their ``n_components`` leading principal components, and component ``i``
    (variance ``l_i``) is scaled by ``1 / sqrt(l_i + s)``: with ``s = 0``
    (``shrinkage_rank=None``) that is PCA whitening, every kept direction at
    unit variance; with ``s`` the variance of component ``shrinkage_rank``,
    the leading directions are flattened towards each other while the tail,
    mostly noise, keeps its small share. Full whitening also flattens the
    directions that separate well-separated classes, down to the level of
    the within-class ones, which the shrinkage prevents.

    Parameters
    ----------
    features : torch.Tensor of shape (n, D)
        Embeddings (L2-normalised or not).
    n_components : int, default=64
        Principal components kept, capped at ``min(n - 1, D)``.
    shrinkage_rank : int or None, default=None
        1-based rank of the component whose variance is added to every
        variance before scaling (capped at the components kept); ``None``
        whitens fully.
    random_state : int, RandomState instance or None, default=None
        Seed of the randomised SVD.

    Returns
    -------
    torch.Tensor of shape (n, n_components), float32
        L2-normalised coordinates.

    Examples
    --------
    >>> import torch
    >>> from skspice.pseudo_labels import whitened
    >>> x = torch.randn(200, 8) * torch.tensor([100.0, 1, 1, 1, 1, 1, 1, 1])
    >>> z = whitened(x, n_components=4, shrinkage_rank=2, random_state=0)
    >>> tuple(z.shape), round(float(z.norm(dim=1).mean()), 3)
    ((200, 4), 1.0)
    """
    from sklearn.decomposition import PCA

    x = torch.as_tensor(features).detach().cpu().float().numpy()
    n, d = x.shape
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}.")
    if shrinkage_rank is not None and shrinkage_rank < 1:
        raise ValueError(f"shrinkage_rank must be at least 1, got {shrinkage_rank}.")
    m = int(min(n_components, n - 1, d))
    if m < 1:
        raise ValueError(f"whitening needs at least 2 samples, got {n}.")
    pca = PCA(m, random_state=random_state)
    z = pca.fit_transform(x)
    variances = pca.explained_variance_
    shift = 0.0 if shrinkage_rank is None else variances[min(shrinkage_rank, m) - 1]
    z = z / np.sqrt(variances + shift + np.finfo(np.float32).tiny)
    return torch.nn.functional.normalize(torch.from_numpy(z).float(), dim=1)


def _top_eigenvectors(adjacency, n_components, random_state):
    """Leading eigenvectors of ``D^-1/2 A D^-1/2`` (a symmetric sparse ``A``).

    These are the normalised Laplacian's smallest. An iterative solver on the
    normalised adjacency needs no factorisation (seconds for 70,000 samples,
    where scikit-learn's shift-invert ``spectral_embedding`` took minutes);
    small graphs use a dense solver.
    """
    from scipy import sparse
    from scipy.sparse.linalg import lobpcg

    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = sparse.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    normalized = inv_sqrt @ adjacency @ inv_sqrt
    n = normalized.shape[0]
    if n <= 1000:
        _, vectors = np.linalg.eigh(normalized.toarray())
        return vectors[:, ::-1][:, :n_components]
    # LOBPCG, a block method, also resolves a repeated eigenvalue (one per
    # connected component of the graph), which Lanczos (eigsh) does not.
    start = np.random.default_rng(random_state).normal(size=(n, n_components))
    with warnings.catch_warnings():
        # Cluster coordinates need no more than a few digits: a residual above
        # the tolerance after maxiter is harmless here.
        warnings.filterwarnings("ignore", message=r"(?s).*requested tolerance")
        values, vectors = lobpcg(normalized, start, largest=True, tol=1e-5, maxiter=500)
    return vectors[:, np.argsort(-values)]


def spectral_coordinates(
    features, n_components, n_neighbors=10, scale_neighbor=7, random_state=None
):
    """Spectral embedding of the features' k-nearest-neighbour graph.

    Every sample is linked to its ``n_neighbors`` nearest neighbours (cosine)
    with the locally scaled weight ``exp(-d_ij^2 / (s_i s_j))`` of
    self-tuning spectral clustering (Zelnik-Manor & Perona, 2004), where
    ``s_i`` is the distance to the sample's ``scale_neighbor``-th neighbour;
    the graph is symmetrised. The normalised Laplacian's ``n_components``
    smallest eigenvectors, rows L2-normalised (Ng, Jordan & Weiss, 2001),
    give coordinates in which a class that forms a curved or elongated region
    of feature space becomes a compact blob, so prototypes and
    nearest-prototype labels follow the graph instead of straight lines.

    Parameters
    ----------
    features : torch.Tensor of shape (n, D)
        L2-normalised embeddings.
    n_components : int
        Eigenvectors kept (the number of clusters).
    n_neighbors : int, default=10
        Neighbours per sample in the graph (capped at ``n - 1``).
    scale_neighbor : int, default=7
        Which neighbour's distance sets a sample's local scale.
    random_state : int or None, default=None
        Seeds the eigensolver's starting vector.

    Returns
    -------
    torch.Tensor of shape (n, n_components), float32
        L2-normalised spectral coordinates.
    """
    from scipy import sparse

    features = torch.as_tensor(features).float().cpu()
    n = features.shape[0]
    k = int(min(n_neighbors, n - 1))
    if k < 1 or n_components >= n:
        raise ValueError(
            f"a spectral embedding of {n} samples into {n_components} "
            "dimensions needs more samples."
        )
    nb = knn_indices(features, k + 1)[:, 1:]  # drop the sample itself
    d2 = torch.empty((n, k))
    for start in range(0, n, 4096):
        f, idx = features[start : start + 4096], nb[start : start + 4096]
        sim = torch.einsum("nd,nkd->nk", f, features[idx])
        d2[start : start + 4096] = (2 - 2 * sim).clamp(min=0)
    scale = d2[:, min(scale_neighbor, k) - 1].sqrt().clamp(min=1e-6)
    weights = torch.exp(-d2 / (scale[:, None] * scale[nb]))
    adjacency = sparse.csr_matrix(
        (
            weights.flatten().double().numpy(),
            (np.repeat(np.arange(n), k), nb.flatten().numpy()),
        ),
        shape=(n, n),
    )
    adjacency = 0.5 * (adjacency + adjacency.T)
    coords = _top_eigenvectors(adjacency, n_components, random_state)
    coords = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32))
    return torch.nn.functional.normalize(coords, dim=1)


def reliable_pseudo_labels(
    probs,
    neighbors,
    *,
    confidence=0.99,
    consistency=0.9,
    min_per_cluster=1,
    balance=True,
    random_state=None,
    return_counts=False,
):
    """Reliable pseudo-labels (SPICE-Semi's labelled set).

    A sample is reliable when its predicted cluster agrees with at least
    ``consistency`` of its ``k`` nearest neighbours (itself included) and its
    top probability exceeds ``confidence``. Clusters are then balanced by
    randomly keeping as many samples per cluster as the smallest one has.

    A cluster with fewer than ``min_per_cluster`` reliable samples (meant to
    be a small floor: a cluster with almost none) would empty the whole set
    after balancing (the reference code then cannot train). Only for such a
    cluster, its most confident members (samples predicted in it, else the
    samples with the highest probability for it) are added to reach
    ``min_per_cluster``; a ``UserWarning`` says so and ``return_counts``
    reports how many.

    Parameters
    ----------
    probs : torch.Tensor of shape (n, K)
        Cluster probabilities of the selected head.
    neighbors : torch.Tensor of shape (n, k)
        Neighbour indices, e.g. from :func:`knn_indices`.
    confidence : float, default=0.99
        Minimum top probability (exclusive).
    consistency : float, default=0.9
        Minimum fraction of neighbours sharing the sample's predicted cluster.
    min_per_cluster : int, default=1
        Fewest samples a cluster may keep before the fallback fills it.
    balance : bool, default=True
        Subsample every cluster to the size of the smallest one.
    random_state : int, numpy.random.Generator or None
        Seed for the balancing subsample.
    return_counts : bool, default=False
        Also return the per-cluster counts of the selection.

    Returns
    -------
    labels : numpy.ndarray of shape (n,)
        Cluster id for reliable samples, ``-1`` elsewhere.
    counts : dict of numpy.ndarray of shape (K,)
        Only with ``return_counts``: ``"passed"`` (samples that passed the
        confidence and neighbour test), ``"added"`` (samples the fallback
        added) and ``"kept"`` (labelled samples after balancing).

    Examples
    --------
    Six samples in two clusters; sample 2 is not confident enough:

    >>> import torch
    >>> from skspice.pseudo_labels import reliable_pseudo_labels
    >>> probs = torch.tensor([[0.995, 0.005], [0.999, 0.001], [0.6, 0.4],
    ...                       [0.002, 0.998], [0.001, 0.999], [0.003, 0.997]])
    >>> neighbors = torch.tensor([[0, 1], [1, 0], [2, 0], [3, 4], [4, 3], [5, 4]])
    >>> reliable_pseudo_labels(probs, neighbors, balance=False)
    array([ 0,  0, -1,  1,  1,  1])

    Balanced, each cluster keeps as many samples as the smallest one:

    >>> labels, counts = reliable_pseudo_labels(
    ...     probs, neighbors, random_state=0, return_counts=True
    ... )
    >>> counts["passed"].tolist(), counts["kept"].tolist()
    ([2, 3], [2, 2])
    """
    probs = torch.as_tensor(probs).float().cpu()
    neighbors = torch.as_tensor(neighbors).cpu()
    n, k = probs.shape
    conf, pred = probs.max(dim=1)
    agree = (pred[neighbors] == pred[:, None]).float().mean(dim=1)
    reliable = (agree >= consistency) & (conf > confidence)
    labels = np.where(reliable.numpy(), pred.numpy(), UNLABELED)

    min_per_cluster = int(min(max(min_per_cluster, 1), n // k))
    counts = np.bincount(labels[labels >= 0], minlength=k)
    passed = counts.copy()
    filled, added = [], np.zeros(k, dtype=np.int64)
    for c in range(k):
        if counts[c] >= min_per_cluster:
            continue
        # Candidates, best first: the cluster's own unlabelled members, then
        # other unlabelled samples, then samples taken from clusters that can
        # spare them; each group ordered by probability for this cluster.
        penalty = np.where(pred.numpy() == c, 0.0, 2.0)
        penalty += np.where(labels == UNLABELED, 0.0, 4.0)
        order = np.argsort(penalty - probs[:, c].numpy(), kind="stable")
        for i in order:
            if counts[c] >= min_per_cluster:
                break
            if labels[i] == c:
                continue
            if labels[i] != UNLABELED:
                if counts[labels[i]] <= min_per_cluster:
                    continue
                counts[labels[i]] -= 1
            labels[i] = c
            counts[c] += 1
            added[c] += 1
        filled.append(c)
    if filled:
        warnings.warn(
            f"clusters {filled} had fewer than {min_per_cluster} reliable samples "
            f"(confidence > {confidence}, neighbour agreement >= {consistency}); "
            "their most confident samples were added to the labelled set instead.",
            UserWarning,
            stacklevel=2,
        )
    if balance:
        rng = np.random.default_rng(random_state)
        counts = np.bincount(labels[labels >= 0], minlength=k)
        keep = counts.min()
        for c in range(k):
            members = np.flatnonzero(labels == c)
            drop = rng.permutation(members)[keep:]
            labels[drop] = UNLABELED
    if return_counts:
        kept = np.bincount(labels[labels >= 0], minlength=k)
        return labels, {"passed": passed, "added": added, "kept": kept}
    return labels


def reliability_scores(probs, neighbors):
    """Per-sample reliability in [0, 1]: confidence times neighbour agreement.

    The two quantities of SPICE's reliable test, as one graded score: a
    sample's top probability times the fraction of its ``k`` nearest
    neighbours (itself included) that share its predicted cluster. A sample
    that passes the test with the defaults (confidence above 0.99, agreement
    at least 0.9) scores at least 0.89; one that is confident but sits among
    another cluster's samples, or agrees with its neighbours only by a
    hesitant prediction, scores low.

    Parameters
    ----------
    probs : torch.Tensor of shape (n, K)
        Cluster probabilities.
    neighbors : torch.Tensor of shape (n, k)
        Neighbour indices, e.g. from :func:`knn_indices`.

    Returns
    -------
    numpy.ndarray of shape (n,)
        Reliability scores (float64).
    """
    probs = torch.as_tensor(probs).double().cpu()
    neighbors = torch.as_tensor(neighbors).cpu()
    conf, pred = probs.max(dim=1)
    agree = (pred[neighbors] == pred[:, None]).double().mean(dim=1)
    return (conf * agree).numpy()

"""Clustering metrics: Hungarian-matched accuracy, NMI and ARI.

Cluster ids are arbitrary, so accuracy first finds the one-to-one mapping of
clusters to classes that maximises agreement (Hungarian algorithm) and then
counts matches, as every deep-clustering paper does.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = ["cluster_accuracy", "evaluate", "match_clusters", "pseudo_label_purity"]


def _check_labels(y_true, y_pred):
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred must contain at least one label.")
    return y_true, y_pred


def _hungarian(y_true, y_pred):
    """Contingency table (clusters x classes) and its maximising assignment."""
    classes, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    table = contingency_matrix(pred_idx, true_idx)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return classes, clusters, table, rows, cols


def match_clusters(y_true, y_pred):
    """Find the best one-to-one mapping from predicted clusters to classes.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth class labels.
    y_pred : array-like of shape (n_samples,)
        Cluster labels to match.

    Returns
    -------
    mapping : dict
        ``{cluster: class}`` for every cluster that is matched. When there are
        more clusters than classes the surplus clusters are left out.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    classes, clusters, _, rows, cols = _hungarian(y_true, y_pred)
    return {clusters[r].item(): classes[c].item() for r, c in zip(rows, cols)}


def cluster_accuracy(y_true, y_pred):
    """Clustering accuracy under the best cluster-to-class matching.

    Unlike the reference code, a different number of clusters and classes is
    allowed: unmatched samples simply count as errors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth class labels.
    y_pred : array-like of shape (n_samples,)
        Predicted cluster labels.

    Returns
    -------
    accuracy : float
        Fraction of samples whose matched cluster equals their class, in [0, 1].

    Examples
    --------
    >>> from skspice.metrics import cluster_accuracy
    >>> cluster_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    _, _, table, rows, cols = _hungarian(y_true, y_pred)
    return float(table[rows, cols].sum() / y_true.shape[0])


def evaluate(y_true, y_pred):
    """ACC, NMI and ARI of a clustering in one call.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth class labels.
    y_pred : array-like of shape (n_samples,)
        Predicted cluster labels.

    Returns
    -------
    scores : dict
        ``{"acc": ..., "nmi": ..., "ari": ...}``. NMI uses the arithmetic mean
        (scikit-learn's default); SPICE's reference code uses the geometric
        mean, which gives slightly different values.

    Examples
    --------
    >>> from skspice.metrics import evaluate
    >>> scores = evaluate([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0])
    >>> {name: round(value, 3) for name, value in scores.items()}
    {'acc': 0.833, 'nmi': 0.74, 'ari': 0.444}
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    return {
        "acc": cluster_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }


def pseudo_label_purity(y_true, y_pred, pseudo_labels):
    """Accuracy of a subset's pseudo-labels, e.g. SPICE's reliable set.

    The clusters are matched to the classes on the whole clustering
    ``y_pred`` (as :func:`cluster_accuracy` does); the purity is the share of
    labelled samples (``pseudo_labels >= 0``) whose pseudo-label maps to
    their class. With ground truth only: a benchmark's measure, never used
    in ``fit``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth class labels.
    y_pred : array-like of shape (n_samples,)
        The clustering that defines the matching (for the reliable set of
        :class:`~skspice.SPICEClustering`, ``self_labels_``).
    pseudo_labels : array-like of shape (n_samples,)
        Cluster ids of the labelled subset, ``-1`` elsewhere (e.g.
        ``reliable_labels_``).

    Returns
    -------
    purity : float
        In [0, 1]; ``nan`` when no sample is labelled.

    Examples
    --------
    >>> from skspice.metrics import pseudo_label_purity
    >>> pseudo_label_purity([0, 0, 1, 1, 1], [1, 1, 0, 0, 1], [1, -1, 0, 1, -1])
    0.6666666666666666
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    pseudo_labels = column_or_1d(pseudo_labels)
    check_consistent_length(y_true, pseudo_labels)
    kept = pseudo_labels >= 0
    if not kept.any():
        return float("nan")
    mapping = match_clusters(y_true, y_pred)
    mapped = np.array([mapping.get(c, -1) for c in pseudo_labels[kept].tolist()])
    return float((mapped == y_true[kept]).mean())

"""Choosing ``n_clusters`` without labels.

Stage 1 (the feature model) does not depend on the number of clusters, so the
recipe trains it once and refits only stages 2 and 3 for every candidate
``K`` (:func:`scan_n_clusters`). Each fit is scored from the model alone:

* ``silhouette``: the cosine silhouette of the clusters in the shared stage-1
  embedding (``embedding_``, the same space for every ``K``, so the scores
  compare);
* ``reliability``: the mean of ``reliability_``, the share of confident
  assignments that agree with their feature-space neighbours.

:func:`silhouette_scorer` makes the first usable as ``scoring=`` in
``GridSearchCV`` without labels.
"""

import os
import tempfile

import numpy as np
from sklearn.base import clone
from sklearn.metrics import silhouette_score

__all__ = ["embedding_silhouette", "scan_n_clusters", "silhouette_scorer"]

#: Samples drawn for a silhouette: its cost grows with the square of n.
SILHOUETTE_SAMPLES = 5000


def embedding_silhouette(
    embedding, labels, *, sample_size=SILHOUETTE_SAMPLES, random_state=0
):
    """Cosine silhouette of ``labels`` in ``embedding``, on a subsample.

    Parameters
    ----------
    embedding : array-like of shape (n_samples, n_features)
        Features, e.g. a fitted model's ``embedding_``.
    labels : array-like of shape (n_samples,)
        Cluster labels.
    sample_size : int, default=5000
        Samples drawn (all when fewer); the silhouette costs ``O(n^2)``.
    random_state : int, default=0
        Seeds the subsample.

    Returns
    -------
    float
        In [-1, 1]; higher means compact, well-separated clusters. -1 when
        fewer than two clusters are used.

    Examples
    --------
    >>> import numpy as np
    >>> from skspice.model_selection import embedding_silhouette
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> round(embedding_silhouette(X, [0, 0, 1, 1]), 2)
    0.99
    """
    embedding = np.asarray(embedding)
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        return -1.0
    n = labels.shape[0]
    size = min(int(sample_size), n)
    if size < n and np.unique(labels).size >= size:
        size = n
    return float(
        silhouette_score(
            embedding,
            labels,
            metric="cosine",
            sample_size=size if size < n else None,
            random_state=random_state,
        )
    )


def silhouette_scorer(estimator, X, y=None):
    """Label-free scorer for ``GridSearchCV``: the silhouette of the clusters.

    The fitted estimator's clusters of ``X`` (:meth:`predict`) are scored by
    their cosine silhouette in its features (:meth:`transform`).

    Parameters
    ----------
    estimator : SPICEClustering
        A fitted estimator (or a pipeline ending in one).
    X : array-like
        Samples to score.
    y : None
        Ignored: no labels are needed.

    Returns
    -------
    float
        Higher is better.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skspice import SPICEClustering
    >>> from skspice.model_selection import silhouette_scorer
    >>> search = GridSearchCV(
    ...     SPICEClustering(), {"n_clusters": [8, 10, 12]}, scoring=silhouette_scorer
    ... )
    """
    return embedding_silhouette(estimator.transform(X), estimator.predict(X))


def scan_n_clusters(estimator, X, candidates, *, feature_weights=None):
    """Fit ``estimator`` for every ``n_clusters`` in ``candidates``, label-free.

    Stage 1 is trained once (or ``feature_weights`` is used) and shared: each
    candidate refits stages 2 and 3 only, on the same stage-1 features, so
    the silhouettes are computed in one space.

    Parameters
    ----------
    estimator : SPICEClustering
        Unfitted template; its parameters are kept except ``n_clusters``.
    X : array-like
        Training images, in any form :meth:`SPICEClustering.fit` takes.
    candidates : iterable of int
        Values of ``n_clusters`` to try.
    feature_weights : str or os.PathLike, optional
        A trained backbone (:meth:`SPICEClustering.save_backbone`); when
        None, a first fit that runs stage 1 (and one epoch of stage 2, which
        leaves the backbone as it is) trains it.

    Returns
    -------
    result : dict
        ``"n_clusters"`` (the candidates), ``"silhouette"`` and
        ``"reliability"`` (one score per candidate), ``"best"`` (the
        candidate with the highest silhouette) and ``"estimators"`` (the
        fitted estimators).
    """
    candidates = [int(k) for k in candidates]
    if not candidates:
        raise ValueError("candidates must hold at least one value of n_clusters.")
    fitted = {}
    with tempfile.TemporaryDirectory() as tmp:
        if feature_weights is None:
            # Stage 1 alone (stage 2 keeps the backbone frozen; one epoch of
            # it is the least a fit runs): its backbone is the shared one.
            features = clone(estimator).set_params(
                n_clusters=candidates[0], self_epochs=1, semi_epochs=0
            )
            feature_weights = features.fit(X).save_backbone(
                os.path.join(tmp, "backbone.pt")
            )
        for k in candidates:
            fitted[k] = (
                clone(estimator)
                .set_params(
                    n_clusters=k, backbone_weights=feature_weights, feature_epochs=0
                )
                .fit(X)
            )
    silhouette = [
        embedding_silhouette(fitted[k].embedding_, fitted[k].labels_)
        for k in candidates
    ]
    reliability = [float(fitted[k].reliability_.mean()) for k in candidates]
    return {
        "n_clusters": candidates,
        "silhouette": silhouette,
        "reliability": reliability,
        "best": candidates[int(np.argmax(silhouette))],
        "estimators": [fitted[k] for k in candidates],
    }

"""SPICEClustering inside a scikit-learn Pipeline, tuned with GridSearchCV.

The pipeline scales scikit-learn's raw digit images (pixel values 0-16) to
[0, 1] with a ``FunctionTransformer`` and clusters them with
``SPICEClustering``. ``GridSearchCV`` then tries two SPICE-Self learning
rates (``self_lr``) with 3-fold cross-validation: each candidate is fitted on
two folds, predicts the clusters of the third, and is scored against the
known digits by the adjusted Rand index (``make_scorer(adjusted_rand_score)``,
which ignores cluster ids). The labels are used only for this scoring; the
script prints the score of every candidate and the best parameters.

Kept small: 600 digits and 40 MoCo epochs per fit (seven fits: two
candidates times three folds, plus the refit on all 600), about 3 minutes on
a laptop CPU. ``SKSPICE_EXAMPLE_QUICK=1`` runs a few-second version (150
digits, one epoch per stage, 2 folds), for tests.
"""

import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skspice import SPICEClustering

# SKSPICE_EXAMPLE_QUICK=1: tiny data and one epoch per stage (for tests).
QUICK = os.environ.get("SKSPICE_EXAMPLE_QUICK", "0") not in ("", "0")


def scale_pixels(images):
    """Digits' 0-16 pixel values to floats in [0, 1] (a module-level function,
    so the pipeline can be pickled)."""
    return np.asarray(images, dtype=np.float32) / 16.0


def main():
    digits = load_digits()
    n = 150 if QUICK else 600
    X, y = digits.images[:n], digits.target[:n]  # (n, 8, 8) values 0..16
    print(f"digits: {len(X)} images of 8x8 px (pixel values 0-16)")

    epochs = (
        dict(feature_epochs=1, self_epochs=1, semi_epochs=1)
        if QUICK
        else dict(feature_epochs=40)
    )
    pipe = Pipeline(
        [
            ("scale", FunctionTransformer(scale_pixels)),
            ("spice", SPICEClustering(n_clusters=10, random_state=0, **epochs)),
        ]
    )
    search = GridSearchCV(
        pipe,
        param_grid={"spice__self_lr": [1e-4, 1e-3]},
        scoring=make_scorer(adjusted_rand_score),  # needs y: the known digits
        cv=2 if QUICK else 3,
    )
    search.fit(X, y)  # y only reaches the scorer; SPICE ignores it

    results = search.cv_results_
    for params, mean, std in zip(
        results["params"], results["mean_test_score"], results["std_test_score"]
    ):
        print(f"{params}: ARI {mean:.3f} +/- {std:.3f} on held-out folds")
    print(f"best parameters: {search.best_params_} (ARI {search.best_score_:.3f})")

    # The refitted pipeline clusters new images like any fitted estimator.
    labels = search.best_estimator_.predict(X)
    print(f"refitted on all {len(X)}: ARI {adjusted_rand_score(y, labels):.3f}")


if __name__ == "__main__":
    main()

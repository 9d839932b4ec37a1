"""SPICEClustering as a scikit-learn citizen: the common checks, Pipeline,
GridSearchCV, clone, pickle and joblib."""

import io
import pickle

import joblib
import numpy as np
import pytest
from params import quick_params
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from skspice import SPICEClustering
from skspice.datasets import load_digits_images

FAST = quick_params(n_clusters=3)

# These common checks force ``n_clusters=1`` on the estimator. SPICE needs at
# least two clusters (prototype pseudo-labels and reliable labels are
# per-cluster comparisons), and one cluster is rejected with a ValueError by
# design; every other behaviour these checks cover is tested below with two
# clusters (see ``test_*_with_two_clusters``).
_ONE_CLUSTER = (
    "the check sets n_clusters=1; SPICE rejects fewer than 2 clusters "
    "by design (covered with n_clusters=2 in this module)"
)
EXPECTED_FAILED_CHECKS = {
    "check_dont_overwrite_parameters": _ONE_CLUSTER,
    "check_fit2d_predict1d": _ONE_CLUSTER,
    "check_methods_subset_invariance": _ONE_CLUSTER,
    "check_fit2d_1sample": _ONE_CLUSTER,
    "check_fit2d_1feature": _ONE_CLUSTER,
}


@parametrize_with_checks(
    [SPICEClustering(**FAST)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:150], y[:150]


@pytest.fixture(scope="module")
def fitted(digits):
    return SPICEClustering(**dict(FAST, n_clusters=10)).fit(digits[0])


def _rows(n=40, d=5, seed=0):
    return np.random.RandomState(seed).uniform(size=(n, d)) * 3


def test_params_not_overwritten_with_two_clusters():
    est = SPICEClustering(**dict(FAST, n_clusters=2))
    before = est.get_params()
    est.fit(_rows())
    assert est.get_params() == before


def test_predict_1d_raises_with_two_clusters():
    est = SPICEClustering(**dict(FAST, n_clusters=2)).fit(_rows())
    with pytest.raises(ValueError, match="1-D"):
        est.predict(_rows()[0])


def test_subset_invariance_with_two_clusters():
    X = _rows()
    est = SPICEClustering(**dict(FAST, n_clusters=2)).fit(X)
    for method in ("predict", "predict_proba", "transform"):
        full = getattr(est, method)(X)
        parts = np.concatenate(
            [getattr(est, method)(X[i : i + 7]) for i in range(0, len(X), 7)]
        )
        np.testing.assert_allclose(full, parts, rtol=1e-5, atol=1e-6)


def test_one_feature_and_one_sample_errors_with_two_clusters():
    est = SPICEClustering(**dict(FAST, n_clusters=2))
    est.fit(_rows(d=1))  # one feature is fine for tabular rows
    with pytest.raises(ValueError, match="n_clusters=2"):
        SPICEClustering(**dict(FAST, n_clusters=2)).fit(_rows(n=1))


def test_one_cluster_is_rejected():
    with pytest.raises(ValueError, match="n_clusters"):
        SPICEClustering(n_clusters=1).fit(_rows())


def test_clone_gives_unfitted_copy(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params()
    assert not hasattr(c, "labels_")


def test_pipeline_with_function_transformer(digits):
    X, y = digits
    flat = (X * 255).astype(np.uint8).reshape(len(X), -1)
    pipe = make_pipeline(
        FunctionTransformer(lambda a: (a / 255.0).reshape(-1, 8, 8)),
        SPICEClustering(**dict(FAST, n_clusters=10)),
    )
    labels = pipe.fit_predict(flat)
    assert labels.shape == (len(X),)
    np.testing.assert_array_equal(pipe.predict(flat), labels)
    assert pipe[-1].n_features_in_ == 64


def test_grid_search_over_n_clusters(digits):
    X, y = digits
    ari = make_scorer(adjusted_rand_score)

    def scorer(est, X, y):
        return ari._score_func(y, est.predict(X))

    search = GridSearchCV(
        SPICEClustering(**FAST),
        {"n_clusters": [5, 10]},
        scoring=scorer,
        cv=2,
    ).fit(X, y)
    assert search.best_params_["n_clusters"] in (5, 10)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.labels_.shape == (len(X),)


@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_round_trip_predicts_the_same(fitted, digits, how):
    X, _ = digits
    buf = io.BytesIO()
    if how == "pickle":
        pickle.dump(fitted, buf)
        buf.seek(0)
        loaded = pickle.load(buf)
    else:
        joblib.dump(fitted, buf)
        buf.seek(0)
        loaded = joblib.load(buf)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(loaded.labels_, fitted.labels_)
    np.testing.assert_allclose(loaded.transform(X), fitted.transform(X))


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="needs a machine without CUDA"
)
def test_model_fitted_for_cuda_predicts_on_cpu(fitted, digits):
    """A model fitted with device='cuda' loads and predicts where no GPU is."""
    X, _ = digits
    est = pickle.loads(pickle.dumps(fitted))
    est.set_params(device="cuda")
    with pytest.warns(UserWarning, match="CPU"):
        labels = est.predict(X)
    np.testing.assert_array_equal(labels, fitted.predict(X))


def test_same_seed_same_predict_and_transform(digits):
    X, _ = digits
    a = SPICEClustering(**dict(FAST, n_clusters=10)).fit(X)
    b = SPICEClustering(**dict(FAST, n_clusters=10)).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_feature_names_and_set_output(fitted, digits):
    X, _ = digits
    names = fitted.get_feature_names_out()
    assert len(names) == fitted.n_features_out_
    assert names[0] == "spiceclustering0"
    pd = pytest.importorskip("pandas")
    est = clone(fitted).set_output(transform="pandas")
    est.fit(X)
    out = est.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(names)

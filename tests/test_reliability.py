"""Reliability: bad input, collapse guards, non-finite losses, interruption,
checkpoint/resume and device errors."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from params import quick_params
from PIL import Image
from processes import kill_at_first_checkpoint
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import skspice.estimator as estimator_module
from skspice import SPICEClustering
from skspice.datasets import load_digits_images

TINY = quick_params()


def _images(n=30, size=8, seed=0):
    return np.random.RandomState(seed).uniform(size=(n, size, size)).astype(np.float32)


def _with_nan():
    X = _images()
    X[3, 2, 2] = np.nan
    return X


def _with_inf():
    X = _images()
    X[0, 0, 0] = np.inf
    return X


BAD_FIT_INPUTS = [
    # (case id, X, n_clusters, exception, message fragment)
    ("nan", _with_nan(), 3, ValueError, "NaN"),
    ("inf", _with_inf(), 3, ValueError, "infinity"),
    ("1-D", np.zeros(10), 3, ValueError, "1-D"),
    ("5-D", np.zeros((4, 2, 8, 8, 1)), 3, ValueError, "5 dimensions"),
    ("empty", np.zeros((0, 8, 8)), 3, ValueError, "empty"),
    ("empty rows", np.zeros((0, 4)), 3, ValueError, "minimum of 1 is required"),
    ("one sample", _images(n=1), 3, ValueError, "greater than the number of samples"),
    ("too many clusters", _images(n=5), 6, ValueError, "n_samples=5"),
    ("two channels", np.zeros((6, 8, 8, 2)), 3, ValueError, "C in {1, 3}"),
    ("four channels", np.zeros((6, 8, 8, 4), np.uint8), 3, ValueError, "got C=4"),
    ("strings", np.array([[["a"] * 8] * 8] * 6), 3, TypeError, "dtype"),
    ("objects", np.empty((6, 8, 8), dtype=object), 3, TypeError, "dtype object"),
    ("float range", _images() * 16, 3, ValueError, "expected floats in [0, 1]"),
    ("negative floats", _images() - 0.5, 3, ValueError, "expected floats in [0, 1]"),
    ("int range", np.full((6, 8, 8), 300), 3, ValueError, "[0, 255]"),
    (
        "mixed PIL sizes",
        [Image.new("L", (8, 8)), Image.new("L", (9, 8))],
        2,
        ValueError,
        "different sizes",
    ),
    (
        "PIL mixed with arrays",
        [Image.new("L", (8, 8)), np.zeros((8, 8))],
        2,
        TypeError,
        "mixes PIL images",
    ),
    ("ragged list", [np.zeros((8, 8)), np.zeros((9, 8))], 2, ValueError, "X"),
]


@pytest.mark.parametrize(
    "X, n_clusters, exc, fragment",
    [case[1:] for case in BAD_FIT_INPUTS],
    ids=[case[0] for case in BAD_FIT_INPUTS],
)
def test_bad_fit_input(X, n_clusters, exc, fragment):
    before = X.copy() if isinstance(X, np.ndarray) else None
    est = SPICEClustering(n_clusters=n_clusters, **TINY)
    with pytest.raises(exc, match=_escape(fragment)):
        est.fit(X)
    if before is not None:
        np.testing.assert_array_equal(X, before)  # the caller's data is untouched
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def _escape(fragment):
    import re

    return re.escape(fragment)


@pytest.mark.parametrize("n_clusters", [1, 0, -3])
def test_too_few_clusters(n_clusters):
    with pytest.raises(ValueError, match="n_clusters"):
        SPICEClustering(n_clusters=n_clusters).fit(_images())


@pytest.fixture(scope="module")
def fitted_8px():
    return SPICEClustering(n_clusters=3, **TINY).fit(_images())


@pytest.mark.parametrize(
    "X, fragment",
    [
        (_images(size=9), "per-sample shape (1, 9, 9)"),
        (np.repeat(_images()[..., None], 3, axis=3), "per-sample shape (3, 8, 8)"),
        (_images().reshape(30, -1), "(tabular) but the estimator was fitted on"),
        (_images()[:, :4].reshape(30, -1), "expecting 64 features"),
        (_with_nan(), "NaN"),
    ],
    ids=["other size", "other channels", "rows", "wrong rows", "nan"],
)
def test_predict_on_other_inputs(fitted_8px, X, fragment):
    for method in ("predict", "predict_proba", "transform"):
        with pytest.raises(ValueError, match=_escape(fragment)):
            getattr(fitted_8px, method)(X)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        SPICEClustering().predict(_images())


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    est = SPICEClustering(n_clusters=3, **dict(TINY, device="cuda"))
    with pytest.raises(ValueError, match="CUDA is not available"):
        est.fit(_images())


def test_bad_device_string():
    with pytest.raises(ValueError, match="not a valid torch device"):
        SPICEClustering(n_clusters=3, **dict(TINY, device="gpu0")).fit(_images())


def test_auto_device_falls_back_to_cpu():
    est = SPICEClustering(n_clusters=3, **dict(TINY, device="auto")).fit(_images())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert estimator_module._resolve_device(est.device).type == expected


def test_collapsed_data_warns_instead_of_crashing():
    """Identical images: clusters cannot be told apart, so some stay empty."""
    X = np.full((40, 8, 8), 0.5, dtype=np.float32)
    est = SPICEClustering(n_clusters=4, **TINY)
    with pytest.warns(UserWarning) as record:
        est.fit(X)
    messages = " ".join(str(w.message) for w in record)
    assert "clusters" in messages
    assert est.labels_.shape == (40,)


def test_non_finite_loss_stops_with_stage_and_epoch(monkeypatch):
    from skspice.stages import moco

    def nan_loss(self, x_q, x_k, gen):
        return self.encoder_q(x_q).sum() * float("nan")

    monkeypatch.setattr(moco.MoCo, "forward", nan_loss)
    est = SPICEClustering(n_clusters=3, **TINY)
    with pytest.raises(FloatingPointError, match=r"feature.*epoch 1.*learning rate"):
        est.fit(_images())
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def test_keyboard_interrupt_leaves_estimator_unfitted(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    est = SPICEClustering(n_clusters=3, **TINY).fit(_images())
    monkeypatch.setattr(estimator_module, "train_self_label", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(_images())
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not hasattr(est, "n_features_in_")


# ----------------------------------------------------------- checkpoint/resume
RESUME = quick_params(n_clusters=10, feature_epochs=10, batch_size=32)
N_RESUME = 200


def _resume_data():
    return load_digits_images()[0][:N_RESUME]


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    ckdir = tmp_path / "ckpt"
    script = tmp_path / "fit.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from skspice import SPICEClustering
            from skspice.datasets import load_digits_images
            X = load_digits_images()[0][:{N_RESUME}]
            SPICEClustering(checkpoint_dir={str(ckdir)!r}, **{RESUME!r}).fit(X)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    saved = kill_at_first_checkpoint(proc, ckdir)
    done = saved["stages"]["feature"]["epoch"]
    assert 1 <= done < RESUME["feature_epochs"]

    X = _resume_data()
    resumed = SPICEClustering(checkpoint_dir=str(ckdir), **RESUME).fit(X)
    # The first epochs come from the killed run's checkpoint, not a re-run.
    assert resumed.history_[:done] == saved["stages"]["feature"]["history"]
    assert not any(p.suffix == ".pt" for p in ckdir.iterdir())  # removed at the end

    fresh = SPICEClustering(**RESUME).fit(X)
    np.testing.assert_array_equal(resumed.labels_, fresh.labels_)
    np.testing.assert_array_equal(resumed.self_labels_, fresh.self_labels_)
    np.testing.assert_allclose(resumed.transform(X), fresh.transform(X), atol=1e-6)
    losses = [r["loss"] for r in fresh.history_]
    np.testing.assert_allclose([r["loss"] for r in resumed.history_], losses)


def test_checkpoint_of_other_parameters_is_not_used(tmp_path):
    X = _images()
    est = SPICEClustering(n_clusters=3, checkpoint_dir=str(tmp_path), **TINY)
    est.fit(X)
    assert list(tmp_path.iterdir()) == []  # removed after a finished fit
    path = tmp_path / "skspice-unrelated.pt"
    path.write_bytes(b"not a checkpoint")
    est.fit(X)  # another fingerprint: the unrelated file is ignored
    assert path.exists()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    X = _images()
    est = SPICEClustering(n_clusters=3, checkpoint_dir=str(tmp_path), **TINY)
    digest = estimator_module._fingerprint(
        torch.from_numpy(X[:, None]), est.get_params()
    )
    name = f"skspice-{digest}.pt"
    (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        est.fit(X)

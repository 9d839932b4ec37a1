"""End-to-end behaviour of SPICEClustering on tiny data."""

import dataclasses

import numpy as np
import pytest
import torch
from params import quick_params
from PIL import Image

from skspice import SPICEClustering, estimator
from skspice.datasets import load_digits_images
from skspice.metrics import cluster_accuracy
from skspice.pseudo_labels import spectral_coordinates
from skspice.stages import self_label

# Few epochs, small batches: every fit below takes a few seconds on a CPU.
TINY = quick_params(feature_epochs=2, batch_size=32)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:200], y[:200]


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return SPICEClustering(n_clusters=10, **TINY).fit(X)


def test_fitted_attributes(fitted, digits):
    X, _ = digits
    n = len(X)
    assert fitted.labels_.shape == (n,)
    assert fitted.labels_.min() >= 0 and fitted.labels_.max() < 10
    assert fitted.self_labels_.shape == (n,)
    assert fitted.reliable_labels_.shape == (n,)
    assert fitted.reliable_mask_.dtype == bool
    np.testing.assert_array_equal(fitted.reliable_mask_, fitted.reliable_labels_ >= 0)
    assert fitted.reliable_mask_.any()
    assert fitted.embedding_.shape == (n, fitted.n_features_out_)
    np.testing.assert_allclose(np.linalg.norm(fitted.embedding_, axis=1), 1, atol=1e-5)
    assert fitted.n_features_in_ == 64
    assert set(fitted.stage_seconds_) == {"feature", "self-label", "semi"}
    stages = [r["stage"] for r in fitted.history_]
    assert stages == ["feature", "feature", "self-label", "semi"]
    assert all(np.isfinite(r["loss"]) for r in fitted.history_)
    assert set(fitted.selected_head_) == {"head", "epoch", "loss"}
    # How the labelled set was formed, per cluster, also in stage 3's history.
    counts = fitted.reliable_counts_
    assert set(counts) == {"passed", "added", "kept"}
    assert all(c.shape == (10,) and (c >= 0).all() for c in counts.values())
    np.testing.assert_array_equal(
        counts["kept"],
        np.bincount(fitted.reliable_labels_[fitted.reliable_mask_], minlength=10),
    )
    assert (counts["kept"] <= counts["passed"] + counts["added"]).all()
    semi = next(r for r in fitted.history_ if r["stage"] == "semi")
    assert semi["reliable_kept"] == counts["kept"].tolist()
    # Per-sample reliability: confidence times neighbour agreement.
    assert fitted.reliability_.shape == (n,)
    assert (fitted.reliability_ >= 0).all() and (fitted.reliability_ <= 1).all()
    top = fitted.predict_proba(X).max(1)
    assert (fitted.reliability_ <= top + 1e-6).all()
    assert 0 <= fitted.selected_head_["head"] < 2


def test_predict_matches_labels_and_proba(fitted, digits):
    X, _ = digits
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(fitted.predict(X), proba.argmax(1))
    np.testing.assert_array_equal(fitted.predict(X), fitted.labels_)


def test_transform_features(fitted, digits):
    X, _ = digits
    Z = fitted.transform(X[:17])
    assert Z.shape == (17, fitted.n_features_out_)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)


def test_same_seed_same_labels(digits):
    X, _ = digits
    a = SPICEClustering(n_clusters=10, **TINY).fit(X)
    b = SPICEClustering(n_clusters=10, **TINY).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.self_labels_, b.self_labels_)
    np.testing.assert_allclose(a.transform(X), b.transform(X))


def test_input_is_not_modified(digits):
    X, _ = digits
    X = (X * 255).astype(np.uint8)
    before = X.copy()
    SPICEClustering(n_clusters=3, **TINY).fit(X)
    np.testing.assert_array_equal(X, before)


def _forms(X):
    u8 = (X * 255).round().astype(np.uint8)
    return {
        "float (n, H, W)": X,
        "uint8 (n, H, W)": u8,
        "uint8 (n, H, W, 1)": u8[..., None],
        "float (n, H, W, 3)": np.repeat(X[..., None], 3, axis=3),
        "PIL gray": [Image.fromarray(a) for a in u8],
        "PIL RGB": [Image.fromarray(a).convert("RGB") for a in u8],
    }


@pytest.mark.parametrize(
    "form",
    [
        "float (n, H, W)",
        "uint8 (n, H, W)",
        "uint8 (n, H, W, 1)",
        "float (n, H, W, 3)",
        "PIL gray",
        "PIL RGB",
    ],
)
def test_input_forms(digits, form):
    X, _ = digits
    data = _forms(X[:60])[form]
    est = SPICEClustering(n_clusters=4, **TINY)
    labels = est.fit_predict(data)
    assert labels.shape == (60,)
    assert est.predict(data[:5]).shape == (5,)
    channels = 3 if "3" in form or "RGB" in form else 1
    assert est.n_features_in_ == 64 * channels


def test_tabular_rows_and_image_shape(digits):
    X, _ = digits
    rows = X[:60].reshape(60, -1)
    tab = SPICEClustering(n_clusters=4, **TINY).fit(rows)
    img = SPICEClustering(n_clusters=4, image_shape=(8, 8), **TINY).fit(rows)
    assert tab.network_[0].backbone.__class__.__name__ == "MLP"
    assert img.network_[0].backbone.__class__.__name__ == "SmallCNN"
    assert tab.n_features_in_ == img.n_features_in_ == 64
    assert img.predict(rows[:3]).shape == (3,)


def test_skipping_stages(digits):
    X, _ = digits
    params = dict(TINY, feature_epochs=0, semi_epochs=0)
    est = SPICEClustering(n_clusters=5, **params).fit(X[:80])
    assert {r["stage"] for r in est.history_} == {"self-label"}
    assert not est.reliable_mask_.any()
    # Without stage 3 the final labels are SPICE-Self's.
    np.testing.assert_array_equal(est.labels_, est.self_labels_)


def test_conv_weights_are_channels_last(fitted):
    import torch

    convs = [
        m.weight for m in fitted.network_.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    assert convs
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_horizontal_flip_option(digits):
    X, _ = digits
    params = dict(TINY, feature_epochs=1, semi_epochs=0)
    emb = {
        flip: SPICEClustering(n_clusters=3, horizontal_flip=flip, **params)
        .fit(X[:64])
        .embedding_
        for flip in ("auto", False, True)
    }
    # Grayscale input: "auto" means no flips; True changes the training views.
    np.testing.assert_array_equal(emb["auto"], emb[False])
    assert not np.allclose(emb["auto"], emb[True])


def test_custom_backbone_module_is_not_trained_in_place(digits):
    import torch
    from torch import nn

    X, _ = digits
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    est = SPICEClustering(n_clusters=3, backbone=module, **TINY).fit(X[:60])
    assert est.n_features_out_ == 16
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("n_train", [300])
def test_end_to_end_accuracy_above_chance(n_train):
    """A short fit on 300 digits clusters far better than chance (0.1)."""
    X, y = load_digits_images()
    X, y = X[:n_train], y[:n_train]
    est = SPICEClustering(
        n_clusters=10,
        feature_epochs=100,
        self_epochs=5,
        semi_epochs=5,
        random_state=0,
        device="cpu",
    ).fit(X)
    acc = cluster_accuracy(y, est.labels_)
    assert acc > 0.5, acc
    assert cluster_accuracy(y, est.self_labels_) > 0.4


def _noise_photos(n, seed=0):
    """Colour 'photographs': blocky scenes with no flat border whose colours
    follow their content (four scenes, each with small variations)."""
    rng = np.random.default_rng(seed)
    scenes = rng.uniform(size=(4, 4, 4, 3))
    coarse = scenes[np.arange(n) % 4] + rng.normal(0, 0.05, size=(n, 4, 4, 3))
    coarse = coarse.clip(0, 1)
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2).astype(np.float32)


def _random_colour_stripes(n, size=16, seed=0):
    """Two kinds of stripes (horizontal, vertical) filling the image, each
    image in its own random two colours, with noise: no flat border, and
    colours that say nothing about the stripes."""
    rng = np.random.default_rng(seed)
    ramp = np.arange(size)
    pattern = ((ramp + rng.integers(0, 4, size=(n, 1))) // 2 % 2).astype(float)
    masks = np.where(
        (np.arange(n) % 2 == 0)[:, None, None],
        pattern[:, :, None].repeat(size, 2),
        pattern[:, None, :].repeat(size, 1),
    )
    fg, bg = rng.uniform(size=(2, n, 1, 1, 3))
    X = bg + masks[..., None] * (fg - bg) + rng.normal(0, 0.03, (n, size, size, 3))
    return X.clip(0, 1).astype(np.float32)


def test_contrast_normalization_auto_resolution(digits):
    from skspice.synthetic import random_colors

    X, _ = digits
    params = dict(TINY, feature_epochs=1, semi_epochs=0)
    gray = SPICEClustering(n_clusters=3, **params).fit(X[:64])
    assert gray.contrast_normalization_ and not gray.horizontal_flip_
    colour = SPICEClustering(n_clusters=3, **params).fit(random_colors(X[:64], 0))
    # Flat backgrounds in colour: contrast maps (one channel), no flips.
    assert colour.contrast_normalization_ and not colour.horizontal_flip_
    assert colour.network_[0].standardize.mean.shape[0] == 1
    photos = SPICEClustering(n_clusters=3, **params).fit(_noise_photos(64))
    # Photographs, whose colours follow what they show, keep their colours
    # and get flips.
    assert not photos.contrast_normalization_ and photos.horizontal_flip_
    assert photos.network_[0].standardize.mean.shape[0] == 3
    # No flat frame, but colours drawn at random: contrast maps, no flips.
    stripes = SPICEClustering(n_clusters=2, **params).fit(_random_colour_stripes(64))
    assert stripes.contrast_normalization_ and not stripes.horizontal_flip_
    rows = SPICEClustering(n_clusters=3, **params).fit(X[:64].reshape(64, -1))
    assert not rows.contrast_normalization_ and not rows.horizontal_flip_


def test_contrast_normalization_ignores_colours_in_predict(digits):
    from skspice.synthetic import random_colors, random_polarity

    X, _ = digits
    est = SPICEClustering(n_clusters=5, **TINY).fit(random_colors(X[:100], 0))
    # The same shapes in other colours, or inverted, get the same clusters and
    # (nearly) the same features: colour and polarity are normalised away.
    base = est.transform(random_colors(X[:40], 1))
    for variant in (
        random_colors(X[:40], 2),
        random_colors(random_polarity(X[:40], 3, p=1.0), 4),
    ):
        np.testing.assert_allclose(est.transform(variant), base, atol=0.05)
    np.testing.assert_array_equal(
        est.predict(random_colors(X[:40], 5)), est.predict(random_colors(X[:40], 6))
    )


def test_contrast_normalization_off_keeps_colour_channels(digits):
    from skspice.synthetic import random_colors

    X, _ = digits
    params = dict(TINY, feature_epochs=1, semi_epochs=0)
    est = SPICEClustering(n_clusters=3, contrast_normalization=False, **params)
    est.fit(random_colors(X[:64], 0))
    assert not est.contrast_normalization_
    assert est.network_[0].standardize.mean.shape[0] == 3
    forced = SPICEClustering(n_clusters=3, contrast_normalization=True, **params)
    assert forced.fit(_noise_photos(64)).contrast_normalization_


def test_prototype_space_option(digits):
    X, _ = digits
    params = dict(TINY, feature_epochs=1, semi_epochs=0)
    emb = SPICEClustering(n_clusters=4, **params).fit(X[:80])
    assert emb.prototype_space_ == "embedding"  # the reference's, by default
    for space in ("spectral", "smoothed", "whitened"):
        other = SPICEClustering(n_clusters=4, prototype_space=space, **params)
        other.fit(X[:80])
        assert other.prototype_space_ == space
        # Same features (stage 1 is identical), different prototypes in stage 2:
        # another pseudo-label loss.
        np.testing.assert_array_equal(other.embedding_, emb.embedding_)
        assert other.selected_head_["loss"] != emb.selected_head_["loss"]
    # Too few samples for a graph: falls back to the embedding, no error.
    tiny = SPICEClustering(n_clusters=4, prototype_space="spectral", **params)
    assert tiny.fit(X[:5]).labels_.shape == (5,)
    assert tiny.prototype_space_ == "embedding"


def test_spectral_prototypes_on_whitened_embeddings(digits, monkeypatch):
    X, _ = digits
    params = dict(TINY, feature_epochs=1, semi_epochs=0, n_clusters=4)
    graphs = []

    def recording(features, *args, **kwargs):
        graphs.append(features.clone())
        return spectral_coordinates(features, *args, **kwargs)

    monkeypatch.setattr(estimator, "spectral_coordinates", recording)
    est = SPICEClustering(prototype_space="spectral", **params).fit(X[:80])
    plain_settings = dataclasses.replace(self_label.SELF, spectral_whitened=False)
    monkeypatch.setattr(self_label, "SELF", plain_settings)
    plain = SPICEClustering(prototype_space="spectral", **params).fit(X[:80])
    # By default the graph is built on the whitened embeddings (64 components
    # at most, fewer here), else on the embeddings: other prototypes, another
    # pseudo-label loss from the same features.
    assert [g.shape[1] for g in graphs] == [64, est.embedding_.shape[1]]
    torch.testing.assert_close(graphs[1], torch.from_numpy(est.embedding_))
    np.testing.assert_array_equal(plain.embedding_, est.embedding_)
    assert plain.selected_head_["loss"] != est.selected_head_["loss"]


def test_auto_prototype_space_by_samples_per_cluster(digits, monkeypatch):
    X, _ = digits
    params = dict(TINY, feature_epochs=1, semi_epochs=0, n_clusters=4)
    # Stage 1 trains the backbone: spectral prototypes from
    # ``spectral_min_per_cluster`` samples per cluster on, else the embedding.
    settings = dataclasses.replace(self_label.SELF, spectral_min_per_cluster=20)
    monkeypatch.setattr(self_label, "SELF", settings)
    auto = SPICEClustering(**params).fit(X[:80])
    assert not auto.frozen_backbone_ and auto.prototype_space_ == "spectral"
    spectral = SPICEClustering(prototype_space="spectral", **params).fit(X[:80])
    np.testing.assert_array_equal(auto.labels_, spectral.labels_)
    assert SPICEClustering(**params).fit(X[:79]).prototype_space_ == "embedding"
    # A frozen backbone keeps its own rule (whitened), whatever the size.
    frozen = SPICEClustering(**dict(params, feature_epochs=0)).fit(X[:80])
    assert frozen.prototype_space_ == "whitened"


def test_head_init(digits, fitted):
    X, _ = digits
    # Stage 1 trained the backbone: "auto" keeps the reference's random heads.
    assert fitted.head_init_ == "random"
    params = dict(TINY, feature_epochs=0, semi_epochs=0, n_clusters=4)
    auto = SPICEClustering(**params).fit(X[:80])
    # A frozen backbone: "auto" fits the heads to KMeans partitions first.
    assert auto.frozen_backbone_ and auto.head_init_ == "kmeans"
    assert 0.5 < auto.selected_head_["init_agreement"] <= 1
    rnd = SPICEClustering(head_init="random", **params).fit(X[:80])
    assert rnd.head_init_ == "random"
    assert set(rnd.selected_head_) == {"head", "epoch", "loss"}
    np.testing.assert_array_equal(auto.embedding_, rnd.embedding_)
    assert auto.selected_head_["loss"] != rnd.selected_head_["loss"]


def test_smoothed_prototypes_on_a_frozen_backbone(digits, tmp_path):
    X, _ = digits
    params = dict(TINY, feature_epochs=0, semi_epochs=0)
    emb = SPICEClustering(n_clusters=4, prototype_space="embedding", **params)
    emb.fit(X[:80])
    smoothed = SPICEClustering(n_clusters=4, prototype_space="smoothed", **params)
    smoothed.fit(X[:80])
    assert smoothed.frozen_backbone_ and smoothed.prototype_space_ == "smoothed"
    # The same stored features, other prototypes: another pseudo-label loss.
    np.testing.assert_array_equal(smoothed.embedding_, emb.embedding_)
    assert smoothed.selected_head_["loss"] != emb.selected_head_["loss"]
    # "auto": a frozen backbone whose weights are not from a file is whitened
    # and smoothed...
    auto = SPICEClustering(n_clusters=4, **params).fit(X[:80])
    assert auto.prototype_space_ == "whitened"
    white = SPICEClustering(n_clusters=4, prototype_space="whitened", **params)
    np.testing.assert_array_equal(auto.labels_, white.fit(X[:80]).labels_)
    assert auto.selected_head_["loss"] != smoothed.selected_head_["loss"]
    # ...one loaded from a weights file (e.g. an export) keeps the embedding.
    path = emb.save_backbone(tmp_path / "backbone.pt")
    again = SPICEClustering(n_clusters=4, backbone_weights=path, **params)
    assert again.fit(X[:80]).frozen_backbone_
    assert again.prototype_space_ == "embedding"

"""timm backbones: ``backbone="timm/<name>"``, timm's own pretrained weights
(``backbone_weights=True``) from the Hugging Face hub cache, local timm
checkpoints and save_backbone. All offline: the hub cache is a temporary
folder filled by the tests, and the network is blocked."""

import socket
import sys

import numpy as np
import pytest
import torch
from params import quick_params

timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")
hf_constants = pytest.importorskip("huggingface_hub.constants")

from skspice import SPICEClustering  # noqa: E402
from skspice.backbones import build_backbone  # noqa: E402
from skspice.inputs import InputProfile  # noqa: E402

TINY = quick_params(feature_epochs=1, self_epochs=1, semi_epochs=0, batch_size=16)
#: A tiny timm model (0.1 M parameters) with weights on the hub.
NAME = "test_efficientnet"
REPO = "timm/test_efficientnet.r160_in1k"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache in a temporary folder, offline.

    huggingface_hub reads its environment at import, so the module constants
    that hf_hub_download consults at call time are patched too; sockets are
    blocked so that nothing can reach the network even if it exists.
    """
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return cache


@pytest.fixture()
def cached_weights(hf_cache):
    """Random 'pretrained' weights of NAME, cached as the hub would.

    The layout hf_hub_download reads offline: ``refs/main`` holds a commit,
    and ``snapshots/<commit>/`` the files (here without the blobs they
    usually link to).
    """
    torch.manual_seed(0)
    state = timm.create_model(NAME, pretrained=False).state_dict()  # + classifier
    repo = hf_cache / f"models--{REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    safetensors_torch.save_file(state, str(snapshot / "model.safetensors"))
    return state


def _gray_images(n=24, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, size, size)).astype(np.float32)


def _assert_same_weights(module, state):
    """``module`` holds ``state`` exactly, except the classifier it dropped."""
    loaded = module.state_dict()
    classifier = timm.create_model(NAME).pretrained_cfg["classifier"]
    assert set(loaded) == {k for k in state if not k.startswith(f"{classifier}.")}
    for k, v in loaded.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


def _timm_state(seed, name=NAME):
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


def test_timm_backbone_fits_and_predicts():
    X = _gray_images()
    est = SPICEClustering(
        n_clusters=2, backbone=f"timm/{NAME}", input_size=32, **TINY
    ).fit(X)
    width = timm.create_model(NAME, num_classes=0).num_features
    assert est.n_features_out_ == width == est.network_[0].backbone.out_features
    assert est.transform(X).shape == (24, width)
    assert set(est.predict(X)) <= {0, 1}
    # Random weights keep the data's own standardisation (one gray channel).
    assert est.network_[0].standardize.mean.numel() == 1


def test_timm_trunk_repeats_gray_and_reports_its_width():
    net = build_backbone("timm/test_resnet", InputProfile("image", (1, 16, 16)))
    net.eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, net.model(x.repeat(1, 3, 1, 1)))
    assert out.shape == (2, net.out_features)
    assert net.ignored_weight_prefixes == ("fc.",)  # timm's classifier name


def test_unknown_timm_name_suggests_close_ones():
    with pytest.raises(ValueError, match="not a timm model.*test_efficientnet"):
        build_backbone("timm/test_efficientnett", InputProfile("image", (1, 16, 16)))


def test_missing_timm_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now fails
    with pytest.raises(ImportError, match=r'pip install "skspice\[timm\]"'):
        build_backbone(f"timm/{NAME}", InputProfile("image", (1, 16, 16)))


# ------------------------------------------------ timm's own weights (True)


def test_library_weights_load_exactly_with_their_input_handling(cached_weights):
    params = dict(TINY)
    params.pop("feature_epochs")  # "auto": stage 1 skipped with weights
    est = SPICEClustering(
        n_clusters=2, backbone=f"timm/{NAME}", backbone_weights=True, **params
    ).fit(_gray_images())
    assert "feature" not in {r["stage"] for r in est.history_}
    model = est.network_[0]
    # Frozen in stage 2 and no stage 3: the cached weights, unchanged.
    _assert_same_weights(model.backbone.model, cached_weights)
    # timm's normalisation replaces the data's; "auto" input size: timm's.
    cfg = timm.data.resolve_data_config(model=timm.create_model(NAME))
    torch.testing.assert_close(
        model.standardize.mean.flatten(), torch.tensor(cfg["mean"])
    )
    torch.testing.assert_close(
        model.standardize.std.flatten(), torch.tensor(cfg["std"])
    )
    assert model.resize.size == cfg["input_size"][-1] == 160
    assert not est.contrast_normalization_


def test_int_input_size_overrides_the_weights_size(cached_weights):
    est = SPICEClustering(
        n_clusters=2,
        backbone=f"timm/{NAME}",
        backbone_weights=True,
        input_size=24,
        **TINY,
    ).fit(_gray_images())
    assert est.network_[0].resize.size == 24


def test_uncached_weights_offline_name_the_cache_folder(hf_cache):
    est = SPICEClustering(
        n_clusters=2, backbone=f"timm/{NAME}", backbone_weights=True, **TINY
    )
    with pytest.raises(OSError) as info:
        est.fit(_gray_images())
    msg = str(info.value)
    assert str(hf_cache) in msg and REPO in msg and "model.safetensors" in msg
    assert len(msg) < 400
    assert not hasattr(est, "labels_")
    # The message's advice works: the file placed by hand loads offline.
    folder = hf_cache / f"models--{REPO.replace('/', '--')}"
    (folder / "snapshots" / "main").mkdir(parents=True)
    state = _timm_state(2)
    safetensors_torch.save_file(state, str(folder / "snapshots/main/model.safetensors"))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("main")
    est.set_params(input_size=16, feature_epochs=0).fit(_gray_images())
    _assert_same_weights(est.network_[0].backbone.model, state)


def test_true_needs_a_timm_backbone():
    est = SPICEClustering(
        n_clusters=2, backbone="resnet18", backbone_weights=True, **TINY
    )
    with pytest.raises(ValueError, match="timm backbone"):
        est.fit(_gray_images())


def test_torchvision_weights_name_with_a_timm_backbone_is_refused():
    est = SPICEClustering(
        n_clusters=2, backbone=f"timm/{NAME}", backbone_weights="DEFAULT", **TINY
    )
    with pytest.raises(ValueError, match="backbone_weights=True"):
        est.fit(_gray_images())


def test_timm_model_without_weights_is_a_value_error(hf_cache):
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_backbone(
            "timm/test_coatnet", InputProfile("image", (1, 16, 16)), pretrained=True
        )


@pytest.mark.parametrize("weights,trains", [(True, False), (False, True)])
def test_auto_feature_epochs_with_true_and_false(
    cached_weights, monkeypatch, weights, trains
):
    """True counts as weights (stage 1 skipped); False is no weights."""
    import skspice.estimator as estimator_module

    calls = []
    monkeypatch.setattr(
        estimator_module, "train_feature_model", lambda *a, **k: calls.append(k)
    )
    params = dict(TINY)
    params.pop("feature_epochs")
    SPICEClustering(
        n_clusters=2,
        backbone=f"timm/{NAME}",
        backbone_weights=weights,
        input_size=16,
        **params,
    ).fit(_gray_images())
    assert bool(calls) == trains


# -------------------------------------------------- local files, save_backbone


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {f"module.{k}": v for k, v in s.items()},
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    ],
    ids=["plain", "module-prefix", "nested", "nested-module-prefix"],
)
def test_local_timm_checkpoint_loads(tmp_path, wrap):
    state = _timm_state(1)  # a full timm checkpoint, classifier included
    path = tmp_path / "timm.pth"
    torch.save(wrap(state), path)
    est = SPICEClustering(
        n_clusters=2,
        backbone=f"timm/{NAME}",
        backbone_weights=str(path),
        input_size=16,
        **dict(TINY, feature_epochs=0),
    ).fit(_gray_images())
    _assert_same_weights(est.network_[0].backbone.model, state)


def test_local_checkpoint_of_another_model_lists_the_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(_timm_state(0, "test_resnet"), path)
    est = SPICEClustering(
        n_clusters=2,
        backbone=f"timm/{NAME}",
        backbone_weights=path,
        input_size=16,
        **TINY,
    )
    with pytest.raises(ValueError, match="missing keys.*unexpected keys") as info:
        est.fit(_gray_images())
    assert "'blocks." in str(info.value) and "'conv1." in str(info.value)


def test_save_backbone_round_trip(tmp_path):
    X = _gray_images()
    params = dict(n_clusters=2, backbone=f"timm/{NAME}", input_size=16)
    first = SPICEClustering(**params, **TINY).fit(X)
    path = first.save_backbone(tmp_path / "backbone.pt")
    saved = torch.load(path, weights_only=True)
    assert set(saved) == set(first.network_[0].backbone.model.state_dict())
    second = SPICEClustering(
        **params, backbone_weights=path, **dict(TINY, feature_epochs=0)
    ).fit(X)
    for k, v in second.network_[0].backbone.model.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)
    np.testing.assert_allclose(second.embedding_, first.embedding_, atol=1e-5)

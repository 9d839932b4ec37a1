"""Pretrained backbones: torchvision weights by name, checkpoints of other
tools, (class, kwargs) backbones, input handling and save_backbone. All
offline: weights are made by the tests and placed where torchvision looks."""

import os
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from params import quick_params

from skspice import SPICEClustering
from skspice.backbones import SmallCNN, load_weights
from skspice.datasets import load_digits_images

TINY = quick_params(feature_epochs=1, self_epochs=1, semi_epochs=0, batch_size=16)
RESNET_URL_NAME = os.path.basename(
    torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache in a temporary folder, with no network."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.fixture()
def cached_resnet18(hub):
    """Random 'ImageNet' ResNet-18 weights, cached as torchvision would."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = hub / "checkpoints" / RESNET_URL_NAME
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def _gray_images(n=24, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, size, size)).astype(np.float32)


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT"])
def test_torchvision_weights_by_name(cached_resnet18, name):
    est = SPICEClustering(
        n_clusters=2,
        backbone="resnet18",
        backbone_weights=name,
        input_size=32,
        **TINY,
    ).fit(_gray_images())
    # The weights' own input handling: their normalisation, the size asked
    # for, and no contrast maps.
    model = est.network_[0]
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    mean = torch.tensor(weights.transforms().mean)
    torch.testing.assert_close(model.standardize.mean.flatten(), mean)
    assert model.resize.size == 32
    assert not est.contrast_normalization_


def test_pretrained_weights_skip_stage_one_and_load_exactly(cached_resnet18):
    params = dict(TINY)
    params.pop("feature_epochs")
    est = SPICEClustering(
        n_clusters=2, backbone="resnet18", backbone_weights="IMAGENET1K_V1", **params
    ).fit(_gray_images())
    assert "feature" not in {r["stage"] for r in est.history_}
    loaded = est.network_[0].backbone.model.state_dict()
    for k, v in loaded.items():  # frozen in stage 2, no stage 3: unchanged
        torch.testing.assert_close(v, cached_resnet18[k])
    # "auto" input size: the weights' crop size, as the images are smaller.
    assert est.network_[0].resize.size == 224


def test_missing_download_names_the_cache_path(hub):
    est = SPICEClustering(
        n_clusters=2, backbone="resnet18", backbone_weights="IMAGENET1K_V1", **TINY
    )
    with pytest.raises(RuntimeError) as info:
        est.fit(_gray_images())
    msg = str(info.value)
    assert RESNET_URL_NAME in msg and str(hub / "checkpoints") in msg
    assert "ResNet18_Weights.IMAGENET1K_V1" in msg
    assert not hasattr(est, "labels_")


def test_unknown_weights_name_lists_the_known_ones(hub):
    est = SPICEClustering(
        n_clusters=2, backbone="resnet18", backbone_weights="IMAGENET9K", **TINY
    )
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        est.fit(_gray_images())


def test_weights_name_needs_a_torchvision_backbone():
    est = SPICEClustering(n_clusters=2, backbone_weights="IMAGENET1K_V1", **TINY)
    with pytest.raises(ValueError, match="torchvision backbone"):
        est.fit(_gray_images())


def test_missing_weights_file_is_file_not_found(tmp_path):
    est = SPICEClustering(n_clusters=2, backbone_weights=str(tmp_path / "w.pt"), **TINY)
    with pytest.raises(FileNotFoundError, match="not found"):
        est.fit(_gray_images())


# ------------------------------------------------------------- checkpoints


def _cnn(seed):
    torch.manual_seed(seed)
    net = SmallCNN(1, width=4)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-1, 1)
    return net


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {f"module.encoder_q.{k}": v for k, v in s.items()},
        lambda s: {"state_dict": {f"backbone.{k}": v for k, v in s.items()}},
        lambda s: {"model": {f"model.{k}": v for k, v in s.items()}, "epoch": 9},
    ],
    ids=["moco", "backbone-prefix", "model-prefix"],
)
def test_checkpoints_of_other_tools_load(tmp_path, wrap):
    src, other = _cnn(1), _cnn(2)
    state = wrap(src.state_dict())
    if "module.encoder_q.features.0.0.weight" in state:
        # A MoCo checkpoint also holds the key encoder and the queue.
        state.update(
            {f"module.encoder_k.{k}": v for k, v in other.state_dict().items()}
        )
        state["module.queue"] = torch.zeros(4, 8)
    path = tmp_path / "ckpt.pth"
    torch.save(state, path)
    dst = _cnn(3)
    load_weights(dst, path)
    for k, v in dst.state_dict().items():
        torch.testing.assert_close(v, src.state_dict()[k])


def test_corrupt_weights_file_gives_a_short_message(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"\x80\x02not a checkpoint" * 10)
    with pytest.raises(ValueError, match="could not read weights") as info:
        load_weights(_cnn(0), path)
    assert len(str(info.value)) < 250


# ------------------------------------------------------ backbone forms, export


def test_class_and_kwargs_backbone():
    est = SPICEClustering(
        n_clusters=2, backbone=(SmallCNN, {"in_channels": 1, "width": 4}), **TINY
    ).fit(_gray_images())
    assert est.n_features_out_ == 8
    assert isinstance(est.network_[0].backbone, SmallCNN)


@pytest.mark.parametrize(
    "spec,exc",
    [
        ((SmallCNN,), TypeError),
        ((SmallCNN, {"widht": 4}), ValueError),
        ((int, {}), TypeError),
    ],
)
def test_bad_class_backbones(spec, exc):
    with pytest.raises(exc, match="backbone"):
        SPICEClustering(n_clusters=2, backbone=spec, **TINY).fit(_gray_images())


def test_save_backbone_round_trip(tmp_path):
    X, _ = load_digits_images()
    X = X[:120]
    first = SPICEClustering(n_clusters=4, **TINY).fit(X)
    path = first.save_backbone(tmp_path / "backbone.pt")
    second = SPICEClustering(
        n_clusters=4, backbone_weights=path, **dict(TINY, feature_epochs=0)
    ).fit(X)
    # No stage 3 in TINY: the exported backbone is the one that made the
    # first fit's embedding, so the second fit starts from the same features.
    np.testing.assert_allclose(second.embedding_, first.embedding_, atol=1e-5)
    assert "feature" not in {r["stage"] for r in second.history_}


@pytest.mark.slow
def test_pretrained_folder_example_runs_offline(tmp_path):
    """examples/pretrained_folder.py with a local stand-in for the download.

    Slow (about two minutes on two cores): ten 2048-wide ResNet-50 heads are
    warm-started whatever the data size; the weights API itself is tested
    fast above.
    """
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        folder = tmp_path / "photos" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 60, size=(24, 24, 3)).astype(np.uint8)
            img[6:18, 6:18] = colour
            Image.fromarray(img).save(folder / f"{i}.png")
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(
        torchvision.models.resnet50(weights=None).state_dict(),
        cache / os.path.basename(weights.url),
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"))
    out = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "pretrained_folder.py"),
            str(tmp_path / "photos"),
            "--image-size",
            "24",
            "--input-size",
            "32",
            "--self-epochs",
            "1",
            "--semi-epochs",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "16 images of 24x24 px, 2 classes" in out.stdout
    assert "SPICE (ResNet-50, ImageNet): ACC" in out.stdout

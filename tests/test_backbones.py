"""Tests for skspice.backbones: registry, custom modules and weight loading."""

import pytest
import torch
import torchvision
from torch import nn

from skspice.backbones import (
    MLP,
    SmallCNN,
    SmallResNet,
    Standardize,
    StridedCNN,
    build_backbone,
    load_weights,
)
from skspice.inputs import InputProfile

GRAY8 = InputProfile("image", (1, 8, 8))
GRAY28 = InputProfile("image", (1, 28, 28))
RGB32 = InputProfile("image", (3, 32, 32))
RGB96 = InputProfile("image", (3, 96, 96))
TAB = InputProfile("tabular", (7,))


def _forward(module, profile, batch=3):
    torch.manual_seed(0)
    x = torch.rand((batch,) + profile.shape)
    module.eval()
    with torch.no_grad():
        return module(x)


@pytest.mark.parametrize(
    "profile,cls", [(GRAY8, SmallCNN), (GRAY28, StridedCNN), (TAB, MLP)]
)
def test_auto_picks_backbone_by_input(profile, cls):
    net = build_backbone("auto", profile)
    assert type(net) is cls
    out = _forward(net, profile)
    assert out.shape == (3, net.out_features)


@pytest.mark.parametrize(
    "shape,expected",
    [
        ((3, 16, 16), "SmallCNN"),
        ((1, 17, 40), "StridedCNN"),
        ((3, 64, 64), "StridedCNN"),
        ((3, 65, 65), "_TorchvisionTrunk"),
        ((1, 200, 64), "StridedCNN"),  # the smaller side decides
    ],
)
def test_auto_size_boundaries(shape, expected):
    net = build_backbone("auto", InputProfile("image", shape))
    assert type(net).__name__ == expected


def test_auto_picks_torchvision_resnet18_for_large_images():
    net = build_backbone("auto", RGB96)
    assert isinstance(net.model, torchvision.models.ResNet)
    assert net.out_features == 512
    assert isinstance(net.model.fc, nn.Identity)
    assert _forward(net, RGB96, batch=2).shape == (2, 512)


def test_torchvision_trunk_repeats_gray_channels():
    net = build_backbone("resnet18", InputProfile("image", (1, 32, 32)))
    x = torch.rand(2, 1, 32, 32)
    net.eval()
    with torch.no_grad():
        out = net(x)
        ref = net.model(x.repeat(1, 3, 1, 1))
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(
    "name,size",
    [
        ("mnasnet0_5", 32),  # Sequential(Dropout, Linear) head
        ("mobilenet_v3_small", 32),  # Sequential(Linear, Hardswish, ..., Linear)
        ("squeezenet1_0", 48),  # Sequential head without any Linear
        ("vit_b_16", 224),  # head called "heads"
    ],
)
def test_torchvision_trunk_out_features_match_output(name, size):
    """Any torchvision model name either works (2-D output of width
    out_features) or is refused with a ValueError."""
    profile = InputProfile("image", (3, size, size))
    try:
        net = build_backbone(name, profile)
    except ValueError:
        return
    out = _forward(net, profile, batch=1)
    assert out.ndim == 2
    assert out.shape[1] == net.out_features


def test_named_backbones_and_widths():
    assert build_backbone("small_cnn", GRAY28).out_features == 128
    assert build_backbone("small_resnet", GRAY8).out_features == 128
    assert build_backbone("mlp", TAB).out_features == 128
    assert SmallCNN(1, width=8).out_features == 16
    assert SmallResNet(3, width=4, blocks=(1, 2)).out_features == 8
    assert _forward(SmallResNet(3, width=4, blocks=(1, 2)), RGB32).shape == (3, 8)


def test_mlp_reads_images_as_flat_rows():
    net = build_backbone("mlp", GRAY8)
    assert isinstance(net, MLP)
    assert net.net[0].in_features == 64
    assert _forward(net, GRAY8).shape == (3, 128)


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="not known"):
        build_backbone("definitely_not_a_model", RGB32)


def test_image_backbone_on_tabular_raises():
    with pytest.raises(ValueError, match="tabular"):
        build_backbone("small_cnn", TAB)


def test_standardize():
    mod = Standardize(torch.tensor([1.0, 2.0]).view(2, 1, 1), [[[2.0]], [[4.0]]])
    x = torch.tensor([3.0, 10.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(mod(x).flatten(), torch.tensor([1.0, 2.0]))
    assert set(mod.state_dict()) == {"mean", "std"}


# ---------------------------------------------------------------------------
# custom modules
# ---------------------------------------------------------------------------


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3)
        self.bn = nn.BatchNorm2d(5)

    def forward(self, x):
        return self.bn(self.conv(x)).mean(dim=(2, 3))


def test_custom_module_gets_out_features_probed():
    mod = _Custom()
    mod.train()
    running = mod.bn.running_mean.clone()
    net = build_backbone(mod, GRAY8)
    assert net is mod
    assert net.out_features == 5
    assert net.training  # mode restored
    # The probe ran in eval mode: BatchNorm statistics unchanged.
    torch.testing.assert_close(mod.bn.running_mean, running)


def test_custom_module_out_features_is_kept():
    # An existing attribute is trusted as given: no probe runs.
    mod = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    mod.out_features = 99  # trusted as given, no probe
    assert build_backbone(mod, GRAY8).out_features == 99


def test_custom_module_4d_output_raises():
    mod = nn.Conv2d(1, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        build_backbone(mod, GRAY8)


def test_custom_module_failing_on_dummy_batch_raises():
    mod = nn.Sequential(nn.Linear(3, 2))  # cannot take (2, 1, 8, 8)
    with pytest.raises(ValueError, match="dummy batch"):
        build_backbone(mod, GRAY8)


# ---------------------------------------------------------------------------
# load_weights
# ---------------------------------------------------------------------------


def _small():
    return SmallCNN(1, width=4)


def _trained_state():
    torch.manual_seed(1)
    src = _small()
    # Non-default BatchNorm statistics so that buffers matter too.
    src.train()
    with torch.no_grad():
        src(torch.rand(8, 1, 8, 8))
    return src


def _assert_same_outputs(a, b):
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_load_weights_round_trip(tmp_path):
    src = _trained_state()
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    torch.manual_seed(2)
    dst = _small()
    load_weights(dst, path)
    _assert_same_outputs(src, dst)
    load_weights(dst, str(path))  # str paths work as well


def test_load_weights_strips_dataparallel_prefix(tmp_path):
    src = _trained_state()
    path = tmp_path / "dp.pt"
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, path)
    dst = _small()
    load_weights(dst, path)
    _assert_same_outputs(src, dst)


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_load_weights_unwraps_checkpoint(tmp_path, key):
    src = _trained_state()
    path = tmp_path / "ckpt.pt"
    torch.save({key: src.state_dict(), "epoch": 3}, path)
    dst = _small()
    load_weights(dst, path)
    _assert_same_outputs(src, dst)


def test_load_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_weights(_small(), tmp_path / "nope.pt")


def test_load_weights_corrupt_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="could not read weights"):
        load_weights(_small(), path)


def test_load_weights_non_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a state dict"):
        load_weights(_small(), path)


def test_load_weights_mismatched_keys(tmp_path):
    state = _trained_state().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["features.0.0.weight"]
    path = tmp_path / "keys.pt"
    torch.save(state, path)
    dst = _small()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(ValueError, match="missing keys") as info:
        load_weights(dst, path)
    msg = str(info.value)
    assert "features.0.0.weight" in msg
    assert "unexpected keys" in msg and "extra.weight" in msg
    # Nothing was loaded.
    for k, v in dst.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_load_weights_non_strict_loads_the_common_keys(tmp_path):
    src = _trained_state()
    state = src.state_dict()
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "loose.pt"
    torch.save(state, path)
    dst = _small()
    load_weights(dst, path, strict=False)
    _assert_same_outputs(src, dst)


def test_load_weights_wrong_shape(tmp_path):
    path = tmp_path / "shape.pt"
    torch.save(SmallCNN(1, width=6).state_dict(), path)
    with pytest.raises(ValueError, match="wrong shape"):
        load_weights(_small(), path)


def test_load_weights_torchvision_format(tmp_path):
    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None)  # has fc.weight / fc.bias
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
    state = ref.state_dict()
    assert "fc.weight" in state
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)

    torch.manual_seed(4)
    net = build_backbone("resnet18", RGB96)
    load_weights(net, path)
    torch.testing.assert_close(net.model.conv1.weight, ref.conv1.weight)
    ref.fc = nn.Identity()
    ref.eval()
    net.eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x))


def test_load_weights_torchvision_with_dataparallel_prefix(tmp_path):
    torch.manual_seed(5)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "dp_resnet18.pth"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path
    )
    net = build_backbone("resnet18", RGB96)
    load_weights(net, path)
    torch.testing.assert_close(
        net.model.layer4[1].conv2.weight, ref.layer4[1].conv2.weight
    )

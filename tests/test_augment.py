"""Tests for skspice.augment: batched views on tiny hand-made images."""

import pytest
import torch

from skspice.augment import (
    ImageAugmenter,
    TabularAugmenter,
    adjust_hue,
    autocontrast,
    cutout,
    gaussian_blur,
    make_augmenter,
    posterize,
    random_affine,
    solarize,
)
from skspice.inputs import InputProfile


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _images(b, c, size, seed=0):
    return torch.rand(b, c, size, size, generator=_gen(seed))


VIEW_CASES = [(8, 1), (28, 1), (32, 3)]
VIEWS = ["contrastive", "weak", "strong"]


@pytest.mark.parametrize("size,channels", VIEW_CASES)
@pytest.mark.parametrize("view", VIEWS)
def test_view_shape_dtype_range(size, channels, view):
    aug = ImageAugmenter(size, channels)
    x = _images(6, channels, size)
    before = x.clone()
    y = getattr(aug, view)(x, _gen(1))
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert not torch.equal(y, x)  # something happened
    torch.testing.assert_close(x, before)  # input untouched


@pytest.mark.parametrize("size,channels", VIEW_CASES)
@pytest.mark.parametrize("view", VIEWS)
def test_view_is_deterministic_per_seed(size, channels, view):
    aug = ImageAugmenter(size, channels)
    x = _images(4, channels, size)
    a = getattr(aug, view)(x, _gen(123))
    b = getattr(aug, view)(x, _gen(123))
    c = getattr(aug, view)(x, _gen(124))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("size,channels", VIEW_CASES)
@pytest.mark.parametrize("view", VIEWS)
def test_view_under_low_precision_autocast_is_the_fp32_view(size, channels, view):
    # The training loop builds batches under autocast; blur and sharpness
    # are convolutions, which autocast would run in bf16 (and which then
    # failed to write back into the fp32 batch).
    aug = ImageAugmenter(size, channels)
    x = _images(16, channels, size)
    expected = getattr(aug, view)(x, _gen(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = getattr(aug, view)(x, _gen(5))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_views_differ_per_image_in_batch():
    # The same image repeated gets different random transforms.
    aug = ImageAugmenter(28, 1)
    x = _images(1, 1, 28).repeat(4, 1, 1, 1)
    y = aug.strong(x, _gen(5))
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize(
    "view, size, has_cutout",
    [("contrastive", 8, True), ("contrastive", 32, False), ("strong", 32, True)],
)
def test_view_applies_cutout(view, size, has_cutout):
    # On mid-gray images the warps only zero pixels near the border and the
    # colour operations never reach exactly 0, so zeros in the centre come
    # from cutout alone. The contrastive view of images over 16 px follows
    # MoCo v2 (crop, jitter, blur) without cutout.
    aug = ImageAugmenter(size, 3)
    y = getattr(aug, view)(torch.full((64, 3, size, size), 0.5), _gen(0))
    lo, hi = 3 * size // 8, 5 * size // 8
    centre = y[:, :, lo:hi, lo:hi]
    hit = (centre == 0).all(dim=1).flatten(1).any(dim=1)
    if has_cutout:
        assert 0 < int(hit.sum()) < 64
    else:
        assert int(hit.sum()) == 0


def test_strong_with_more_ops_still_in_range():
    aug = ImageAugmenter(32, 3)
    y = aug.strong(_images(8, 3, 32), _gen(2), n_ops=4)
    assert y.shape == (8, 3, 32, 32)
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_augmenter_flags():
    assert ImageAugmenter(8, 1).tiny and not ImageAugmenter(8, 1).flip
    assert not ImageAugmenter(28, 1).tiny
    assert ImageAugmenter(32, 3).flip


def test_gray_weak_view_never_flips():
    # A left/right asymmetric image: with no shift, a flip would be visible.
    x = torch.zeros(32, 1, 8, 8)
    x[..., :, :2] = 1.0
    y = ImageAugmenter(8, 1).weak(x, _gen(0))
    # Mass stays on the left half for every image (shift <= 1/8 of the side).
    left = y[..., :, :4].sum(dim=(1, 2, 3))
    right = y[..., :, 4:].sum(dim=(1, 2, 3))
    assert (left > right).all()


# ---------------------------------------------------------------------------
# random_affine
# ---------------------------------------------------------------------------


def test_random_affine_zero_ranges_is_identity():
    x = _images(3, 2, 9)
    y = random_affine(x, _gen(0))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_random_affine_flip_only_mirrors():
    x = _images(16, 1, 6)
    y = random_affine(x, _gen(0), flip=True)
    flipped = 0
    for xi, yi in zip(x, y):
        if torch.allclose(yi, xi, atol=1e-5):
            continue
        torch.testing.assert_close(yi, xi.flip(-1), atol=1e-5, rtol=0)
        flipped += 1
    assert 0 < flipped < 16


def test_random_affine_shift_moves_content_and_pads_with_zero():
    x = torch.ones(8, 1, 10, 10)
    y = random_affine(x, _gen(3), translate=0.3)
    # Shifted constant images lose mass to the zero padding.
    assert (y.sum(dim=(1, 2, 3)) < 100 - 1e-3).all()
    assert y.min() >= 0 and y.max() <= 1 + 1e-6


def test_random_affine_crop_area_keeps_shape():
    x = _images(5, 3, 12)
    y = random_affine(x, _gen(0), crop_area=(0.3, 1.0), rotate=10, flip=True)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)


# ---------------------------------------------------------------------------
# cutout, blur and photometric operations
# ---------------------------------------------------------------------------


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(20, 3, 16, 16)
    y = cutout(x, _gen(0), 0.5)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    zeroed = y[:, 0] == 0
    assert zeroed.any()
    for img, mask in zip(y, zeroed):
        # The same pixels are cut in every channel.
        assert torch.equal(img[0] == 0, img[1] == 0)
        assert torch.equal(img[0] == 0, img[2] == 0)
        if mask.any():
            rows = mask.any(1).nonzero().flatten()
            cols = mask.any(0).nonzero().flatten()
            # The cut region fills its bounding box (a rectangle).
            box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all()
            assert len(rows) <= 8 and len(cols) <= 8  # side <= 0.5 * 16


def test_cutout_zero_fraction_is_noop():
    x = _images(4, 1, 8)
    torch.testing.assert_close(cutout(x, _gen(0), 0.0), x)


def test_gaussian_blur_keeps_constant_images():
    x = torch.full((3, 2, 10, 10), 0.37)
    y = gaussian_blur(x, torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(y, x)


def test_gaussian_blur_roughly_preserves_mean_and_smooths():
    x = _images(3, 1, 16)
    y = gaussian_blur(x, torch.tensor([0.5, 1.0, 1.5]))
    assert y.shape == x.shape
    torch.testing.assert_close(
        y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.02, rtol=0
    )
    # Blurring reduces variance, more with a larger sigma.
    var = y.var(dim=(1, 2, 3))
    assert (var < x.var(dim=(1, 2, 3))).all()
    big = gaussian_blur(x[:1], torch.tensor([2.0]))
    small = gaussian_blur(x[:1], torch.tensor([0.5]))
    assert big.var() < small.var()


def test_gaussian_blur_spreads_an_impulse_symmetrically():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = gaussian_blur(x, torch.tensor([1.0]))[0, 0]
    assert y.sum() == pytest.approx(1.0, abs=1e-5)
    assert y[4, 4] == y.max()
    torch.testing.assert_close(y, y.flip(0))
    torch.testing.assert_close(y, y.flip(1))
    torch.testing.assert_close(y, y.T)


def test_gaussian_blur_on_tiny_images():
    # Radius larger than the side falls back to replicate padding.
    x = _images(2, 1, 3)
    y = gaussian_blur(x, torch.tensor([2.0, 2.0]))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_solarize_inverts_at_and_above_threshold():
    x = torch.tensor([0.0, 0.2, 0.45, 0.6, 0.7, 1.0]).view(1, 1, 1, 6)
    x = x.repeat(3, 1, 1, 1)
    y = solarize(x, torch.tensor([0.5, 0.6, 1.1]))
    torch.testing.assert_close(
        y[0, 0, 0], torch.tensor([0.0, 0.2, 0.45, 0.4, 0.3, 0.0])
    )
    # A pixel equal to the threshold is inverted too.
    torch.testing.assert_close(
        y[1, 0, 0], torch.tensor([0.0, 0.2, 0.45, 0.4, 0.3, 0.0])
    )
    torch.testing.assert_close(y[2], x[2])  # threshold above 1: unchanged


def test_posterize_levels():
    x = torch.linspace(0, 1, 256).view(1, 1, 16, 16).repeat(3, 1, 1, 1)
    y = posterize(x, torch.tensor([1.0, 2.0, 8.0]))
    # 1 bit: two levels {0, 1}, split at the middle.
    assert set(y[0].unique().tolist()) == {0.0, 1.0}
    assert (y[0].flatten()[:128] == 0).all() and (y[0].flatten()[128:] == 1).all()
    # 2 bits: four evenly spaced levels.
    torch.testing.assert_close(y[1].unique(), torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    # 8 bits keeps every 8-bit value.
    torch.testing.assert_close(y[2], x[2])
    # Monotone and in range.
    assert (y[1].flatten().diff() >= 0).all()
    assert y.min() >= 0 and y.max() <= 1


def test_autocontrast_stretches_each_channel():
    x = torch.tensor([[0.2, 0.4], [0.3, 0.6]]).view(1, 1, 2, 2)
    x = torch.cat([x, 0.5 * x + 0.25], dim=1)  # second channel: [0.35, 0.55]
    y = autocontrast(x)
    expected = (x[0, 0] - 0.2) / 0.4
    torch.testing.assert_close(y[0, 0], expected)
    torch.testing.assert_close(y[0, 1], expected)
    assert y.amin(dim=(2, 3)).tolist() == [[0.0, 0.0]]
    torch.testing.assert_close(y.amax(dim=(2, 3)), torch.ones(1, 2))


def test_autocontrast_is_idempotent_on_full_range_images():
    x = _images(2, 3, 6)
    x[:, :, 0, 0] = 0.0
    x[:, :, 0, 1] = 1.0
    torch.testing.assert_close(autocontrast(x), x)


# ---------------------------------------------------------------------------
# TabularAugmenter and make_augmenter
# ---------------------------------------------------------------------------


def test_tabular_views_shape_and_masking():
    mean = torch.tensor([10.0, -5.0, 3.0, 0.5])
    std = torch.zeros(4)  # no noise: every change is a mask
    aug = TabularAugmenter(mean, std)
    x = torch.rand(500, 4, generator=_gen(0)) + 100.0  # never equal to the mean
    for view in ("contrastive", "strong"):
        y = getattr(aug, view)(x, _gen(1))
        assert y.shape == x.shape
        masked = y != x
        torch.testing.assert_close(y[masked], mean.expand_as(x)[masked])
        frac = masked.float().mean().item()
        assert 0.25 < frac < 0.35  # 30 % of the features
    torch.testing.assert_close(aug.weak(x, _gen(1)), x)  # no masking, no noise


def test_tabular_noise_scale_follows_std():
    mean = torch.zeros(3)
    std = torch.tensor([1.0, 10.0, 0.0])
    aug = TabularAugmenter(mean, std)
    x = torch.ones(4000, 3)
    y = aug.weak(x, _gen(2))
    noise = y - x
    assert noise[:, 0].std().item() == pytest.approx(0.05, rel=0.1)
    assert noise[:, 1].std().item() == pytest.approx(0.5, rel=0.1)
    assert (noise[:, 2] == 0).all()


def test_tabular_is_deterministic_per_seed():
    aug = TabularAugmenter(torch.zeros(5), torch.ones(5))
    x = torch.rand(10, 5, generator=_gen(0))
    torch.testing.assert_close(aug.strong(x, _gen(3)), aug.strong(x, _gen(3)))
    assert not torch.allclose(aug.strong(x, _gen(3)), aug.strong(x, _gen(4)))


def test_make_augmenter_dispatch():
    tab = make_augmenter(
        InputProfile("tabular", (4,)), mean=torch.zeros(4), std=torch.ones(4)
    )
    assert isinstance(tab, TabularAugmenter)
    torch.testing.assert_close(tab.mean, torch.zeros(4))

    gray = make_augmenter(InputProfile("image", (1, 28, 28)))
    assert isinstance(gray, ImageAugmenter)
    assert (gray.image_size, gray.channels, gray.flip) == (28, 1, False)

    rgb = make_augmenter(InputProfile("image", (3, 32, 24)))
    assert (rgb.image_size, rgb.channels, rgb.flip) == (24, 3, True)

    assert make_augmenter(InputProfile("image", (1, 28, 28)), flip=True).flip
    assert not make_augmenter(InputProfile("image", (3, 32, 32)), flip=False).flip


def test_gray_weak_view_flips_when_asked():
    # The left-heavy images of test_gray_weak_view_never_flips: with
    # flip=True about half of them end up heavier on the right.
    x = torch.zeros(64, 1, 8, 8)
    x[..., :, :2] = 1.0
    y = ImageAugmenter(8, 1, flip=True).weak(x, _gen(0))
    right = y[..., :, 4:].sum(dim=(1, 2, 3)) > y[..., :, :4].sum(dim=(1, 2, 3))
    assert 16 <= int(right.sum()) <= 48


# ---------------------------------------------------------------------------
# adjust_hue and the colour contrastive view
# ---------------------------------------------------------------------------


def _luma(x):
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1)


def test_adjust_hue_keeps_shape_and_range():
    x = _images(16, 3, 6)
    x[:, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # saturated colours clip
    x[:, :, 0, 1] = torch.tensor([0.0, 0.0, 1.0])
    shift = torch.linspace(-1.0, 1.0, 16)
    y = adjust_hue(x, shift)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("turns", [0.0, 1.0, -1.0])
def test_adjust_hue_zero_or_full_turn_is_identity(turns):
    x = _images(4, 3, 5)
    y = adjust_hue(x, torch.full((4,), turns))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_adjust_hue_leaves_gray_pixels_unchanged():
    x = _images(5, 1, 6).expand(5, 3, 6, 6)
    y = adjust_hue(x, torch.tensor([0.1, 0.25, 0.5, 0.73, -0.4]))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_adjust_hue_one_channel_returned_as_is():
    x = _images(3, 1, 5)
    assert adjust_hue(x, torch.tensor([0.1, 0.2, 0.3])) is x


def test_adjust_hue_changes_colours():
    x = 0.3 + 0.4 * _images(4, 3, 5)
    y = adjust_hue(x, torch.full((4,), 0.25))
    assert (y - x).abs().amax(dim=(1, 2, 3)).min() > 0.05


def test_adjust_hue_half_turn_swaps_red_and_cyan():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    y = adjust_hue(red, torch.tensor([0.5]))[0, :, 0, 0]
    # Red goes to its opposite hue (clipped to the cube): G = B > R.
    assert y[1].item() == pytest.approx(y[2].item(), abs=1e-5)
    assert y[1] > y[0] + 0.3


def test_adjust_hue_uses_each_images_own_shift():
    x = _images(6, 3, 5)
    shift = torch.tensor([0.0, 0.05, -0.1, 0.3, 0.5, -0.45])
    batch = adjust_hue(x, shift)
    for i in range(6):
        alone = adjust_hue(x[i : i + 1], shift[i : i + 1])
        torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-6, rtol=0)
    # The same image with different shifts comes out differently.
    same = adjust_hue(x[:1].repeat(3, 1, 1, 1), torch.tensor([0.1, 0.2, 0.3]))
    assert not torch.allclose(same[0], same[1], atol=1e-3)
    assert not torch.allclose(same[1], same[2], atol=1e-3)


def test_adjust_hue_composes_and_inverts():
    x = 0.35 + 0.3 * _images(3, 3, 5)  # well inside the cube: no clipping
    a = torch.tensor([0.1, -0.2, 0.3])
    b = torch.tensor([0.15, 0.05, -0.1])
    twice = adjust_hue(adjust_hue(x, a), b)
    torch.testing.assert_close(twice, adjust_hue(x, a + b), atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(adjust_hue(x, a), -a), x, atol=1e-5, rtol=0)


def test_adjust_hue_preserves_luminance_inside_the_cube():
    x = 0.4 + 0.2 * _images(8, 3, 6)
    shift = torch.linspace(-0.5, 0.5, 8)
    y = adjust_hue(x, shift)
    assert not torch.allclose(y, x, atol=1e-3)
    torch.testing.assert_close(_luma(y), _luma(x), atol=1e-5, rtol=0)


def test_adjust_hue_keeps_float64():
    x = _images(2, 3, 4).double()
    y = adjust_hue(x, torch.tensor([0.1, 0.2]))
    assert y.dtype == torch.float64


def test_colour_contrastive_view_is_seeded_and_in_range():
    aug = ImageAugmenter(image_size=28, channels=3)
    x = _images(6, 3, 28)
    a = aug.contrastive(x, _gen(7))
    b = aug.contrastive(x, _gen(7))
    c = aug.contrastive(x, _gen(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    for y in (a, c):
        assert y.shape == x.shape
        assert torch.isfinite(y).all()
        assert y.min() >= 0.0 and y.max() <= 1.0


def test_colour_contrastive_view_shifts_hues_by_at_most_a_tenth(monkeypatch):
    import skspice.augment as augment

    shifts = []

    def spy(x, shift):
        shifts.append(shift.clone())
        return adjust_hue(x, shift)

    monkeypatch.setattr(augment, "adjust_hue", spy)
    x = _images(64, 3, 28)
    y = augment.ImageAugmenter(28, 3).contrastive(x, _gen(0))
    assert len(shifts) == 1
    (shift,) = shifts
    assert shift.shape == (64,)
    assert shift.abs().max() <= 0.1
    assert shift.min() < -0.03 and shift.max() > 0.03  # both directions
    assert len(shift.unique()) == 64  # one shift per image
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_colour_contrastive_view_applies_hue(monkeypatch):
    # Without the hue rotation (same random draws) the views differ.
    import skspice.augment as augment

    aug = augment.ImageAugmenter(28, 3)
    x = _images(8, 3, 28)
    with_hue = aug.contrastive(x, _gen(3))
    monkeypatch.setattr(augment, "adjust_hue", lambda x, shift: x)
    without = aug.contrastive(x, _gen(3))
    assert with_hue.shape == without.shape
    assert not torch.allclose(with_hue, without, atol=1e-4)


@pytest.mark.parametrize("size", [8, 28])
def test_gray_contrastive_view_skips_hue(monkeypatch, size):
    import skspice.augment as augment

    calls = []
    monkeypatch.setattr(
        augment, "adjust_hue", lambda x, shift: calls.append(shift) or x
    )
    augment.ImageAugmenter(size, 1).contrastive(_images(4, 1, size), _gen(0))
    assert calls == []

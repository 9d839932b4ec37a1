"""Tests for skspice.contrast: background colour and contrast maps."""

import pytest
import torch

from skspice.contrast import (
    COLOR_NUISANCE_MIN_RATIO,
    FLAT_MIN_FRACTION,
    MIN_CONTRAST,
    background_color,
    background_contrast,
    border_pixels,
    color_structure_ratio,
    colors_are_nuisance,
    contrast_map_reason,
    flat_border_fraction,
    has_flat_background,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _masks(b, size=16, seed=0):
    """Soft white-on-black shapes (max exactly 1) away from the border."""
    g = _gen(seed)
    ys = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    xs = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    cy = size / 2 + (torch.rand(b, 1, 1, generator=g) - 0.5) * 2
    cx = size / 2 + (torch.rand(b, 1, 1, generator=g) - 0.5) * 2
    r = size * (0.15 + 0.1 * torch.rand(b, 1, 1, generator=g))
    dist = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
    m = (r + 1 - dist).clamp(0, 1)  # anti-aliased edge
    m = m * (0.5 + 0.5 * torch.rand(b, size, size, generator=g))  # texture
    m = m / m.amax(dim=(1, 2), keepdim=True)
    return m.unsqueeze(1)  # (b, 1, size, size)


def _coloured(m, seed=0, min_gap=0.3):
    """Draw masks ``m`` as ``b + m * (f - b)`` with random RGB colours."""
    g = _gen(seed)
    n = m.shape[0]
    fg = torch.rand(n, 3, 1, 1, generator=g)
    bg = torch.rand(n, 3, 1, 1, generator=g)
    # Keep the two colours clearly apart (a random pair can be nearly equal).
    far = (fg - bg).abs().amax(dim=1, keepdim=True) >= min_gap
    fg = torch.where(far, fg, 1 - bg)
    return bg + m * (fg - bg), fg, bg


# ---------------------------------------------------------------------------
# border_pixels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(2, 2), (3, 5), (7, 4), (16, 16)])
def test_border_pixels_count_and_shape(h, w):
    x = torch.rand(3, 2, h, w, generator=_gen(0))
    frame = border_pixels(x)
    assert frame.shape == (3, 2, 2 * (h + w) - 4)


def test_border_pixels_takes_the_frame_only():
    h, w = 6, 9
    x = torch.zeros(2, 3, h, w)
    # Unique value per pixel; the interior is marked negative.
    ids = torch.arange(h * w, dtype=torch.float32).view(h, w) + 1
    x[:] = ids
    inner = torch.zeros(h, w, dtype=torch.bool)
    inner[1:-1, 1:-1] = True
    x[:, :, inner] = -1.0
    frame = border_pixels(x)
    assert (frame > 0).all()  # nothing from the interior
    # Every frame pixel exactly once.
    expected = ids[~inner].sort().values
    for img in frame:
        for channel in img:
            assert torch.equal(channel.sort().values, expected)


def test_border_pixels_keeps_channels_apart():
    x = torch.zeros(1, 3, 5, 5)
    x[:, 1] = 1.0
    x[:, 2] = 2.0
    frame = border_pixels(x)
    assert frame[0, 0].eq(0).all()
    assert frame[0, 1].eq(1).all()
    assert frame[0, 2].eq(2).all()


def test_border_pixels_one_row_images_are_all_frame():
    x = torch.rand(2, 1, 1, 5, generator=_gen(0))
    torch.testing.assert_close(border_pixels(x), x.flatten(2))


@pytest.mark.parametrize("shape", [(5, 5), (3, 5, 5), (1, 1, 3, 5, 5)])
def test_border_pixels_rejects_non_4d(shape):
    with pytest.raises(ValueError, match="expected images"):
        border_pixels(torch.zeros(shape))


# ---------------------------------------------------------------------------
# background_color
# ---------------------------------------------------------------------------


def test_background_color_is_frame_median_per_channel():
    # Frame (20 pixels): 12 background pixels, 8 others; interior is ignored.
    x = torch.zeros(2, 3, 6, 6)
    x[0] = torch.tensor([0.2, 0.5, 0.9]).view(3, 1, 1)
    x[1] = torch.tensor([0.7, 0.1, 0.3]).view(3, 1, 1)
    x[:, :, 0, :] = 1.0  # top row: 6 frame pixels
    x[:, :, 1:3, 0] = 0.0  # 2 more on the left column
    x[:, :, 1:-1, 1:-1] = 0.95  # interior, not counted
    bg = background_color(x)
    assert bg.shape == (2, 3)
    torch.testing.assert_close(bg, torch.tensor([[0.2, 0.5, 0.9], [0.7, 0.1, 0.3]]))


def test_background_color_matches_median_of_border_pixels():
    x = torch.rand(5, 3, 7, 9, generator=_gen(1))
    frame = border_pixels(x)
    n = frame.shape[2]
    # torch's median of an even count is the lower middle value.
    expected = frame.sort(dim=2).values[:, :, (n - 1) // 2]
    torch.testing.assert_close(background_color(x), expected)


def test_background_color_ignores_interior():
    x = torch.full((1, 1, 8, 8), 0.25)
    x[:, :, 1:-1, 1:-1] = 1.0  # 36 of 64 pixels, none on the frame
    torch.testing.assert_close(background_color(x), torch.tensor([[0.25]]))


# ---------------------------------------------------------------------------
# flat_border_fraction and has_flat_background
# ---------------------------------------------------------------------------


def test_flat_border_fraction_is_one_for_constant_frame():
    x = torch.rand(4, 3, 10, 10, generator=_gen(0))
    x[:, :, 0, :] = 0.3
    x[:, :, -1, :] = 0.3
    x[:, :, :, 0] = 0.3
    x[:, :, :, -1] = 0.3
    frac = flat_border_fraction(x)
    assert frac.shape == (4,)
    torch.testing.assert_close(frac, torch.ones(4))


def test_flat_border_fraction_counts_pixels_within_tolerance():
    # 10x10: frame of 36 pixels; 9 of them are off (top row, 9 of 10).
    x = torch.zeros(1, 3, 10, 10)
    x[0, 1, 0, :9] = 0.5  # one channel far off is enough
    assert flat_border_fraction(x).item() == pytest.approx(27 / 36)
    # Within tolerance: counted as background.
    x[0, 1, 0, :9] = 0.05
    assert flat_border_fraction(x).item() == pytest.approx(1.0)
    assert flat_border_fraction(x, tolerance=0.01).item() == pytest.approx(27 / 36)


def test_flat_border_fraction_small_for_noise():
    x = torch.rand(16, 3, 16, 16, generator=_gen(2))
    assert (flat_border_fraction(x) < 0.3).all()


def test_has_flat_background_true_for_masks():
    m = _masks(30)
    assert has_flat_background(m)
    assert has_flat_background(1 - m)  # dark on light
    coloured, _, _ = _coloured(m, seed=3)
    assert has_flat_background(coloured)


@pytest.mark.parametrize("channels", [1, 3])
def test_has_flat_background_false_for_noise_photographs(channels):
    x = torch.rand(30, channels, 16, 16, generator=_gen(4))
    assert not has_flat_background(x)


def test_has_flat_background_uses_median_image():
    # Majority of images flat: True; majority noise: False.
    flat = _masks(12).expand(12, 3, 16, 16)
    noise = torch.rand(12, 3, 16, 16, generator=_gen(5))
    assert has_flat_background(torch.cat([flat[:9], noise[:3]]))
    assert not has_flat_background(torch.cat([flat[:3], noise[:9]]))


def test_has_flat_background_threshold_and_return_type():
    # Every frame exactly 27/36 flat: 0.75 against a threshold of 0.7.
    x = torch.zeros(5, 1, 10, 10)
    x[:, :, 0, :9] = 1.0
    assert 27 / 36 >= FLAT_MIN_FRACTION
    result = has_flat_background(x)
    assert result is True
    assert has_flat_background(x, min_fraction=0.8) is False


def test_has_flat_background_float64_and_subsampling():
    m = _masks(40).double()
    assert has_flat_background(m, max_images=7)
    noise = torch.rand(40, 1, 8, 8, generator=_gen(6))
    assert not has_flat_background(noise, max_images=3)


# ---------------------------------------------------------------------------
# background_contrast
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_background_contrast_shape_dtype_range(channels):
    x = torch.rand(6, channels, 12, 10, generator=_gen(0), dtype=torch.float64)
    y = background_contrast(x)
    assert y.shape == (6, 1, 12, 10)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    torch.testing.assert_close(y.amax(dim=(1, 2, 3)), torch.ones(6))


def test_background_contrast_does_not_modify_input():
    x = torch.rand(3, 3, 8, 8, generator=_gen(0))
    before = x.clone()
    background_contrast(x)
    torch.testing.assert_close(x, before, rtol=0, atol=0)


def test_background_contrast_keeps_white_on_black_masks():
    m = _masks(10)
    torch.testing.assert_close(background_contrast(m), m)


def test_background_contrast_rescales_to_own_peak():
    m = _masks(4)
    scale = torch.tensor([0.1, 0.3, 0.6, 1.0]).view(4, 1, 1, 1)
    torch.testing.assert_close(background_contrast(m * scale), m)


def test_background_contrast_inverted_gray_is_the_mask():
    m = _masks(10)
    torch.testing.assert_close(background_contrast(1 - m), m, atol=1e-6, rtol=0)


def test_background_contrast_ignores_colours():
    m = _masks(20)
    coloured, fg, bg = _coloured(m, seed=1)
    assert not torch.allclose(fg[0], fg[1])  # really different colours
    torch.testing.assert_close(background_contrast(coloured), m, atol=1e-5, rtol=0)
    # Swapping the colours (contrast polarity) changes nothing either.
    swapped = fg + m * (bg - fg)
    torch.testing.assert_close(background_contrast(swapped), m, atol=1e-5, rtol=0)


def test_background_contrast_same_map_for_every_colouring():
    m = _masks(8)
    maps = [background_contrast(_coloured(m, seed=s)[0]) for s in range(4)]
    for other in maps[1:]:
        torch.testing.assert_close(other, maps[0], atol=1e-5, rtol=0)


def test_background_contrast_is_colour_distance():
    # A 2x2-interior image: background (0, 0, 0), one pixel (1, 0, 0) and
    # one (1, 1, 1): distances 1/sqrt(3) and 1, divided by the peak 1.
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0, 1, 1] = 1.0
    x[0, :, 2, 2] = 1.0
    y = background_contrast(x)[0, 0]
    assert y[1, 1].item() == pytest.approx(3**-0.5, abs=1e-6)
    assert y[2, 2].item() == pytest.approx(1.0)
    assert y.sum().item() == pytest.approx(1 + 3**-0.5, abs=1e-6)


@pytest.mark.parametrize("value", [0.0, 0.4, 1.0])
def test_background_contrast_blank_images_stay_black(value):
    x = torch.full((3, 3, 8, 8), value)
    y = background_contrast(x)
    assert torch.isfinite(y).all()
    assert (y == 0).all()


def test_background_contrast_nearly_blank_not_amplified():
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 4, 4] = MIN_CONTRAST / 2  # below the blank threshold
    x[1, 0, 4, 4] = 0.5
    y = background_contrast(x)
    assert y[0].max().item() == pytest.approx(MIN_CONTRAST / 2)
    assert y[1].max().item() == pytest.approx(1.0)


def test_background_contrast_images_are_independent():
    m = _masks(6)
    coloured, _, _ = _coloured(m, seed=2)
    batch = background_contrast(coloured)
    for i in range(6):
        torch.testing.assert_close(
            background_contrast(coloured[i : i + 1]), batch[i : i + 1]
        )


def test_background_contrast_ignores_colours_when_shape_touches_border():
    # A bar along part of the top edge: 6 of 60 frame pixels are foreground,
    # the frame median is still the background colour.
    m = _masks(5)
    m[:, :, 0:2, 5:11] = 1.0
    coloured, _, _ = _coloured(m, seed=4)
    torch.testing.assert_close(background_contrast(coloured), m, atol=1e-5, rtol=0)
    torch.testing.assert_close(background_contrast(1 - m), m, atol=1e-6, rtol=0)


def test_background_contrast_undoes_random_colors_and_polarity():
    # The synthetic nuisance variants map back to the plain shapes.
    from skspice.synthetic import make_shapes, random_colors, random_polarity

    X, _ = make_shapes(20, image_size=16, random_state=0)
    plain = background_contrast(torch.from_numpy(X / 255.0).unsqueeze(1))
    coloured = random_colors(X / 255.0, random_state=1)
    inverted = random_polarity(X / 255.0, random_state=2, p=1.0)
    for variant in (
        torch.from_numpy(coloured).permute(0, 3, 1, 2),
        torch.from_numpy(inverted).unsqueeze(1),
    ):
        torch.testing.assert_close(
            background_contrast(variant), plain, atol=1e-4, rtol=0
        )


# color_structure_ratio and colors_are_nuisance


def _shapes_in(colors, seed=0):
    """``_masks`` drawn in given foreground colours on black-free, random
    backgrounds: ``colors`` is (B, 3) or None for random colours."""
    b = 200 if colors is None else colors.shape[0]
    m = _masks(b, seed=seed)
    g = _gen(seed + 1)
    fg = torch.rand(b, 3, generator=g) if colors is None else colors
    bg = torch.rand(b, 3, generator=g)
    return bg[:, :, None, None] + m * (fg - bg)[:, :, None, None]


def test_color_structure_ratio_near_one_for_random_colours():
    x = _shapes_in(None)
    ratio = color_structure_ratio(x)
    assert 0.9 < ratio < 1.1
    assert colors_are_nuisance(x)


def test_color_structure_ratio_low_when_colours_follow_the_shape():
    # Small discs red, large discs blue: colour tells the structure.
    m = _masks(200)
    small = m.flatten(1).sum(1) < m.flatten(1).sum(1).median()
    fg = torch.where(
        small[:, None], torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    )
    x = m * fg[:, :, None, None]
    assert color_structure_ratio(x) < 0.5
    assert not colors_are_nuisance(x)


def test_color_structure_ratio_batches_equal_tensor():
    x = _shapes_in(None)
    whole = color_structure_ratio(x)
    parts = color_structure_ratio(iter(x.split(37)))
    assert parts == pytest.approx(whole, rel=1e-5)
    assert colors_are_nuisance(iter(x.split(37))) == colors_are_nuisance(x)


def test_color_structure_ratio_subsamples_tensors():
    x = _shapes_in(None)
    assert color_structure_ratio(x, max_images=50) == pytest.approx(
        color_structure_ratio(x[::4])
    )


def test_color_structure_ratio_degenerate_inputs():
    assert color_structure_ratio(_shapes_in(None)[:2]) == 0.0
    same = _shapes_in(None)[:1].repeat(20, 1, 1, 1)
    assert color_structure_ratio(same) == 0.0  # all images alike in colour
    assert not colors_are_nuisance(same)


def test_colors_are_nuisance_false_for_one_channel_and_threshold():
    assert not colors_are_nuisance(_masks(50))
    assert not colors_are_nuisance(iter(_masks(50).split(10)))
    assert not colors_are_nuisance(iter([]))
    x = _shapes_in(None)
    ratio = color_structure_ratio(x)
    assert colors_are_nuisance(x, min_ratio=ratio)
    assert not colors_are_nuisance(x, min_ratio=ratio + 1e-3)
    assert 0.5 < COLOR_NUISANCE_MIN_RATIO < 1


def test_colors_are_nuisance_streams_batches():
    pulled = []

    def batches(x):
        for b in x.split(50):
            pulled.append(b.shape[0])
            yield b

    x = _shapes_in(None)
    assert colors_are_nuisance(batches(x)) == colors_are_nuisance(x)
    assert sum(pulled) == x.shape[0]
    pulled.clear()
    assert not colors_are_nuisance(batches(_masks(200)))
    assert pulled == [50]  # one channel: decided from the first batch


def test_contrast_map_reason_follows_the_two_tests():
    flat = _shapes_in(None)  # flat frames, random colours
    assert contrast_map_reason(lambda: [flat]) == "flat frame"
    g = _gen(3)
    noise = torch.rand(200, 3, 16, 16, generator=g)  # no frame, random colours
    assert not has_flat_background(noise) and colors_are_nuisance(noise)
    assert contrast_map_reason(lambda: [noise]) == "colours unrelated to content"
    # Colours that follow the structure, no flat frame: four blocky scenes,
    # each with small variations, keep their colours.
    scenes = torch.rand(4, 3, 4, 4, generator=g)
    coarse = scenes[torch.arange(200) % 4] + 0.05 * torch.randn(
        200, 3, 4, 4, generator=g
    )
    photos = coarse.clamp(0, 1).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert not has_flat_background(photos)
    assert contrast_map_reason(lambda: [photos]) is None
    gray = torch.rand(50, 1, 16, 16, generator=g)
    assert contrast_map_reason(lambda: iter(gray.split(10))) is None

"""Tests for skspice.synthetic: seeded image sets and nuisance variants."""

import numpy as np
import pytest

from skspice.synthetic import (
    GLYPH_LETTERS,
    SHAPE_NAMES,
    TEXTURE_NAMES,
    make_glyphs,
    make_shapes,
    make_textures,
    random_colors,
    random_lighting,
    random_polarity,
)


def _gray_uint8(n=6, size=5, seed=0):
    """Random grayscale images with at least one 0 and one 255 pixel each."""
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 256, size=(n, size, size)).astype(np.uint8)
    X[:, 0, 0] = 0
    X[:, -1, -1] = 255
    return X


# ---------------------------------------------------------------------------
# random_colors
# ---------------------------------------------------------------------------


def test_random_colors_uint8_shape_and_dtype():
    X = _gray_uint8()
    Y = random_colors(X, random_state=0)
    assert Y.shape == X.shape + (3,)
    assert Y.dtype == np.uint8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_colors_float_in_float_out(dtype):
    X = (_gray_uint8() / 255.0).astype(dtype)
    Y = random_colors(X, random_state=0)
    assert Y.shape == X.shape + (3,)
    assert Y.dtype == dtype
    assert Y.min() >= 0.0 and Y.max() <= 1.0


def test_random_colors_zero_is_background_one_is_foreground():
    X = np.zeros((8, 4, 4))
    X[:, :2] = 1.0  # top half foreground
    X[:, 3, 3] = 0.5
    Y = random_colors(X, random_state=1)
    for img in Y:
        bg = img[2, 0]
        fg = img[0, 0]
        # Every 0 pixel has one colour, every 1 pixel another.
        np.testing.assert_allclose(img[:2], np.broadcast_to(fg, (2, 4, 3)))
        np.testing.assert_allclose(img[2, :3], np.broadcast_to(bg, (3, 3)))
        # In between: the linear mix b + v * (f - b).
        np.testing.assert_allclose(img[3, 3], (fg + bg) / 2)
    # Colours differ between images.
    fgs = Y[:, 0, 0]
    bgs = Y[:, 2, 0]
    assert len(np.unique(fgs.round(6), axis=0)) == 8
    assert len(np.unique(bgs.round(6), axis=0)) == 8
    # Foreground and background colours are drawn independently.
    assert not np.allclose(fgs, bgs)


def test_random_colors_uint8_pixels_take_image_colours():
    X = _gray_uint8(n=10)
    Y = random_colors(X, random_state=2)
    Yf = random_colors(X / 255.0, random_state=2)
    # The uint8 result is the rounded float result.
    np.testing.assert_array_equal(Y, np.round(Yf * 255).astype(np.uint8))
    for x, y in zip(X, Y):
        zero = y[x == 0]
        one = y[x == 255]
        assert (zero == zero[0]).all() and (one == one[0]).all()
    assert len(np.unique(Y[:, 0, 0], axis=0)) > 1  # backgrounds differ


def test_random_colors_colours_span_the_cube():
    X = np.zeros((200, 2, 2))
    X[:, 0, 0] = 1.0
    Y = random_colors(X, random_state=0)
    colours = np.concatenate([Y[:, 0, 0], Y[:, 1, 1]])
    # Uniform in the RGB cube: every channel uses most of [0, 1].
    assert (colours.min(axis=0) < 0.05).all()
    assert (colours.max(axis=0) > 0.95).all()
    np.testing.assert_allclose(colours.mean(axis=0), 0.5, atol=0.06)


def test_random_colors_seeded():
    X = _gray_uint8()
    np.testing.assert_array_equal(
        random_colors(X, random_state=3), random_colors(X, random_state=3)
    )
    assert not np.array_equal(
        random_colors(X, random_state=3), random_colors(X, random_state=4)
    )
    rng = np.random.RandomState(5)
    a = random_colors(X, random_state=rng)
    b = random_colors(X, random_state=rng)  # the state moves on
    assert not np.array_equal(a, b)


def test_random_colors_does_not_modify_input():
    X = _gray_uint8()
    before = X.copy()
    random_colors(X, random_state=0)
    np.testing.assert_array_equal(X, before)
    Xf = X / 255.0
    before_f = Xf.copy()
    random_colors(Xf, random_state=0)
    np.testing.assert_array_equal(Xf, before_f)


@pytest.mark.parametrize(
    "shape", [(4, 4), (2, 4, 4, 1), (2, 4, 4, 3), (4,), (1, 1, 4, 4, 1)]
)
def test_random_colors_rejects_non_3d(shape):
    with pytest.raises(ValueError, match="grayscale"):
        random_colors(np.zeros(shape), random_state=0)


@pytest.mark.parametrize(
    "X",
    [
        np.full((1, 2, 2), 300, dtype=np.int64),
        np.full((1, 2, 2), -1, dtype=np.int64),
        np.full((1, 2, 2), 1.5),
        np.full((1, 2, 2), -0.1),
    ],
)
def test_random_colors_rejects_out_of_range(X):
    with pytest.raises(ValueError, match="must be in"):
        random_colors(X, random_state=0)


def test_random_colors_accepts_lists():
    Y = random_colors([[[0.0, 1.0]]], random_state=0)
    assert Y.shape == (1, 1, 2, 3)


# ---------------------------------------------------------------------------
# random_polarity
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("colour", [False, True])
def test_random_polarity_p0_is_identity(colour):
    X = _gray_uint8()
    if colour:
        X = random_colors(X, random_state=0)
    Y = random_polarity(X, random_state=0, p=0.0)
    assert Y.dtype == X.dtype and Y.shape == X.shape
    np.testing.assert_array_equal(Y, X)
    Xf = X / 255.0
    np.testing.assert_array_equal(random_polarity(Xf, random_state=0, p=0.0), Xf)


@pytest.mark.parametrize("colour", [False, True])
def test_random_polarity_p1_inverts(colour):
    X = _gray_uint8()
    if colour:
        X = random_colors(X, random_state=0)
    Y = random_polarity(X, random_state=0, p=1.0)
    assert Y.dtype == np.uint8 and Y.shape == X.shape
    np.testing.assert_array_equal(Y, 255 - X)
    Xf = (X / 255.0).astype(np.float32)
    Yf = random_polarity(Xf, random_state=0, p=1.0)
    assert Yf.dtype == np.float32
    np.testing.assert_allclose(Yf, 1 - Xf, atol=1e-7)


def test_random_polarity_inverts_whole_images():
    X = _gray_uint8(n=40)
    Y = random_polarity(X, random_state=0)
    same = (Y == X).all(axis=(1, 2))
    flipped = (Y == 255 - X).all(axis=(1, 2))
    assert (same | flipped).all()  # each image kept or inverted as a whole
    assert 10 <= flipped.sum() <= 30  # about half


def test_random_polarity_fraction_follows_p():
    X = np.zeros((400, 2, 2), dtype=np.uint8)
    Y = random_polarity(X, random_state=0, p=0.2)
    frac = (Y[:, 0, 0] == 255).mean()
    assert 0.14 < frac < 0.26


def test_random_polarity_seeded_and_input_untouched():
    X = _gray_uint8(n=30)
    before = X.copy()
    a = random_polarity(X, random_state=1)
    b = random_polarity(X, random_state=1)
    c = random_polarity(X, random_state=2)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    Xf = X / 255.0
    before_f = Xf.copy()
    random_polarity(Xf, random_state=1, p=1.0)
    np.testing.assert_array_equal(Xf, before_f)


def test_random_polarity_rejects_out_of_range():
    with pytest.raises(ValueError):
        random_polarity(np.full((2, 2, 2), 2.0), random_state=0)
    with pytest.raises(ValueError):
        random_polarity(np.full((2, 2, 2), 256, dtype=np.int32), random_state=0)


# ---------------------------------------------------------------------------
# make_shapes and make_glyphs
# ---------------------------------------------------------------------------


MAKERS = [(make_shapes, 28, SHAPE_NAMES), (make_glyphs, 32, GLYPH_LETTERS)]


@pytest.mark.parametrize("maker,default_size,names", MAKERS)
def test_maker_shapes_and_dtypes(maker, default_size, names):
    assert len(names) == 10 and len(set(names)) == 10
    X, y = maker(23, random_state=0)
    assert X.shape == (23, default_size, default_size) and X.dtype == np.uint8
    assert y.shape == (23,) and y.dtype == np.int64
    X, y = maker(7, image_size=20, random_state=0)
    assert X.shape == (7, 20, 20)


@pytest.mark.parametrize("maker", [make_shapes, make_glyphs])
def test_maker_labels_balanced_and_shuffled(maker):
    _, y = maker(43, random_state=0)
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == 43
    assert not np.array_equal(y, np.arange(43) % 10)  # shuffled


@pytest.mark.parametrize("maker", [make_shapes, make_glyphs])
def test_maker_seeded(maker):
    X1, y1 = maker(20, random_state=0)
    X2, y2 = maker(20, random_state=0)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, y3 = maker(20, random_state=1)
    assert not np.array_equal(X1, X3)
    assert not np.array_equal(y1, y3)


@pytest.mark.parametrize("maker", [make_shapes, make_glyphs])
def test_maker_images_not_blank_on_black(maker):
    X, _ = maker(30, random_state=0)
    assert (X.max(axis=(1, 2)) >= 200).all()  # a bright shape in every image
    assert (X.min(axis=(1, 2)) == 0).all()  # on black
    # White on black: the corners are background.
    corners = X[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.median(corners) == 0
    # Anti-aliased: intermediate grey levels exist.
    assert ((X > 0) & (X < 255)).any()


@pytest.mark.parametrize("maker", [make_shapes, make_glyphs])
def test_maker_same_class_images_vary(maker):
    X, y = maker(30, random_state=0)
    for k in range(10):
        imgs = X[y == k]
        assert len(imgs) == 3
        assert not np.array_equal(imgs[0], imgs[1])


@pytest.mark.parametrize("maker", [make_shapes, make_glyphs])
def test_maker_classes_are_distinguishable(maker):
    # A nearest-class-mean classifier fit on one seed is far above chance
    # (0.1) on another: the labels follow the drawn content.
    X, y = maker(300, random_state=0)
    Xt, yt = maker(100, random_state=1)
    X = X.reshape(len(X), -1) / 255.0
    Xt = Xt.reshape(len(Xt), -1) / 255.0
    means = np.stack([X[y == k].mean(axis=0) for k in range(10)])
    # Class means differ pairwise.
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert (gaps[~np.eye(10, dtype=bool)] > 1.0).all()
    pred = ((Xt[:, None] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (pred == yt).mean() > 0.25


def test_make_shapes_disk_has_more_ink_than_ring():
    # Ring area 1 - 0.7**2 = 0.51 of its disk: at radii in 35-48 % of the
    # side, every ring has less ink than every disk.
    X, y = make_shapes(60, random_state=0)
    ink = X.reshape(len(X), -1).sum(axis=1)
    disk = SHAPE_NAMES.index("disk")
    ring = SHAPE_NAMES.index("ring")
    assert ink[y == disk].min() > ink[y == ring].max()


def test_make_shapes_rotation_symmetric_disk_centred():
    # Disks are centred within 8 % of the side (plus rotation about the
    # centre): their centre of mass is near the image centre.
    X, y = make_shapes(60, random_state=0)
    disks = X[y == SHAPE_NAMES.index("disk")].astype(float)
    coords = np.arange(28)
    for img in disks:
        cy = (img.sum(axis=1) * coords).sum() / img.sum()
        cx = (img.sum(axis=0) * coords).sum() / img.sum()
        assert abs(cy - 13.5) < 0.12 * 28 and abs(cx - 13.5) < 0.12 * 28


# ---------------------------------------------------------------------------
# make_textures
# ---------------------------------------------------------------------------


def test_make_textures_shape_dtype_balance_and_seed():
    assert len(TEXTURE_NAMES) == 10 and len(set(TEXTURE_NAMES)) == 10
    X, y = make_textures(43, random_state=0)
    assert X.shape == (43, 32, 32, 3) and X.dtype == np.uint8
    assert y.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert counts.max() - counts.min() <= 1
    X2, y2 = make_textures(43, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(X, make_textures(43, random_state=1)[0])
    assert make_textures(5, image_size=20, random_state=0)[0].shape == (5, 20, 20, 3)


def test_make_textures_fill_the_image_in_colour():
    X, _ = make_textures(50, random_state=0)
    X = X.astype(float) / 255
    # Colour: the channels differ (not gray images).
    assert np.abs(X[..., 0] - X[..., 1]).mean() > 0.05
    # No flat background: the pattern reaches the border of every image,
    # so the frame varies as much as the inside.
    frame = np.concatenate([X[:, 0], X[:, -1], X[:, :, 0], X[:, :, -1]], axis=1)
    assert (frame.std(axis=(1, 2)) > 0.05).all()


def test_make_textures_colour_carries_no_class():
    # Mean colours are drawn independently of the class: a nearest-mean
    # classifier on mean colour is near chance, unlike one on the pattern's
    # spectrum, which ignores colour, phase and position.
    X, y = make_textures(600, random_state=0)
    Xt, yt = make_textures(300, random_state=1)

    def accuracy(f):
        a, b = f(X), f(Xt)
        means = np.stack([a[y == k].mean(axis=0) for k in range(10)])
        pred = ((b[:, None] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
        return (pred == yt).mean()

    def colour(Z):
        return Z.reshape(len(Z), -1, 3).mean(axis=1) / 255.0

    def spectrum(Z):
        gray = Z.astype(float).mean(axis=-1)
        gray = (gray - gray.mean(axis=(1, 2), keepdims=True)) / (
            gray.std(axis=(1, 2), keepdims=True) + 1e-6
        )
        power = np.abs(np.fft.fft2(gray)) ** 2
        return np.log1p(power.reshape(len(Z), -1))

    assert accuracy(colour) < 0.2
    assert accuracy(spectrum) > 0.3


# ---------------------------------------------------------------------------
# random_lighting


@pytest.mark.parametrize("colour", [False, True])
def test_random_lighting_shape_dtype_and_seed(colour):
    X = _gray_uint8(n=4, size=8)
    if colour:
        X = random_colors(X, random_state=0)
    Y = random_lighting(X, random_state=1)
    assert Y.shape == X.shape and Y.dtype == X.dtype
    np.testing.assert_array_equal(Y, random_lighting(X, random_state=1))
    assert not np.array_equal(Y, random_lighting(X, random_state=2))
    Yf = random_lighting(X / 255.0, random_state=1)
    assert Yf.dtype == np.float64 and 0 <= Yf.min() and Yf.max() <= 1


def test_random_lighting_is_a_gradient_plus_noise():
    flat = np.full((50, 16, 16), 0.5)
    shaded = random_lighting(flat, random_state=0, noise=0.0)
    # Without noise: a plane per image, at most strength away (relative)
    # from the middle value.
    assert np.all(np.abs(shaded - 0.5) <= 0.5 * 0.3 + 1e-9)
    spread = shaded.max(axis=(1, 2)) - shaded.min(axis=(1, 2))
    assert spread.max() > 0.1
    assert np.all(np.abs(np.diff(shaded, 2, axis=1)) < 1e-9)
    assert np.all(np.abs(np.diff(shaded, 2, axis=2)) < 1e-9)
    noisy = random_lighting(flat, random_state=0, strength=0.0, noise=0.04)
    assert abs((noisy - 0.5).std() - 0.04) < 0.005


def test_random_lighting_makes_flat_frames_uneven_and_keeps_input():
    import torch

    from skspice.contrast import flat_border_fraction

    X, _ = make_shapes(40, 28, random_state=0)
    coloured = random_colors(X, random_state=0)
    before = coloured.copy()
    shaded = random_lighting(coloured, random_state=0)
    np.testing.assert_array_equal(coloured, before)

    def as_tensor(a):
        return torch.tensor(a).permute(0, 3, 1, 2).float() / 255

    flat = flat_border_fraction(as_tensor(coloured)).median()
    uneven = flat_border_fraction(as_tensor(shaded)).median()
    assert flat > 0.95 and uneven < flat - 0.2


def test_random_lighting_rejects_non_images():
    with pytest.raises(ValueError, match="expected images"):
        random_lighting(np.zeros((4, 4)))

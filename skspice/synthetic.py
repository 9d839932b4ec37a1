"""Synthetic image sets and nuisance variants, to test what clusters follow.

A clustering method that works on one benchmark may be following a quirk of
it. These helpers make image sets where the answer is known and the nuisance
is controlled:

* :func:`random_colors` -- every image drawn with its own random foreground
  and background colour (colour carries no class information);
* :func:`random_polarity` -- a random half of the images inverted;
* :func:`make_shapes` -- ten kinds of geometric shapes at random sizes,
  positions and rotations;
* :func:`make_glyphs` -- ten letters rendered at random sizes, positions,
  rotations and stroke weights;
* :func:`make_textures` -- ten periodic colour textures filling the whole
  image (no flat background, like a photograph's detail), at random scales,
  phases, orientations and colours, with lighting and noise.

All functions are seeded and return new arrays; inputs are never modified.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.utils import check_random_state

__all__ = [
    "GLYPH_LETTERS",
    "SHAPE_NAMES",
    "TEXTURE_NAMES",
    "make_glyphs",
    "make_shapes",
    "make_textures",
    "random_colors",
    "random_lighting",
    "random_polarity",
]

#: Classes of :func:`make_shapes`, in label order.
SHAPE_NAMES = (
    "disk",
    "ring",
    "square",
    "frame",
    "triangle",
    "star",
    "cross",
    "crescent",
    "arrow",
    "bars",
)

#: Classes of :func:`make_textures`, in label order. No two are mirror
#: images of each other, so horizontal flips keep every class.
TEXTURE_NAMES = (
    "stripes",
    "checks",
    "dots",
    "rings",
    "spokes",
    "grid",
    "waves",
    "bricks",
    "blobs",
    "hatching",
)

#: Classes of :func:`make_glyphs`, in label order.
GLYPH_LETTERS = "AEFHKMRSTW"

_SUPERSAMPLE = 4  # draw large, then downsample: anti-aliased edges
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC


def _unit_intensity(X):
    """Images as float64 in [0, 1] and a function back to ``X``'s dtype."""
    X = np.asarray(X)
    if np.issubdtype(X.dtype, np.integer):
        if X.min() < 0 or X.max() > 255:
            raise ValueError("integer images must be in [0, 255].")
        return X.astype(np.float64) / 255.0, lambda v: np.round(v * 255).astype(
            np.uint8
        )
    if X.size and (X.min() < 0 or X.max() > 1):
        raise ValueError("float images must be in [0, 1].")
    return X.astype(np.float64), lambda v: v.astype(X.dtype)


def random_colors(X, random_state=None):
    """Draw every grayscale image with random foreground and background colours.

    Pixel intensity ``v`` in [0, 1] (0 = background) becomes
    ``b + v * (f - b)`` with ``f`` and ``b`` drawn uniformly from the RGB cube,
    independently per image, so the colours say nothing about the class.

    Parameters
    ----------
    X : ndarray of shape (n, H, W)
        Grayscale images, uint8 in [0, 255] or floats in [0, 1].
    random_state : int, RandomState instance or None, default=None
        Seeds the colours.

    Returns
    -------
    ndarray of shape (n, H, W, 3)
        Colour images with ``X``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from skspice.synthetic import random_colors
    >>> random_colors(np.zeros((2, 4, 4), np.uint8), random_state=0).shape
    (2, 4, 4, 3)
    """
    if np.ndim(X) != 3:
        raise ValueError(f"expected grayscale images (n, H, W), got {np.shape(X)}.")
    v, back = _unit_intensity(X)
    rng = check_random_state(random_state)
    fg = rng.uniform(size=(v.shape[0], 1, 1, 3))
    bg = rng.uniform(size=(v.shape[0], 1, 1, 3))
    return back(bg + v[..., None] * (fg - bg))


def random_polarity(X, random_state=None, p=0.5):
    """Invert a random fraction ``p`` of the images (``1 - v``).

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C)
        Images, uint8 in [0, 255] or floats in [0, 1].
    random_state : int, RandomState instance or None, default=None
        Seeds which images are inverted.
    p : float, default=0.5
        Probability that an image is inverted.

    Returns
    -------
    ndarray
        Images with ``X``'s shape and dtype.
    """
    v, back = _unit_intensity(X)
    rng = check_random_state(random_state)
    flip = rng.uniform(size=v.shape[0]) < p
    v = v.copy()
    v[flip] = 1.0 - v[flip]
    return back(v)


def random_lighting(X, random_state=None, strength=0.3, noise=0.04):
    """Light every image unevenly and add sensor noise, as in a shaded scan.

    Each image is multiplied by its own linear gradient ``1 + strength * g``,
    where ``g`` is zero in the middle and changes linearly across the image
    with a random direction and steepness, at most by 1 at a corner (so at
    most ``strength`` brighter or darker than in the middle), then Gaussian
    noise of standard deviation ``noise`` is added to every pixel and
    channel, and the result clipped to [0, 1]. A flat background
    is no longer flat, which is what photographed or scanned documents look
    like.

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C)
        Images, uint8 in [0, 255] or floats in [0, 1].
    random_state : int, RandomState instance or None, default=None
        Seeds the gradients and the noise.
    strength : float, default=0.3
        Brightness change across the image.
    noise : float, default=0.04
        Standard deviation of the pixel noise (intensities in [0, 1]).

    Returns
    -------
    ndarray
        Images with ``X``'s shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from skspice.synthetic import random_lighting
    >>> flat = np.full((2, 8, 8), 128, np.uint8)
    >>> lit = random_lighting(flat, random_state=0)
    >>> lit.shape, lit.dtype, bool(lit.std() > 0)
    ((2, 8, 8), dtype('uint8'), True)
    """
    v, back = _unit_intensity(X)
    if v.ndim not in (3, 4):
        raise ValueError(f"expected images (n, H, W[, C]), got {np.shape(X)}.")
    rng = check_random_state(random_state)
    n, h, w = v.shape[:3]
    yy, xx = np.meshgrid(
        np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij"
    )
    slope = rng.uniform(-1, 1, size=(n, 2, 1, 1))
    light = 1 + strength * (slope[:, 0] * xx / w + slope[:, 1] * yy / h)
    if v.ndim == 4:
        light = light[..., None]
    out = v * light + rng.normal(0, noise, size=v.shape)
    return back(np.clip(out, 0, 1))


def _polygon(n, radius, phase=0.0, inner=None):
    """Vertices of a regular polygon (or a star with ``inner`` radius)."""
    points = []
    steps = 2 * n if inner is not None else n
    for i in range(steps):
        r = inner if (inner is not None and i % 2) else radius
        a = phase + 2 * math.pi * i / steps
        points.append((r * math.cos(a), r * math.sin(a)))
    return points


def _draw_shape(draw, kind, c, r):
    """Draw shape ``kind`` centred at ``c`` with radius ``r`` in white."""
    cx, cy = c

    def shift(points):
        return [(cx + x, cy + y) for x, y in points]

    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "disk":
        draw.ellipse(box, fill=255)
    elif kind == "ring":
        draw.ellipse(box, outline=255, width=max(1, int(r * 0.3)))
    elif kind == "square":
        draw.polygon(shift(_polygon(4, r, math.pi / 4)), fill=255)
    elif kind == "frame":
        w = max(1, int(r * 0.3))
        draw.polygon(shift(_polygon(4, r, math.pi / 4)), outline=255, width=w)
    elif kind == "triangle":
        draw.polygon(shift(_polygon(3, r, -math.pi / 2)), fill=255)
    elif kind == "star":
        draw.polygon(shift(_polygon(5, r, -math.pi / 2, inner=0.42 * r)), fill=255)
    elif kind == "cross":
        t = 0.3 * r
        draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=255)
        draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=255)
    elif kind == "crescent":
        draw.ellipse(box, fill=255)
        o = 0.45 * r
        draw.ellipse((cx - r + o, cy - r, cx + r + o, cy + r), fill=0)
    elif kind == "arrow":
        t = 0.22 * r
        draw.rectangle((cx - r, cy - t, cx + 0.1 * r, cy + t), fill=255)
        draw.polygon(
            [(cx + 0.1 * r, cy - 0.7 * r), (cx + r, cy), (cx + 0.1 * r, cy + 0.7 * r)],
            fill=255,
        )
    elif kind == "bars":
        t = 0.2 * r
        for dy in (-0.5 * r, 0.5 * r):
            draw.rectangle((cx - r, cy + dy - t, cx + r, cy + dy + t), fill=255)
    else:  # pragma: no cover - SHAPE_NAMES is the only caller's source
        raise ValueError(kind)


def _balanced_labels(n_samples, n_classes, rng):
    """Labels ``0..n_classes-1`` in equal shares (up to one), shuffled."""
    y = np.arange(n_samples, dtype=np.int64) % n_classes
    rng.shuffle(y)
    return y


def _finish(canvas, size, angle):
    """Rotate a supersampled canvas and downsample it to ``size`` pixels."""
    canvas = canvas.rotate(angle, resample=_BICUBIC)
    return np.asarray(canvas.resize((size, size), _LANCZOS), dtype=np.uint8)


def make_shapes(n_samples=10000, image_size=28, random_state=None):
    """Ten kinds of white geometric shapes on black (see :data:`SHAPE_NAMES`).

    Each image holds one shape at a random scale (35-48 % of the side as
    radius), position and rotation, anti-aliased; the largest shapes are
    clipped by the image border.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of images (classes are balanced up to one image).
    image_size : int, default=28
        Side of the square images.
    random_state : int, RandomState instance or None, default=None
        Seeds the shapes.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size), dtype uint8
    y : ndarray of shape (n_samples,), dtype int64

    Examples
    --------
    >>> from skspice.synthetic import make_shapes
    >>> X, y = make_shapes(20, random_state=0)
    >>> X.shape, X.dtype, sorted(set(y.tolist()))[:3]
    ((20, 28, 28), dtype('uint8'), [0, 1, 2])
    """
    rng = check_random_state(random_state)
    y = _balanced_labels(n_samples, len(SHAPE_NAMES), rng)
    big = image_size * _SUPERSAMPLE
    X = np.empty((n_samples, image_size, image_size), dtype=np.uint8)
    for i, label in enumerate(y):
        r = rng.uniform(0.35, 0.48) * big
        c = big / 2 + rng.uniform(-0.08, 0.08, size=2) * big
        canvas = Image.new("L", (big, big), 0)
        _draw_shape(ImageDraw.Draw(canvas), SHAPE_NAMES[label], c, r)
        X[i] = _finish(canvas, image_size, rng.uniform(0, 360))
    return X, y


def make_glyphs(n_samples=10000, image_size=32, random_state=None):
    """Ten letters (see :data:`GLYPH_LETTERS`), white on black.

    Letters are rendered with Pillow's bundled font at random sizes, stroke
    weights, positions and rotations (up to 25 degrees), anti-aliased.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of images (classes are balanced up to one image).
    image_size : int, default=32
        Side of the square images.
    random_state : int, RandomState instance or None, default=None
        Seeds the glyphs.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size), dtype uint8
    y : ndarray of shape (n_samples,), dtype int64
    """
    rng = check_random_state(random_state)
    y = _balanced_labels(n_samples, len(GLYPH_LETTERS), rng)
    big = image_size * _SUPERSAMPLE
    fonts = {}
    X = np.empty((n_samples, image_size, image_size), dtype=np.uint8)
    for i, label in enumerate(y):
        size = int(rng.uniform(0.55, 0.8) * big)
        if size not in fonts:
            fonts[size] = ImageFont.load_default(size=size)
        canvas = Image.new("L", (big, big), 0)
        c = big / 2 + rng.uniform(-0.08, 0.08, size=2) * big
        ImageDraw.Draw(canvas).text(
            tuple(c),
            GLYPH_LETTERS[label],
            fill=255,
            font=fonts[size],
            anchor="mm",
            stroke_width=int(rng.randint(0, 3)) * _SUPERSAMPLE,
            stroke_fill=255,
        )
        X[i] = _finish(canvas, image_size, rng.uniform(-25, 25))
    return X, y


def _texture(kind, u, v, period, rng):
    """One pattern in [0, 1] on rotated, centred coordinates ``u, v``
    (pixels), with ``period`` pixels per repeat."""
    w = 2 * math.pi / period
    if kind == "stripes":
        return 0.5 + 0.5 * np.cos(w * u)
    if kind == "checks":
        return (np.cos(w * u) * np.cos(w * v) > 0).astype(float)
    if kind == "dots":
        du = (u / period) % 1 - 0.5
        dv = (v / period) % 1 - 0.5
        return (np.hypot(du, dv) < 0.28).astype(float)
    if kind == "rings":
        return 0.5 + 0.5 * np.cos(w * np.hypot(u, v))
    if kind == "spokes":
        n_spokes = int(rng.randint(5, 9))
        return 0.5 + 0.5 * np.cos(n_spokes * np.arctan2(v, u))
    if kind == "grid":
        du = np.abs((u / period) % 1 - 0.5)
        dv = np.abs((v / period) % 1 - 0.5)
        return (np.minimum(du, dv) < 0.12).astype(float)
    if kind == "waves":
        return 0.5 + 0.5 * np.cos(w * (u + 0.35 * period * np.sin(w * v / 2)))
    if kind == "bricks":
        row = np.floor(v / period)
        mortar_h = np.abs((v / period) % 1 - 0.5) > 0.4
        mortar_v = np.abs(((u / (2 * period)) + 0.5 * (row % 2)) % 1 - 0.5) > 0.45
        return (mortar_h | mortar_v).astype(float)
    if kind == "blobs":
        field = np.zeros_like(u)
        for _ in range(6):
            k = rng.normal(size=2) * w / 2.5
            field += np.cos(k[0] * u + k[1] * v + rng.uniform(0, 2 * math.pi))
        return (field > 0).astype(float)
    # hatching: two stripe sets at 60 degrees, thin dark lines
    a = np.abs((u / period) % 1 - 0.5)
    b = np.abs(((0.5 * u + 0.866 * v) / period) % 1 - 0.5)
    return ((a < 0.1) | (b < 0.1)).astype(float)


def make_textures(n_samples=10000, image_size=32, random_state=None):
    """Ten colour textures that fill the image (see :data:`TEXTURE_NAMES`).

    Each image draws its class's pattern with a random period (a sixth to a
    third of the side), phase and orientation, in two random colours, under
    a random linear lighting gradient, with Gaussian pixel noise. Colour,
    scale and lighting carry no class information; only the pattern does.
    No image has a flat border, so it looks to a clustering method like a
    detail of a colour photograph rather than an object on a background.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of images (classes are balanced up to one image).
    image_size : int, default=32
        Side of the square images.
    random_state : int, RandomState instance or None, default=None
        Seeds the textures.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size, 3), dtype uint8
    y : ndarray of shape (n_samples,), dtype int64

    Examples
    --------
    >>> from skspice.synthetic import make_textures
    >>> X, y = make_textures(20, random_state=0)
    >>> X.shape, X.dtype
    ((20, 32, 32, 3), dtype('uint8'))
    """
    rng = check_random_state(random_state)
    y = _balanced_labels(n_samples, len(TEXTURE_NAMES), rng)
    grid = np.arange(image_size, dtype=float) - (image_size - 1) / 2
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    X = np.empty((n_samples, image_size, image_size, 3), dtype=np.uint8)
    for i, label in enumerate(y):
        angle = rng.uniform(0, math.pi)
        shift = rng.uniform(-image_size / 4, image_size / 4, size=2)
        u = math.cos(angle) * (xx - shift[0]) + math.sin(angle) * (yy - shift[1])
        v = -math.sin(angle) * (xx - shift[0]) + math.cos(angle) * (yy - shift[1])
        period = rng.uniform(1 / 6, 1 / 3) * image_size
        pattern = _texture(TEXTURE_NAMES[label], u, v, period, rng)
        fg, bg = rng.uniform(0, 1, size=(2, 3))
        while np.abs(fg - bg).sum() < 0.6:  # keep the pattern visible
            fg, bg = rng.uniform(0, 1, size=(2, 3))
        img = bg + pattern[..., None] * (fg - bg)
        slope = rng.uniform(-1, 1, size=2)
        light = 1 + 0.25 * (slope[0] * xx + slope[1] * yy) / image_size
        img = img * light[..., None] + rng.normal(0, 0.04, size=img.shape)
        X[i] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return X, y

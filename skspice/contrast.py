"""Per-image contrast normalisation: what an image shows, not its colours.

Instance discrimination (stage 1) learns whatever tells two images apart most
cheaply. When every image has its own foreground and background colour, or
its own brightness and contrast polarity, that is the colour, not the shape:
measured on a random-colour variant of a 28 px set, SPICE stayed at chance
whatever the colour augmentations (see ``docs/benchmarks.md``).

For images drawn on a flat background (glyphs, scans, renders, product shots)
there is an exact remedy: measure every pixel's colour distance from the
image's own background colour, and scale each image to its own strongest
contrast. The result is one channel in [0, 1] that is identical for a shape
drawn dark-on-light or light-on-dark, in red on blue or in white on black, and
unchanged (up to its brightness scale) for white-on-black images such as
digits or Fashion-MNIST.

Photographs have no flat background; for them this map would throw away most
of the image, so :func:`has_flat_background` lets the estimator decide per
data set. Colour images without a flat frame (textures, shaded scans, detail
crops) get the same map when their colours say nothing about what they
show: :func:`color_structure_ratio` compares the colours of images that look
alike in their contrast maps with the colours of any two images, which is
1 for colours drawn at random and well below 1 for photographs, whose
colours follow their content (sky, grass, skin). All functions are pure and
batched on ``(B, C, H, W)`` tensors.
"""

import itertools

import torch

__all__ = [
    "background_color",
    "background_contrast",
    "border_pixels",
    "color_structure_ratio",
    "colors_are_nuisance",
    "contrast_map_reason",
    "flat_border_fraction",
    "has_flat_background",
]

#: Colour distance (max over channels, images in [0, 1]) within which a border
#: pixel counts as background.
FLAT_TOLERANCE = 0.1
#: Median fraction of background-coloured border pixels from which a data set
#: counts as "drawn on a flat background" (digits: 1.0, Fashion-MNIST: 0.89).
FLAT_MIN_FRACTION = 0.7
#: Contrast below which an image counts as blank (left black, not amplified).
MIN_CONTRAST = 1e-3
#: :func:`color_structure_ratio` from which colours count as a nuisance.
#: Measured by ``benchmarks/color_nuisance.py`` (2,000 images per set):
#: 0.99-1.00 for every random-colour set (digits, Fashion-MNIST shaded or
#: not, shapes, letters, textures), 0.58 for Fashion-MNIST coloured by class,
#: 0.55-0.78 for crops of scikit-learn's two sample photographs.
COLOR_NUISANCE_MIN_RATIO = 0.9


def border_pixels(x):
    """Pixels of the one-pixel frame of every image.

    Parameters
    ----------
    x : torch.Tensor of shape (B, C, H, W)
        Images.

    Returns
    -------
    torch.Tensor of shape (B, C, 2 * (H + W) - 4)
        Top and bottom rows, then left and right columns without the corners.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}.")
    if x.shape[2] < 2 or x.shape[3] < 2:
        return x.flatten(2)
    return torch.cat(
        [x[:, :, 0, :], x[:, :, -1, :], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2
    )


def background_color(x):
    """Each image's background colour: the per-channel median of its frame.

    Parameters
    ----------
    x : torch.Tensor of shape (B, C, H, W)
        Images.

    Returns
    -------
    torch.Tensor of shape (B, C)
    """
    return border_pixels(x).median(dim=2).values


def flat_border_fraction(x, tolerance=FLAT_TOLERANCE):
    """Fraction of each image's frame that has its background colour.

    Parameters
    ----------
    x : torch.Tensor of shape (B, C, H, W)
        Images in [0, 1].
    tolerance : float, default=FLAT_TOLERANCE
        Largest per-channel difference from the background colour.

    Returns
    -------
    torch.Tensor of shape (B,)
        1 for a frame of one colour, small for a textured photograph.
    """
    frame = border_pixels(x)
    bg = frame.median(dim=2, keepdim=True).values
    return ((frame - bg).abs().amax(dim=1) <= tolerance).float().mean(dim=1)


def has_flat_background(
    x, tolerance=FLAT_TOLERANCE, min_fraction=FLAT_MIN_FRACTION, max_images=2000
):
    """Whether a data set's images are drawn on flat backgrounds.

    True when, for the median image, at least ``min_fraction`` of the frame
    has the background colour (digits, Fashion-MNIST, scans, renders); false
    for photographs.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W), or an iterable of such batches
        Images in [0, 1]. Batches (e.g. from
        :meth:`skspice.samples.Samples.stream`) are inspected one at a time,
        all their images (``max_images`` does not apply), so that large
        images never need to be in memory together.
    tolerance : float, default=FLAT_TOLERANCE
        See :func:`flat_border_fraction`.
    min_fraction : float, default=FLAT_MIN_FRACTION
        Threshold on the median image's flat fraction.
    max_images : int, default=2000
        Images of a tensor ``x`` inspected (evenly spaced), which bounds the
        cost.

    Returns
    -------
    bool
    """
    if isinstance(x, torch.Tensor):
        step = max(1, -(-x.shape[0] // max_images))  # ceil: at most max_images
        fraction = flat_border_fraction(x[::step].float(), tolerance)
    else:
        fraction = torch.cat([flat_border_fraction(b.float(), tolerance) for b in x])
    return bool(fraction.median() >= min_fraction)


def background_contrast(x):
    """Colour distance of every pixel from its image's background, per image.

    ``d = ||x - b|| / sqrt(C)`` with ``b`` the background colour
    (:func:`background_color`), then divided by the image's largest ``d``. A
    shape drawn with foreground colour ``f`` on background ``b`` becomes its
    coverage mask whatever ``f`` and ``b`` are, so colours, brightness and
    contrast polarity no longer tell images apart; white-on-black images keep
    their look. A blank image stays black.

    Parameters
    ----------
    x : torch.Tensor of shape (B, C, H, W)
        Images in [0, 1].

    Returns
    -------
    torch.Tensor of shape (B, 1, H, W)
        Contrast maps in [0, 1], float32.

    Examples
    --------
    A red square on blue and a black square on white have the same map:

    >>> import torch
    >>> from skspice.contrast import background_contrast
    >>> red_on_blue = torch.zeros(1, 3, 8, 8)
    >>> red_on_blue[:, 2] = 1.0
    >>> red_on_blue[:, :, 2:6, 2:6] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    >>> black_on_white = torch.ones(1, 1, 8, 8)
    >>> black_on_white[:, :, 2:6, 2:6] = 0.0
    >>> maps = background_contrast(red_on_blue)
    >>> maps.shape
    torch.Size([1, 1, 8, 8])
    >>> torch.equal(maps, background_contrast(black_on_white))
    True
    >>> maps[0, 0, 0, 0].item(), maps[0, 0, 3, 3].item()
    (0.0, 1.0)
    """
    x = x.float()
    bg = background_color(x)[:, :, None, None]
    d = (x - bg).pow(2).mean(dim=1, keepdim=True).sqrt()
    peak = d.amax(dim=(2, 3), keepdim=True)
    return torch.where(peak > MIN_CONTRAST, d / peak.clamp(min=MIN_CONTRAST), d)


def _structure_and_colors(x, grid):
    """Pooled, centred, unit-length contrast maps and (mean, background)
    colours of a batch of images."""
    x = x.float()
    maps = torch.nn.functional.adaptive_avg_pool2d(background_contrast(x), grid)
    maps = maps.flatten(1)
    maps = torch.nn.functional.normalize(maps - maps.mean(1, keepdim=True), dim=1)
    return maps, torch.cat([x.mean(dim=(2, 3)), background_color(x)], dim=1)


def color_structure_ratio(x, n_neighbors=10, grid=8, max_images=2000):
    """How much more alike the colours of look-alike images are than any two.

    Every image is described twice: by its structure, its contrast map
    (:func:`background_contrast`, which no colour change alters) pooled to
    ``grid x grid``, and by its colours, its mean and background colour. The
    ratio is the mean colour distance between each image and its
    ``n_neighbors`` nearest neighbours in structure, divided by the mean
    colour distance between any two images.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W), or an iterable of such batches
        Images in [0, 1]; batches are all used (see
        :func:`has_flat_background`).
    n_neighbors : int, default=10
        Structure neighbours per image.
    grid : int, default=8
        Side of the pooled contrast maps.
    max_images : int, default=2000
        Images of a tensor ``x`` used (evenly spaced).

    Returns
    -------
    float
        About 1 when colours are independent of what the images show (drawn
        at random), below 1 when they follow it; 0 for fewer than three
        images, where nothing can be told.

    Examples
    --------
    Squares and bars drawn in random colours, then with a colour per shape
    (plus a little variation):

    >>> import torch
    >>> from skspice.contrast import color_structure_ratio
    >>> g = torch.Generator().manual_seed(0)
    >>> shapes = torch.zeros(2, 1, 16, 16)
    >>> shapes[0, :, 4:12, 4:12] = 1  # a square
    >>> shapes[1, :, 2:14, 7:9] = 1  # a bar
    >>> masks = shapes.repeat(100, 1, 1, 1)
    >>> fg, bg = torch.rand(2, 200, 3, 1, 1, generator=g)
    >>> color_structure_ratio(bg + masks * (fg - bg)) > 0.9
    True
    >>> fg = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]).repeat(100, 1)[..., None, None]
    >>> fg = (fg + 0.1 * torch.rand(200, 3, 1, 1, generator=g)).clamp(0, 1)
    >>> color_structure_ratio(masks * fg) < 0.5
    True
    """
    if isinstance(x, torch.Tensor):
        step = max(1, -(-x.shape[0] // max_images))
        parts = [_structure_and_colors(x[::step], grid)]
    else:
        parts = [_structure_and_colors(b, grid) for b in x]
    structure = torch.cat([p[0] for p in parts])
    colors = torch.cat([p[1] for p in parts])
    n = structure.shape[0]
    if n < 3:
        return 0.0
    k = min(n_neighbors, n - 1)
    similarity = structure @ structure.T
    similarity.fill_diagonal_(-float("inf"))
    neighbors = similarity.topk(k, dim=1).indices
    near = (colors[:, None] - colors[neighbors]).norm(dim=2).mean()
    any_two = torch.cdist(colors, colors).sum() / (n * (n - 1))
    if any_two <= MIN_CONTRAST:  # one colour scheme for all: nothing to remove
        return 0.0
    return float(near / any_two)


def colors_are_nuisance(x, min_ratio=COLOR_NUISANCE_MIN_RATIO, **kwargs):
    """Whether a colour data set's colours say nothing about its content.

    True when :func:`color_structure_ratio` is at least ``min_ratio``:
    images that look alike are no closer in colour than any two, as for
    shapes or textures drawn in random colours. Photographs, whose colours
    follow what they show, stay below it and keep their colours. One channel
    images have no colours and give False.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W), or an iterable of such batches
        Images in [0, 1].
    min_ratio : float, default=COLOR_NUISANCE_MIN_RATIO
        Threshold on the ratio.
    **kwargs
        Passed to :func:`color_structure_ratio`.

    Returns
    -------
    bool
    """
    if isinstance(x, torch.Tensor):
        if x.shape[1] == 1:
            return False
    else:
        # Peek at the first batch only: the batches stream, never all held.
        batches = iter(x)
        first = next(batches, None)
        if first is None or first.shape[1] == 1:
            return False
        x = itertools.chain([first], batches)
    return color_structure_ratio(x, **kwargs) >= min_ratio


def contrast_map_reason(batches):
    """Why ``contrast_normalization="auto"`` maps a data set, or None.

    The rule of :class:`~skspice.SPICEClustering`: contrast maps for data
    sets drawn on flat backgrounds (:func:`has_flat_background`), else for
    colour images whose colours are unrelated to their content
    (:func:`colors_are_nuisance`); photographs keep their colours.

    Parameters
    ----------
    batches : callable
        Returns a fresh iterable of ``(B, C, H, W)`` batches of images in
        [0, 1] (e.g. ``lambda: samples.spaced_batches(2000)``); called once
        per test, so that the images stream and are never all in memory.

    Returns
    -------
    str or None
        ``"flat frame"``, ``"colours unrelated to content"`` or None.
    """
    if has_flat_background(batches()):
        return "flat frame"
    if colors_are_nuisance(batches()):
        return "colours unrelated to content"
    return None

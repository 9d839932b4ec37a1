"""Batched data augmentation on tensors (CPU or GPU).

Per-image PIL pipelines are the bottleneck of contrastive learning on a
2-core CPU, so every view here transforms a whole ``(B, C, H, W)`` batch at
once: geometric changes are one ``affine_grid``/``grid_sample`` call with a
random matrix per image, photometric changes are broadcast arithmetic with a
random factor per image. Randomness comes only from the ``torch.Generator``
passed in, so a fixed seed gives the same views.

Three views serve the three SPICE stages:

* ``contrastive`` (stage 1, MoCo v2): strong crop/affine + colour changes
  (brightness, contrast, saturation, hue, random grayscale).
* ``weak`` (stages 2 and 3): small shifts (and flips for colour images).
* ``strong`` (stages 2 and 3): RandAugment-style random operations + cutout.

Strengths scale with image size (tiny images cannot survive a 20 % crop).
By default horizontal flips are used for colour images only: for grayscale
sets such as handwriting, flipping changes meaning (``flip=True`` opts in).
"""

import functools
import math

import torch
import torch.nn.functional as F

from .precision import autocast_off

__all__ = ["ImageAugmenter", "TabularAugmenter", "make_augmenter"]


def _uniform(gen, n, lo, hi, device):
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _per_image(values, x):
    return values.view(-1, *([1] * (x.ndim - 1)))


def random_affine(
    x,
    gen,
    *,
    rotate=0.0,
    scale=(1.0, 1.0),
    translate=0.0,
    shear=0.0,
    flip=False,
    crop_area=None,
):
    """Apply one random affine warp per image.

    Parameters
    ----------
    x : torch.Tensor of shape (B, C, H, W)
        Images.
    gen : torch.Generator
        Source of randomness, on ``x``'s device.
    rotate : float
        Maximum rotation in degrees (uniform in ``[-rotate, rotate]``).
    scale : tuple of float
        Zoom range; values above 1 magnify.
    translate : float
        Maximum shift as a fraction of the image side.
    shear : float
        Maximum shear in degrees.
    flip : bool
        Mirror half of the images horizontally.
    crop_area : tuple of float, optional
        ``(min, max)`` area fraction of a random resized crop (aspect ratio in
        [3/4, 4/3]), as in ``RandomResizedCrop``; replaces ``scale`` and
        ``translate``.

    Returns
    -------
    torch.Tensor
        Warped images; pixels from outside the image are zero.
    """
    b, dev = x.shape[0], x.device
    angle = _uniform(gen, b, -rotate, rotate, dev) * (math.pi / 180)
    sh = _uniform(gen, b, -shear, shear, dev) * (math.pi / 180)
    if crop_area is not None:
        area = _uniform(gen, b, crop_area[0], crop_area[1], dev)
        log_r = _uniform(gen, b, math.log(3 / 4), math.log(4 / 3), dev)
        sx = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
        sy = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
        tx = (1 - sx) * _uniform(gen, b, -1, 1, dev)
        ty = (1 - sy) * _uniform(gen, b, -1, 1, dev)
    else:
        # affine_grid maps output to input coordinates: zoom z reads 1/z of it.
        z = 1.0 / _uniform(gen, b, scale[0], scale[1], dev)
        sx = sy = z
        tx = _uniform(gen, b, -2 * translate, 2 * translate, dev)
        ty = _uniform(gen, b, -2 * translate, 2 * translate, dev)
    if flip:
        sign = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0)
        sx = sx * sign
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(sh)
    theta = torch.stack(
        [
            torch.stack([sx * cos, sy * (-sin + tan * cos), tx], 1),
            torch.stack([sx * sin, sy * (cos + tan * sin), ty], 1),
        ],
        1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


def _gray(x):
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * w.view(1, 3, 1, 1)).sum(1, keepdim=True)


def _blend(a, b, factor):
    """``b + factor * (a - b)``, clipped, with one factor per image."""
    return (b + _per_image(factor, a) * (a - b)).clamp(0, 1)


def adjust_brightness(x, factor):
    """Scale intensities by ``factor`` (one per image)."""
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x, factor):
    """Blend with each image's mean gray level."""
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean.expand_as(x), factor)


def adjust_saturation(x, factor):
    """Blend with the grayscale image (no-op for one channel)."""
    return x if x.shape[1] == 1 else _blend(x, _gray(x).expand_as(x), factor)


# RGB <-> YIQ: hue is the angle in the (I, Q) plane, luminance is Y.
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.596, -0.274, -0.322),
    (0.211, -0.523, 0.312),
)
# Inverted once here, not per batch in the augmentation loop.
_YIQ_TO_RGB = torch.linalg.inv(torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)).tolist()


def adjust_hue(x, shift):
    """Rotate each image's hues by ``shift`` turns (one per image).

    A rotation of the chroma plane in YIQ space: luminance is kept (up to
    clipping to [0, 1] for saturated colours) and gray pixels (R = G = B) are
    left unchanged. One channel images are returned as they are.

    Parameters
    ----------
    x : torch.Tensor of shape (B, C, H, W)
        Images in [0, 1].
    shift : torch.Tensor of shape (B,)
        Hue shifts in turns (0.5 swaps opposite hues).

    Returns
    -------
    torch.Tensor
        Images in [0, 1].
    """
    if x.shape[1] == 1:
        return x
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float32, device=x.device)
    to_rgb = torch.tensor(_YIQ_TO_RGB, dtype=torch.float32, device=x.device)
    # Negative angle in (I, Q): positive shifts go red -> yellow -> green, as
    # in HSV and torchvision's adjust_hue.
    angle = -2 * math.pi * shift.to(device=x.device, dtype=torch.float32)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack(
        [
            torch.stack([one, zero, zero], 1),
            torch.stack([zero, cos, -sin], 1),
            torch.stack([zero, sin, cos], 1),
        ],
        1,
    )  # (B, 3, 3)
    mix = (to_rgb @ rot @ to_yiq).to(x.dtype)
    return torch.einsum("bij,bjhw->bihw", mix, x).clamp(0, 1)


def adjust_sharpness(x, factor):
    """Blend with a 3x3 smoothed copy (``factor`` > 1 sharpens)."""
    c = x.shape[1]
    k = (
        torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device)
        / 13
    )
    smooth = F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c
    )
    return _blend(x, smooth, factor)


def autocontrast(x):
    """Stretch each image channel to the full [0, 1] range."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    flat = (hi - lo) < 1e-3  # a constant channel stays as it is
    out = ((x - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)
    return torch.where(flat, x, out)


def solarize(x, threshold):
    """Invert pixels above ``threshold`` (one per image)."""
    return torch.where(x >= _per_image(threshold, x), 1 - x, x)


def posterize(x, bits):
    """Keep ``bits`` (one per image, 1-8) bits of each 8-bit intensity."""
    levels = _per_image(2.0**bits, x)
    return torch.floor(x * (levels - 1e-3)) / (levels - 1).clamp(min=1)


def gaussian_blur(x, sigma):
    """Blur each image with its own Gaussian ``sigma`` (in pixels)."""
    b, c, h, w = x.shape
    radius = max(1, int(math.ceil(2 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * _per_image(sigma, t.view(1, -1)) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (b*c, taps)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (radius, radius, 0, 0), mode="reflect" if w > radius else "replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect" if h > radius else "replicate")
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def cutout(x, gen, max_frac):
    """Zero one random square per image, side up to ``max_frac`` of the image."""
    b, _, h, w = x.shape
    dev = x.device
    side = (torch.rand(b, generator=gen, device=dev) * max_frac * min(h, w)).ceil()
    cy = torch.rand(b, generator=gen, device=dev) * h
    cx = torch.rand(b, generator=gen, device=dev) * w
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((ys - cy.view(b, 1, 1)).abs() < side.view(b, 1, 1) / 2) & (
        (xs - cx.view(b, 1, 1)).abs() < side.view(b, 1, 1) / 2
    )
    return x.masked_fill(inside.unsqueeze(1), 0.0)


def _photometric(name, x, m):
    """One RandAugment-style colour operation with magnitudes ``m`` in [0, 1)."""
    if name == "autocontrast":
        return autocontrast(x)
    if name == "brightness":
        return adjust_brightness(x, 0.5 + m)
    if name == "contrast":
        return adjust_contrast(x, 0.5 + m)
    if name == "sharpness":
        return adjust_sharpness(x, 0.5 + 2 * m)
    if name == "solarize":
        return solarize(x, 0.5 + 0.5 * m)
    if name == "posterize":
        return posterize(x, torch.floor(4 + 4 * m))
    if name == "saturation":
        return adjust_saturation(x, 2 * m)
    raise ValueError(f"unknown operation {name!r}")


def _in_fp32(view):
    """Make a view method compute in fp32 with autocast off.

    The training loop builds batches inside :func:`torch.autocast` so that
    any forward pass there runs in low precision; the views themselves are
    data, not model compute. Under bf16 autocast the blur and sharpness
    convolutions returned bf16 images, which could not be written back into
    the fp32 batch (and would have rounded the pixels to 8 bits of mantissa).
    """

    @functools.wraps(view)
    def in_fp32(self, x, gen, *args, **kwargs):
        with autocast_off(x.device.type):
            return view(self, x.float(), gen, *args, **kwargs)

    return in_fp32


def _where(mask, a, b):
    return torch.where(_per_image(mask, a), a, b)


class ImageAugmenter:
    """Contrastive, weak and strong views of image batches.

    Parameters
    ----------
    image_size : int
        Smaller side of the images; sets the strength of crops and shifts.
    channels : int
        1 (grayscale) or 3 (RGB); colour images also get saturation and
        grayscale changes.
    flip : bool, optional
        Mirror half of the images horizontally in every view. ``None`` flips
        colour images only (see the module notes).
    """

    #: Photometric operations of the strong view, drawn with replacement.
    STRONG_OPS = (
        "identity",
        "autocontrast",
        "brightness",
        "contrast",
        "sharpness",
        "solarize",
        "posterize",
        "saturation",
    )

    def __init__(self, image_size, channels, flip=None):
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.flip = self.channels == 3 if flip is None else bool(flip)
        self.tiny = self.image_size <= 16

    @_in_fp32
    def contrastive(self, x, gen):
        """MoCo v2-style view: resized crop and colour jitter (with hue and
        random grayscale for colour images), then blur (or, for images up to
        16 px, an affine warp, jitter and cutout).

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W)
            Images in [0, 1].
        gen : torch.Generator
            Randomness on ``x``'s device.

        Returns
        -------
        torch.Tensor
            Augmented images in [0, 1].
        """
        b, dev = x.shape[0], x.device
        if self.tiny:
            # A 20 % crop of an 8x8 digit is a blob: warp instead of cropping.
            x = random_affine(
                x,
                gen,
                rotate=20,
                scale=(0.8, 1.2),
                translate=0.15,
                shear=15,
                flip=self.flip,
            )
        else:
            x = random_affine(
                x, gen, rotate=10, crop_area=(0.3, 1.0), shear=5, flip=self.flip
            )
        jitter = torch.rand(b, generator=gen, device=dev) < 0.8
        y = adjust_brightness(x, _uniform(gen, b, 0.6, 1.4, dev))
        y = adjust_contrast(y, _uniform(gen, b, 0.6, 1.4, dev))
        y = adjust_saturation(y, _uniform(gen, b, 0.6, 1.4, dev))
        if self.channels == 3:
            # MoCo v2's hue jitter (0.1 turn): the same object in other colours.
            y = adjust_hue(y, _uniform(gen, b, -0.1, 0.1, dev))
        x = _where(jitter, y, x)
        if self.channels == 3:
            gray = torch.rand(b, generator=gen, device=dev) < 0.2
            x = _where(gray, _gray(x).expand_as(x), x)
        if self.tiny:
            # Warps of an 8 px image change little; cutout adds the occlusion
            # that crops give larger images.
            return cutout(x, gen, 0.4)
        # Larger images: MoCo v2's recipe, blur and no cutout. Cutout on top of
        # a resized crop hid the shape cues of 28 px clothing (stage-1 KMeans
        # accuracy 0.52 with it, 0.62 without, 20,000 Fashion-MNIST images).
        blur = torch.rand(b, generator=gen, device=dev) < 0.5
        sigma = _uniform(gen, b, 0.1, 0.08 * self.image_size / 2, dev)
        sel = torch.nonzero(blur).flatten()  # blur only the images that drew it
        if sel.numel():
            x = x.clone()
            x[sel] = gaussian_blur(x[sel], sigma[sel])
        return x

    @_in_fp32
    def weak(self, x, gen):
        """Small random shift (about 1/8 of the side), plus flips for colour.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W)
            Images in [0, 1].
        gen : torch.Generator
            Randomness on ``x``'s device.

        Returns
        -------
        torch.Tensor
            Augmented images.
        """
        return random_affine(x, gen, translate=0.125, flip=self.flip)

    @_in_fp32
    def strong(self, x, gen, n_ops=2):
        """RandAugment-style view: random warp, ``n_ops`` random colour
        operations with random magnitudes, then cutout.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W)
            Images in [0, 1].
        gen : torch.Generator
            Randomness on ``x``'s device.
        n_ops : int, default=2
            Photometric operations per image.

        Returns
        -------
        torch.Tensor
            Augmented images.
        """
        b, dev = x.shape[0], x.device
        x = random_affine(
            x,
            gen,
            rotate=25,
            scale=(0.85, 1.15),
            translate=0.15,
            shear=15,
            flip=self.flip,
        )
        for _ in range(n_ops):
            op = torch.randint(len(self.STRONG_OPS), (b,), generator=gen, device=dev)
            m = torch.rand(b, generator=gen, device=dev)
            # Each operation runs on the images that drew it only: the same
            # values as running it on the whole batch and selecting, at a
            # fraction of the time and of the temporaries.
            out = x.clone()
            for i, name in enumerate(self.STRONG_OPS):
                sel = torch.nonzero(op == i).flatten()
                if name != "identity" and sel.numel():
                    out[sel] = _photometric(name, x[sel], m[sel])
            x = out
        return cutout(x, gen, 0.5)


class TabularAugmenter:
    """Views of tabular rows: Gaussian noise and random feature masking.

    Masked features are set to their training mean, i.e. "unknown".

    Parameters
    ----------
    mean, std : torch.Tensor of shape (d,)
        Per-feature mean and scale of the training data.
    """

    def __init__(self, mean, std):
        self.mean = mean
        self.std = std

    def _view(self, x, gen, noise, mask_p):
        eps = torch.randn(x.shape, generator=gen, device=x.device)
        x = x + noise * self.std.to(x.device) * eps
        mask = torch.rand(x.shape, generator=gen, device=x.device) < mask_p
        return torch.where(mask, self.mean.to(x.device).expand_as(x), x)

    @_in_fp32
    def contrastive(self, x, gen):
        """Noise at 0.3 standard deviations and 30 % of features masked.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Rows to augment.
        gen : torch.Generator
            Generator on ``x``'s device.

        Returns
        -------
        torch.Tensor of shape (B, d)
            The augmented rows (a new tensor).
        """
        return self._view(x, gen, 0.3, 0.3)

    @_in_fp32
    def weak(self, x, gen):
        """Noise at 0.05 standard deviations, nothing masked.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Rows to augment.
        gen : torch.Generator
            Generator on ``x``'s device.

        Returns
        -------
        torch.Tensor of shape (B, d)
            The augmented rows (a new tensor).
        """
        return self._view(x, gen, 0.05, 0.0)

    @_in_fp32
    def strong(self, x, gen):
        """Noise at 0.3 standard deviations and 30 % of features masked.

        Parameters
        ----------
        x : torch.Tensor of shape (B, d)
            Rows to augment.
        gen : torch.Generator
            Generator on ``x``'s device.

        Returns
        -------
        torch.Tensor of shape (B, d)
            The augmented rows (a new tensor).
        """
        return self._view(x, gen, 0.3, 0.3)


def make_augmenter(profile, mean=None, std=None, flip=None):
    """Build the augmenter suited to an input profile.

    Parameters
    ----------
    profile : InputProfile
        Validated input description.
    mean, std : torch.Tensor, optional
        Per-feature statistics, needed for tabular data.
    flip : bool, optional
        Horizontal flips for images (``None``: colour images only); ignored
        for tabular data.

    Returns
    -------
    ImageAugmenter or TabularAugmenter
    """
    if profile.kind == "tabular":
        return TabularAugmenter(mean, std)
    return ImageAugmenter(profile.image_size, profile.shape[0], flip=flip)

"""Turn user input into one tensor layout plus a profile of what it holds.

Accepted forms: numpy arrays of images ``(n, H, W)`` or ``(n, H, W, C)`` with
``C`` in {1, 3} (uint8/integers in [0, 255] or floats in [0, 1]), a list of PIL
images of one size, and 2-D tabular rows ``(n, d)``. Tabular rows are treated
as flattened images when ``image_shape`` is given.

Images come out as float32 ``(n, C, H, W)`` in [0, 1], or with ``compact=True``
8-bit images as uint8 in [0, 255] (a quarter of the memory; the estimator
converts them batch by batch, :mod:`skspice.samples`); tabular rows as float32
``(n, d)``. The caller's array is never modified (we always copy on convert).
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import check_array

__all__ = ["InputProfile", "as_image_item", "as_model_input", "check_profile"]


@dataclass(frozen=True)
class InputProfile:
    """What one sample looks like after conversion.

    Parameters
    ----------
    kind : {"image", "tabular"}
        Whether samples are images or feature vectors.
    shape : tuple of int
        Per-sample shape: ``(C, H, W)`` for images, ``(d,)`` for tabular rows.
    """

    kind: str
    shape: tuple

    @property
    def n_features(self):
        """Number of scalar values in one sample."""
        return int(np.prod(self.shape))

    @property
    def image_size(self):
        """Smaller side of an image, or ``None`` for tabular data."""
        return min(self.shape[1:]) if self.kind == "image" else None


def _is_pil_image(obj):
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


_EIGHT_BIT_MODES = ("L", "RGB")


def _pil_to_unit_float(im, compact=False):
    """One PIL image as float32 in [0, 1] (8-bit, 16-bit and float modes), or
    as uint8 for 8-bit modes when ``compact``."""
    if compact and im.mode in _EIGHT_BIT_MODES:
        return np.asarray(im, dtype=np.uint8)
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32)  # range checked by the caller
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit grayscale (PNG/TIFF): scale by the 16-bit maximum.
        return np.asarray(im, dtype=np.float32) / 65535.0
    return np.asarray(im, dtype=np.float32) / 255.0


def _pil_list_to_array(images, argname, compact=False):
    """Stack a list of PIL images into ``(n, H, W)`` or ``(n, H, W, 3)``: float32
    in [0, 1], or uint8 when ``compact`` and every image is 8-bit."""
    for i, im in enumerate(images):
        if not _is_pil_image(im):
            raise TypeError(
                f"{argname} mixes PIL images with {type(im).__name__} at index {i}; "
                "pass a list of PIL images only."
            )
        if im.size != images[0].size:
            raise ValueError(
                f"{argname} holds images of different sizes: image 0 is "
                f"{images[0].size[0]}x{images[0].size[1]} (width x height), image "
                f"{i} is {im.size[0]}x{im.size[1]}. Resize them to one size first."
            )
    gray_modes = ("L", "1", "I", "I;16", "I;16B", "I;16L", "F")
    gray = all(im.mode in gray_modes for im in images)
    images = [
        im if (gray and im.mode != "1") else im.convert("L" if gray else "RGB")
        for im in images
    ]
    compact = compact and all(im.mode in _EIGHT_BIT_MODES for im in images)
    # Filled in place: stacking a list would hold every image twice at once.
    first = _pil_to_unit_float(images[0], compact)
    out = np.empty((len(images),) + first.shape, dtype=first.dtype)
    for i, im in enumerate(images):
        out[i] = _pil_to_unit_float(im, compact)
    return out


def _scale_pixels(arr, argname, compact=False):
    """Map integer pixels in [0, 255] or floats in [0, 1] to float32 in [0, 1];
    with ``compact``, integer pixels become uint8 in [0, 255] instead."""
    if arr.dtype == np.bool_:
        return (
            arr.astype(np.uint8) * np.uint8(255) if compact else arr.astype(np.float32)
        )
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{argname} holds integer pixels in [{lo}, {hi}]; expected values in "
                "[0, 255] (uint8 images)."
            )
        if compact:
            return arr.astype(np.uint8)  # always a copy
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)  # always a copy: the caller's data stays intact
    if not np.isfinite(arr).all():
        raise ValueError(f"{argname} contains NaN or infinity; images must be finite.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{argname} holds float pixels in [{lo:.4g}, {hi:.4g}]; expected floats in "
            "[0, 1] (or uint8 in [0, 255]). Scale the images first, e.g. X / X.max()."
        )
    return arr


def _to_numeric_array(X, argname, compact=False):
    if isinstance(X, (list, tuple)) and len(X) and _is_pil_image(X[0]):
        return _pil_list_to_array(list(X), argname, compact)
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{argname} is a sparse matrix; pass a dense array.")
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{argname} could not be converted to an array: {exc}. Images of "
            "different sizes must be resized to one size first."
        ) from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(
            f"{argname} has dtype {arr.dtype}; expected numeric images or features "
            "(uint8, integer or float)."
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{argname} is complex; complex data not supported.")
    return arr


def as_model_input(X, *, image_shape=None, profile=None, argname="X", compact=False):
    """Convert ``X`` into the layout the models take.

    Parameters
    ----------
    X : array-like or list of PIL images
        Images ``(n, H, W)``, ``(n, H, W, C)``, a list of PIL images, or 2-D
        tabular rows ``(n, d)``.
    image_shape : tuple of int, default=None
        ``(H, W)`` or ``(H, W, C)``: reshape 2-D rows into images of this shape.
        ``None`` treats 2-D input as tabular features.
    profile : InputProfile, default=None
        The profile seen in ``fit``. When given, ``X`` must match it.
    argname : str, default="X"
        Name used in error messages.
    compact : bool, default=False
        Keep 8-bit images (uint8, integer or boolean arrays, 8-bit PIL images)
        as uint8 in [0, 255] instead of float32 in [0, 1].

    Returns
    -------
    data : ndarray
        ``(n, C, H, W)`` images in [0, 1] as float32 (or uint8 in [0, 255]
        with ``compact``), or ``(n, d)`` float32 tabular rows.
    profile : InputProfile
        Per-sample description of ``data``.
    """
    arr = _to_numeric_array(X, argname, compact)
    if arr.ndim == 0 or arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(
            f"{argname} is empty (shape {arr.shape}); at least one sample is needed."
        )
    if arr.ndim == 1:
        raise ValueError(
            f"{argname} is 1-D (shape {arr.shape}); expected images (n, H, W) or "
            "(n, H, W, C), or 2-D rows (n, d). Reshape a single sample with "
            "X.reshape(1, -1)."
        )
    if arr.ndim == 2 and image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if int(np.prod(shape)) != arr.shape[1]:
            raise ValueError(
                f"image_shape={tuple(image_shape)} holds {int(np.prod(shape))} values "
                f"but {argname} has {arr.shape[1]} features per row."
            )
        arr = arr.reshape((arr.shape[0],) + shape)
    if arr.ndim == 2:
        data = check_array(arr, dtype=np.float32, copy=True, input_name=argname)
        new = InputProfile("tabular", (data.shape[1],))
    elif arr.ndim in (3, 4):
        if arr.ndim == 4 and arr.shape[-1] not in (1, 3):
            raise ValueError(
                f"{argname} has shape {arr.shape}: images must be (n, H, W, C) with "
                f"C in {{1, 3}} channels last, got C={arr.shape[-1]}."
            )
        data = _scale_pixels(arr, argname, compact)
        data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        data = np.ascontiguousarray(data)
        new = InputProfile("image", tuple(int(s) for s in data.shape[1:]))
    else:
        raise ValueError(
            f"{argname} has {arr.ndim} dimensions (shape {arr.shape}); expected 2 "
            "(tabular rows), 3 (n, H, W) or 4 (n, H, W, C)."
        )
    check_profile(new, profile, argname)
    return data, new


def check_profile(new, profile, argname="X"):
    """Raise unless samples like ``new`` match the ``profile`` seen in ``fit``.

    Parameters
    ----------
    new : InputProfile
        What the samples of ``argname`` look like.
    profile : InputProfile or None
        The fitted profile; None (not fitted yet) accepts anything.
    argname : str, default="X"
        Name used in the error message.

    Raises
    ------
    ValueError
        When the per-sample shapes or kinds differ.
    """
    if profile is not None and new != profile:
        raise ValueError(
            f"{argname} has per-sample shape {new.shape} ({new.kind}) but the "
            f"estimator was fitted on {profile.shape} ({profile.kind})."
        )


def as_image_item(item, argname="X", index=0):
    """One item of an image data set as a ``(C, H, W)`` array.

    Parameters
    ----------
    item : PIL image, ndarray, torch.Tensor or tuple
        A PIL image; a numpy image ``(H, W)`` or ``(H, W, C)`` (uint8 in
        [0, 255] or floats in [0, 1], as ``fit`` takes them); a torch tensor
        ``(C, H, W)`` (torchvision's layout, uint8 or floats in [0, 1]); or a
        tuple or list whose first element is one of these (``(image,
        target)`` pairs of torchvision data sets).
    argname : str, default="X"
        Name used in error messages.
    index : int, default=0
        The item's index, for error messages.

    Returns
    -------
    ndarray of shape (C, H, W)
        uint8 for 8-bit images, else float32 in [0, 1].
    """
    if isinstance(item, (tuple, list)) and item and not np.isscalar(item[0]):
        item = item[0]
    where = f"{argname}[{index}]"
    if type(item).__module__.startswith("torch"):
        arr = item.detach().cpu().numpy()
        if arr.ndim == 3:  # torchvision's (C, H, W)
            arr = arr.transpose(1, 2, 0)
    elif _is_pil_image(item):
        arr = _pil_list_to_array([item], where, compact=True)[0]
    else:
        arr = _to_numeric_array(item, where)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3):
        raise ValueError(
            f"{where} has shape {arr.shape}: an image must be (H, W) or (H, W, C) "
            "with C in {1, 3} (numpy), or (C, H, W) (torch tensor)."
        )
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{where} has {arr.ndim} dimensions (shape {arr.shape}); a data set "
            "item must be one image."
        )
    arr = _scale_pixels(arr, where, compact=True)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)

"""Loaders for real image data sets, returned as ``(X, y)`` numpy arrays.

Every loader reads files that are already on disk; nothing is downloaded.

* :func:`load_digits_images` -- scikit-learn's bundled 8x8 digits.
* :func:`load_fashion_mnist` -- the IDX files of Fashion-MNIST (plain or
  gzipped), e.g. as installed by Debian's ``dataset-fashion-mnist`` package.
* :func:`load_cifar10` / :func:`load_cifar100` -- the "python version"
  pickle batches of CIFAR-10 and CIFAR-100.
* :func:`load_image_folder` -- one sub-folder per class, any image format
  Pillow can read.
* :func:`load_dataset` -- any of the above by name, optionally a seeded
  random subset.

Images come back as ``uint8`` arrays of shape ``(n, H, W)`` (grayscale) or
``(n, H, W, 3)`` (colour, channels last) and labels as ``int64`` arrays of
shape ``(n,)``.  ``subset="all"`` joins the training and test splits (training
first), which is the usual protocol in deep-clustering papers.
"""

import gzip
import os
import pickle
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from sklearn.datasets import load_digits
from torch.utils.data import Dataset

__all__ = [
    "ImageFolderDataset",
    "DATASET_NAMES",
    "FASHION_MNIST_PATH",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits_images",
    "load_fashion_mnist",
    "load_image_folder",
]

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"

_SUBSETS = ("all", "train", "test")
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def _check_subset(subset):
    if not isinstance(subset, str) or subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}.")
    return subset


def _as_path(path, name="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a str or os.PathLike, got {type(path).__name__}."
        )
    return Path(path).expanduser()


def _join(parts):
    """Concatenate ``[(X, y), ...]`` split by split, in the given order."""
    if len(parts) == 1:
        return parts[0]
    X = np.concatenate([X for X, _ in parts], axis=0)
    y = np.concatenate([y for _, y in parts], axis=0)
    return X, y


# ----------------------------------------------------------------------------
# scikit-learn digits
# ----------------------------------------------------------------------------


def load_digits_images():
    """Load scikit-learn's 8x8 handwritten digits as images.

    The data ship with scikit-learn, so nothing is read from or written to
    disk beyond the package itself.

    Returns
    -------
    X : ndarray of shape (1797, 8, 8), dtype float32
        Pixel intensities scaled from ``0..16`` to ``[0, 1]``.
    y : ndarray of shape (1797,), dtype int64
        Digit labels ``0..9``.

    Examples
    --------
    >>> from skspice.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> X.shape, X.dtype, y.dtype
    ((1797, 8, 8), dtype('float32'), dtype('int64'))
    """
    digits = load_digits()
    X = (np.asarray(digits.images, dtype=np.float64) / 16.0).astype(np.float32)
    y = np.asarray(digits.target, dtype=np.int64)
    return X, y


# ----------------------------------------------------------------------------
# IDX (MNIST / Fashion-MNIST)
# ----------------------------------------------------------------------------


def _read_bytes(path):
    """Read a file, transparently decompressing it when it is gzipped."""
    raw = Path(path).read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"corrupt or truncated gzip file {path}: expected a complete gzip "
            f"stream ({exc})."
        ) from exc


def _read_idx(path, magic, what):
    """Parse an unsigned-byte IDX file and check it against its header.

    Parameters
    ----------
    path : Path
        The file (plain or gzipped).
    magic : int
        Expected magic number; its low byte is the number of dimensions.
    what : str
        Human-readable kind of file, used in error messages.

    Returns
    -------
    data : ndarray of dtype uint8
        Array with the shape given by the header.
    """
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise ValueError(
            f"truncated file {path}: {len(data)} bytes, expected at least a "
            f"{header_len}-byte IDX header ({what})."
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"bad magic number 0x{found:08X} in {path}: expected 0x{magic:08X} "
            f"({what})."
        )
    if len(data) < header_len:
        raise ValueError(
            f"truncated file {path}: {len(data)} bytes, expected at least a "
            f"{header_len}-byte IDX header ({what})."
        )
    dims = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise ValueError(
            f"{kind} file {path}: {len(data)} bytes, expected {expected} bytes "
            f"for an IDX array of shape {dims} ({what})."
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len)
    return array.reshape(dims).copy()


def _find_idx_file(folder, stem):
    """Return ``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for name in (stem, stem + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _load_idx_split(folder, split, image_shape, n_classes):
    images_path = _find_idx_file(folder, f"{split}-images-idx3-ubyte")
    labels_path = _find_idx_file(folder, f"{split}-labels-idx1-ubyte")
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC, "IDX images")
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC, "IDX labels")
    if images.shape[1:] != image_shape:
        raise ValueError(
            f"unexpected image size {images.shape[1:]} in {images_path}: "
            f"expected {image_shape}."
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"count mismatch: {images.shape[0]} images in {images_path} but "
            f"{labels.shape[0]} labels in {labels_path}; expected equal counts."
        )
    if labels.size and labels.max() >= n_classes:
        raise ValueError(
            f"label {int(labels.max())} out of range in {labels_path}: "
            f"expected labels 0..{n_classes - 1}."
        )
    return images, labels.astype(np.int64)


def load_fashion_mnist(path=FASHION_MNIST_PATH, subset="all"):
    """Load Fashion-MNIST from its IDX files.

    The folder must hold ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each either plain or gzipped (``.gz``; the
    content is sniffed, so the suffix does not matter). On Debian and Ubuntu,
    ``apt-get install dataset-fashion-mnist`` installs the gzipped files into
    the default ``path``.

    Parameters
    ----------
    path : str or os.PathLike, default="/usr/share/datasets/fashion-mnist"
        Folder holding the IDX files.
    subset : {"all", "train", "test"}, default="all"
        Which split to load. ``"all"`` is the 60,000 training images followed
        by the 10,000 test images (70,000 in all).

    Returns
    -------
    X : ndarray of shape (n_samples, 28, 28), dtype uint8
        Grayscale images, 0 (background) to 255.
    y : ndarray of shape (n_samples,), dtype int64
        Class labels ``0..9``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the needed files is missing.
    ValueError
        If ``subset`` is invalid, or a file is corrupt: wrong magic number,
        length not matching its header, images not 28x28, labels out of range,
        or image and label counts that differ.
    """
    subset = _check_subset(subset)
    folder = _as_path(path)
    splits = {"all": ["train", "t10k"], "train": ["train"], "test": ["t10k"]}
    splits = splits[subset]
    expected = [
        f"{split}-{kind}"
        for split in splits
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ]
    hint = (
        f"expected the IDX files {', '.join(expected)} (plain or .gz); on "
        "Debian/Ubuntu run `apt-get install dataset-fashion-mnist`."
    )
    if not folder.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {folder} not found: {hint}")
    missing = [name for name in expected if _find_idx_file(folder, name) is None]
    if missing:
        raise FileNotFoundError(
            f"missing {', '.join(missing)} (plain or .gz) in {folder}: {hint}"
        )
    parts = [_load_idx_split(folder, split, (28, 28), 10) for split in splits]
    return _join(parts)


# ----------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickle batches)
# ----------------------------------------------------------------------------


def _resolve_folder(path, subfolder, names, dataset):
    """Folder holding ``names``: ``path`` itself or ``path/subfolder``."""
    root = _as_path(path)
    expected = f"expected the {dataset} files {', '.join(names)}"
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} folder {root} not found: {expected}.")
    candidates = [root, root / subfolder]
    for folder in candidates:
        if folder.is_dir() and any((folder / name).is_file() for name in names):
            missing = [name for name in names if not (folder / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"missing {', '.join(missing)} in {folder}: {expected}."
                )
            return folder
    raise FileNotFoundError(
        f"no {dataset} files in {root} or {root / subfolder}: {expected}."
    )


def _get_key(batch, key, path):
    for candidate in (key.encode("ascii"), key):
        if candidate in batch:
            return batch[candidate]
    raise ValueError(f"corrupt CIFAR batch {path}: expected a key {key!r}.")


def _read_cifar_batch(path, label_key, n_classes):
    """Unpickle one CIFAR batch into HWC uint8 images and int64 labels."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except Exception as exc:  # corrupt pickles raise almost anything
        raise ValueError(
            f"corrupt or truncated CIFAR batch {path}: expected a pickled dict "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(batch, dict):
        raise ValueError(
            f"corrupt CIFAR batch {path}: expected a pickled dict, got "
            f"{type(batch).__name__}."
        )
    data = np.asarray(_get_key(batch, "data", path))
    labels = np.asarray(_get_key(batch, label_key, path))
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"corrupt CIFAR batch {path}: data has shape {data.shape}, expected "
            "(n, 3072)."
        )
    if data.dtype != np.uint8:
        if data.dtype.kind not in "iu" or (
            data.size and (data.min() < 0 or data.max() > 255)
        ):
            raise ValueError(
                f"corrupt CIFAR batch {path}: expected uint8 pixel data, got "
                f"dtype {data.dtype}."
            )
        data = data.astype(np.uint8)
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise ValueError(
            f"count mismatch in {path}: {data.shape[0]} images but "
            f"{labels.size} {label_key}; expected equal counts."
        )
    if labels.size and (
        labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= n_classes
    ):
        raise ValueError(
            f"corrupt CIFAR batch {path}: {label_key} must be integers "
            f"0..{n_classes - 1}."
        )
    # rows are 1024 red, 1024 green, 1024 blue values in row-major order
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def load_cifar10(path, subset="all"):
    """Load CIFAR-10 from its python pickle batches.

    Parameters
    ----------
    path : str or os.PathLike
        Folder holding ``data_batch_1`` ... ``data_batch_5`` and
        ``test_batch`` (the extracted ``cifar-10-batches-py``), or its parent.
    subset : {"all", "train", "test"}, default="all"
        Which split to load. ``"all"`` is the 50,000 training images followed
        by the 10,000 test images.

    Returns
    -------
    X : ndarray of shape (n_samples, 32, 32, 3), dtype uint8
        RGB images, channels last.
    y : ndarray of shape (n_samples,), dtype int64
        Class labels ``0..9``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the needed batches is missing.
    ValueError
        If ``subset`` is invalid or a batch is corrupt.

    Notes
    -----
    The batches are Python pickles, and unpickling can run arbitrary code:
    only load files from a source you trust.
    """
    subset = _check_subset(subset)
    train = [f"data_batch_{i}" for i in range(1, 6)]
    names = {"all": train + ["test_batch"], "train": train, "test": ["test_batch"]}
    names = names[subset]
    folder = _resolve_folder(path, "cifar-10-batches-py", names, "CIFAR-10")
    return _join([_read_cifar_batch(folder / n, "labels", 10) for n in names])


def load_cifar100(path, coarse=True, subset="all"):
    """Load CIFAR-100 from its python pickle files.

    Parameters
    ----------
    path : str or os.PathLike
        Folder holding ``train`` and ``test`` (the extracted
        ``cifar-100-python``), or its parent.
    coarse : bool, default=True
        Return the 20 super-class labels (``coarse_labels``, the usual
        CIFAR-100-20 clustering benchmark) instead of the 100 fine labels.
    subset : {"all", "train", "test"}, default="all"
        Which split to load. ``"all"`` is the 50,000 training images followed
        by the 10,000 test images.

    Returns
    -------
    X : ndarray of shape (n_samples, 32, 32, 3), dtype uint8
        RGB images, channels last.
    y : ndarray of shape (n_samples,), dtype int64
        Labels ``0..19`` when ``coarse`` else ``0..99``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the needed files is missing.
    ValueError
        If ``subset`` is invalid or a file is corrupt.

    Notes
    -----
    The files are Python pickles, and unpickling can run arbitrary code: only
    load files from a source you trust.
    """
    subset = _check_subset(subset)
    if not isinstance(coarse, (bool, np.bool_)):
        raise ValueError(f"coarse must be a bool, got {coarse!r}.")
    names = {"all": ["train", "test"], "train": ["train"], "test": ["test"]}
    names = names[subset]
    folder = _resolve_folder(path, "cifar-100-python", names, "CIFAR-100")
    key, n_classes = ("coarse_labels", 20) if coarse else ("fine_labels", 100)
    return _join([_read_cifar_batch(folder / n, key, n_classes) for n in names])


# ----------------------------------------------------------------------------
# image folder
# ----------------------------------------------------------------------------


def _check_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool)
            for s in image_size
        )
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(
            f"image_size must be None, an int or a (height, width) pair of ints, "
            f"got {image_size!r}."
        )
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}.")
    return size


def _check_extensions(extensions):
    if extensions is None:
        return {ext.lower() for ext in Image.registered_extensions()}
    if isinstance(extensions, str):
        extensions = [extensions]
    try:
        extensions = list(extensions)
    except TypeError:
        raise ValueError(
            f"extensions must be None or a sequence of str, got {extensions!r}."
        ) from None
    if not extensions or not all(
        isinstance(e, str) and e.strip(".") for e in extensions
    ):
        raise ValueError(
            f"extensions must be None or a non-empty sequence of file suffixes "
            f"such as '.png', got {extensions!r}."
        )
    return {"." + e.lower().lstrip(".") for e in extensions}


def _open_image(path):
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"cannot read image file {path}: expected a file Pillow can decode "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    return image


def _scan_image_folder(root, suffixes):
    """Image files and class ids of a folder with one sub-folder per class."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} not found: expected a folder with one "
            "sub-folder of images per class."
        )
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise ValueError(
            f"no class sub-folders in {root}: expected one sub-folder of images "
            "per class."
        )
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        class_files = sorted(
            f
            for f in class_dir.iterdir()
            if f.is_file()
            and not f.name.startswith(".")
            and f.suffix.lower() in suffixes
        )
        if not class_files:
            raise ValueError(
                f"no images in class folder {class_dir}: expected files with "
                f"suffix {', '.join(sorted(suffixes))}."
            )
        files.extend(class_files)
        labels.extend([label] * len(class_files))
    return files, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


def _mode_and_size(files, size, color_mode):
    """Pillow mode and ``(height, width)`` of a folder, from file headers only."""
    modes = []
    for file in files:
        try:
            with Image.open(file) as image:
                modes.append(image.mode)
                if size is None:
                    size = (image.height, image.width)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ValueError(
                f"cannot read image file {file}: expected a file Pillow can "
                f"decode ({type(exc).__name__}: {exc})."
            ) from exc
    if color_mode == "auto":
        grayscale = all(mode in ("L", "1") for mode in modes)
    else:
        grayscale = color_mode == "grayscale"
    return ("L" if grayscale else "RGB"), size


class ImageFolderDataset(Dataset):
    """Images stored as one sub-folder per class, read lazily, one at a time.

    A map-style :class:`torch.utils.data.Dataset`: only the file list is kept
    in memory and ``dataset[i]`` decodes image ``i`` (resized, in one colour
    mode) when it is asked for. :class:`~skspice.SPICEClustering` takes it
    directly (``fit(dataset)``), so a folder larger than memory can be
    clustered; with ``num_workers`` the images are decoded in worker
    processes. :func:`load_image_folder` reads the same folder into one
    array instead.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder; its sorted sub-folder names are the classes.
    image_size : int or (int, int), default=None
        Size ``(height, width)`` (or one int for square images) every image is
        resized to with bilinear interpolation. ``None`` uses the size of the
        first image.
    color_mode : {"auto", "rgb", "grayscale"}, default="auto"
        ``"auto"`` reads grayscale when every image has Pillow mode ``"L"`` or
        ``"1"`` (decided from the file headers), and RGB otherwise.
    extensions : sequence of str, default=None
        File suffixes to read (case-insensitive); ``None``: every suffix Pillow
        recognises as an image format.

    Attributes
    ----------
    files : list of pathlib.Path
        The image files, class by class, sorted.
    targets : ndarray of shape (n_samples,)
        Class id of every file.
    classes : list of str
        The class names (sub-folder names).
    mode : {"L", "RGB"}
        The Pillow mode images are converted to.
    image_size : tuple of int
        ``(height, width)`` of every image.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from skspice.datasets import ImageFolderDataset
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a", "b"):
    ...     (root / name).mkdir()
    ...     Image.new("RGB", (6, 4), "red").save(root / name / "1.png")
    >>> ds = ImageFolderDataset(root)
    >>> len(ds), ds.classes, ds[0][0].shape, int(ds[0][1])
    (2, ['a', 'b'], (4, 6, 3), 0)
    """

    def __init__(self, path, image_size=None, color_mode="auto", extensions=None):
        size = _check_image_size(image_size)
        if color_mode not in ("auto", "rgb", "grayscale"):
            raise ValueError(
                "color_mode must be one of ('auto', 'rgb', 'grayscale'), got "
                f"{color_mode!r}."
            )
        root = _as_path(path)
        self.files, self.targets, self.classes = _scan_image_folder(
            root, _check_extensions(extensions)
        )
        self.mode, self.image_size = _mode_and_size(self.files, size, color_mode)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        """Image ``index`` as uint8 ``(H, W)`` or ``(H, W, 3)``, and its class.

        Parameters
        ----------
        index : int

        Returns
        -------
        image : ndarray of uint8
        target : int
        """
        height, width = self.image_size
        with _open_image(self.files[index]) as image:
            converted = image.convert(self.mode)
        if converted.size != (width, height):
            converted = converted.resize((width, height), _BILINEAR)
        return np.asarray(converted, dtype=np.uint8), int(self.targets[index])


def load_image_folder(
    path,
    image_size=None,
    color_mode="auto",
    extensions=None,
    return_class_names=False,
):
    """Load images stored as one sub-folder per class.

    ``path/cat/001.png``, ``path/dog/xyz.jpg`` ... : the sorted sub-folder
    names are the classes, with ids ``0..k-1``. Files within a class are read
    in sorted order. Hidden files and folders (name starting with ``.``) are
    ignored. All images are read into one array; for folders larger than
    memory, pass an :class:`ImageFolderDataset` (read lazily) to the
    estimator instead.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder.
    image_size : int or (int, int), default=None
        Size ``(height, width)`` (or one int for square images) every image is
        resized to with bilinear interpolation. ``None`` uses the size of the
        first image (first class, first file).
    color_mode : {"auto", "rgb", "grayscale"}, default="auto"
        ``"auto"`` loads grayscale when every image has Pillow mode ``"L"`` or
        ``"1"``, and RGB otherwise. Alpha channels are dropped.
    extensions : sequence of str, default=None
        File suffixes to load (case-insensitive, with or without the dot),
        e.g. ``(".png", ".jpg")``. ``None`` loads every file whose suffix
        Pillow recognises as an image format; other files are skipped.
    return_class_names : bool, default=False
        Also return the class names.

    Returns
    -------
    X : ndarray of shape (n_samples, H, W) or (n_samples, H, W, 3), dtype uint8
        The images; three trailing channels (RGB) unless grayscale.
    y : ndarray of shape (n_samples,), dtype int64
        Class ids, index into ``class_names``.
    class_names : list of str
        Only when ``return_class_names`` is True: the sorted sub-folder names.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is not a folder.
    ValueError
        If an argument is invalid, ``path`` has no class sub-folders, a class
        sub-folder holds no images, or an image file cannot be decoded.
    """
    ds = ImageFolderDataset(path, image_size, color_mode, extensions)
    height, width = ds.image_size
    shape = (len(ds), height, width) + (() if ds.mode == "L" else (3,))
    X = np.empty(shape, dtype=np.uint8)
    for i in range(len(ds)):
        X[i] = ds[i][0]
    y = ds.targets.copy()
    if return_class_names:
        return X, y, list(ds.classes)
    return X, y


# ----------------------------------------------------------------------------
# by name
# ----------------------------------------------------------------------------

#: Names :func:`load_dataset` knows.
DATASET_NAMES = ("digits", "fashion-mnist", "cifar10", "cifar100", "folder")


def load_dataset(
    name, data_path=None, n_samples=None, seed=0, image_size=None, return_info=False
):
    """Load a data set by name, optionally a seeded random subset of it.

    Parameters
    ----------
    name : {"digits", "fashion-mnist", "cifar10", "cifar100", "folder"}
        Which data set: :func:`load_digits_images`,
        :func:`load_fashion_mnist`, :func:`load_cifar10`,
        :func:`load_cifar100` (the 20 coarse super-classes) or
        :func:`load_image_folder`; all splits (``subset="all"``).
    data_path : str or os.PathLike, default=None
        Folder of the data set files; required for ``"cifar10"``,
        ``"cifar100"`` and ``"folder"``, optional for ``"fashion-mnist"``
        (default :data:`FASHION_MNIST_PATH`), unused for ``"digits"``.
    n_samples : int, default=None
        Size of a random subset, drawn without replacement with ``seed`` and
        kept in data set order. ``None``, or at least the data set size,
        keeps every image.
    seed : int, default=0
        Seed of the subset.
    image_size : int or (int, int), default=None
        ``"folder"`` only: the size images are resized to (``None``: the size
        of the first image).
    return_info : bool, default=False
        Also return a dict describing the whole data set and the subset.

    Returns
    -------
    X : ndarray of shape (n, H, W) or (n, H, W, 3)
        The images: float32 in [0, 1] for ``"digits"``, uint8 in [0, 255]
        otherwise.
    y : ndarray of shape (n,), dtype int64
        Class labels.
    info : dict
        Only when ``return_info`` is True: ``indices`` (sorted positions of
        the returned images in the whole data set), ``n_total`` (size of the
        whole data set), ``n_classes`` (classes of the whole data set) and
        ``data_path`` (the folder read, ``None`` for ``"digits"``).

    Raises
    ------
    ValueError
        If ``name`` is unknown, a required ``data_path`` is missing,
        ``image_size`` is given for another data set than ``"folder"``, or
        ``n_samples`` is not a positive int.

    Examples
    --------
    >>> from skspice.datasets import load_dataset
    >>> X, y = load_dataset("digits", n_samples=100, seed=0)
    >>> X.shape, y.shape
    ((100, 8, 8), (100,))
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}.")
    if data_path is None and name in ("cifar10", "cifar100", "folder"):
        raise ValueError(f"data set {name!r} needs a data_path.")
    if image_size is not None and name != "folder":
        raise ValueError(f"image_size is only used by 'folder', not {name!r}.")
    if n_samples is not None and (
        not isinstance(n_samples, (int, np.integer)) or n_samples < 1
    ):
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
    if name == "digits":
        X, y = load_digits_images()
    elif name == "fashion-mnist":
        data_path = FASHION_MNIST_PATH if data_path is None else data_path
        X, y = load_fashion_mnist(data_path)
    elif name == "cifar10":
        X, y = load_cifar10(data_path)
    elif name == "cifar100":
        X, y = load_cifar100(data_path, coarse=True)
    else:
        X, y = load_image_folder(data_path, image_size=image_size)
    n_total = len(X)
    indices = np.arange(n_total)
    info = {"n_total": n_total, "n_classes": len(np.unique(y))}
    if n_samples is not None and n_samples < n_total:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(n_total, size=n_samples, replace=False))
        X, y = X[indices], y[indices]
    if not return_info:
        return X, y
    info["indices"] = indices
    info["data_path"] = None if data_path is None else os.fspath(data_path)
    return X, y, info

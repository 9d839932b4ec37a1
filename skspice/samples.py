"""Training samples kept compact, turned into model input one batch at a time.

Images stay in the dtype they came in (uint8 photographs take a quarter of
their float32 size) and become float32 in [0, 1] only batch by batch, on the
device that trains; per-image input transforms (contrast maps) run there too.
Every pass over the data (training batches, features, probabilities,
``predict``) goes through :meth:`Samples.fetch`, so memory grows with the data
set in its compact form and with one batch, not with the whole data set in
float32.

On a CUDA device the stored samples are moved to the GPU once when they fit
in a share of its free memory; otherwise every batch is gathered into pinned
(page-locked) host memory, so that the copy to the GPU is truly
asynchronous.
"""

import os
import tempfile

import numpy as np
import torch

__all__ = [
    "DatasetSamples",
    "Samples",
    "as_samples",
    "inference_batch_size",
    "release_freed_memory",
    "whole_data_array",
]

#: Share of the GPU's free memory the stored data set may take on the device.
DEVICE_DATA_SHARE = 0.25
#: Share of the machine's available memory one whole-data array (features,
#: embeddings, probabilities) may take before it goes to a memory-mapped file.
HOST_ARRAY_SHARE = 0.25
#: Input values (pixels x channels x images) of one inference batch, per
#: device kind; bounds the activations of a whole-data pass whatever the
#: image size. On the CPU, batches of 256 28 px images ran 2.2 times faster
#: than batches of 1024 (cache-sized), for the same peak memory.
INFERENCE_VALUES = {"cpu": 2**18, "cuda": 2**23}


def inference_batch_size(values_per_sample, device="cpu", lo=32, hi=1024):
    """Samples per forward pass of a whole-data pass (features, predict).

    A power of two with about ``INFERENCE_VALUES[device.type]`` input values
    per batch, within ``[lo, hi]``: on the CPU 256 for 28 px images and 32
    for 224 px colour images; on a GPU 1024 and 32.

    Parameters
    ----------
    values_per_sample : int
        Scalars in one model input (e.g. ``3 * 224 * 224``).
    device : torch.device or str, default="cpu"
        Where the passes run.
    lo, hi : int, default=32, 1024
        Bounds.

    Returns
    -------
    int

    Examples
    --------
    >>> from skspice.samples import inference_batch_size
    >>> inference_batch_size(28 * 28), inference_batch_size(3 * 224 * 224)
    (256, 32)
    """
    kind = torch.device(device).type
    budget = INFERENCE_VALUES.get(kind, INFERENCE_VALUES["cuda"])
    raw = budget / max(1, int(values_per_sample))
    return int(np.clip(2 ** np.floor(np.log2(max(raw, 1))), lo, hi))


def _to_unit(x):
    """Stored samples to float32 in [0, 1] (uint8 scaled by 1/255)."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


class Samples:
    """A data set in its stored dtype, handed out as float32 batches.

    Parameters
    ----------
    raw : torch.Tensor
        Images ``(n, C, H, W)`` as uint8 in [0, 255] or floats in [0, 1], or
        tabular rows ``(n, d)``. Not copied; never modified.
    transform : callable, optional
        Per-sample input transform applied to every float batch on the
        device, e.g. :func:`~skspice.contrast.background_contrast`. It must
        treat each sample independently, so that batches of any size give the
        same result.

    Examples
    --------
    >>> import torch
    >>> from skspice.samples import Samples
    >>> s = Samples(torch.full((4, 1, 2, 2), 255, dtype=torch.uint8))
    >>> len(s), s.sample_shape
    (4, (1, 2, 2))
    >>> s.fetch(torch.tensor([0, 3]), torch.device("cpu")).max().item()
    1.0
    """

    def __init__(self, raw, transform=None):
        self.raw = raw
        self.transform = transform
        self._device_raw = None
        first = self._raw_batch(slice(0, 1))
        self._stored_bytes = first.element_size() * first[0].nelement()
        self.sample_shape = tuple(int(s) for s in self._convert(first).shape[1:])

    def _raw_batch(self, idx):
        """Stored samples ``idx`` in their stored dtype (on the CPU)."""
        return self.raw[idx]

    def __len__(self):
        return int(self.raw.shape[0])

    @property
    def shape(self):
        """``(n,) + sample_shape``: the shape of the model input."""
        return (len(self),) + self.sample_shape

    @property
    def nbytes(self):
        """Bytes of the stored samples (for a data set read from disk, what
        they would take in memory in their stored dtype)."""
        return len(self) * self._stored_bytes

    def _convert(self, x):
        x = _to_unit(x)
        return self.transform(x) if self.transform is not None else x

    def place(self, device, share=DEVICE_DATA_SHARE):
        """Keep a copy of the stored samples on a CUDA ``device`` if it fits.

        Parameters
        ----------
        device : torch.device
            The training device; nothing happens unless it is CUDA.
        share : float, default=DEVICE_DATA_SHARE
            Largest share of the device's free memory the copy may take.

        Returns
        -------
        bool
            Whether the samples now live on ``device``.
        """
        self._device_raw = None
        if device.type != "cuda":
            return False
        free, _ = torch.cuda.mem_get_info(device)
        if self.nbytes > share * free:
            return False
        self._device_raw = self.raw.to(device)
        return True

    def release(self):
        """Drop the device copy made by :meth:`place`."""
        self._device_raw = None

    def fetch(self, idx, device):
        """Float32 model input of the samples ``idx``, on ``device``.

        Parameters
        ----------
        idx : torch.Tensor of int64 or slice
            Which samples.
        device : torch.device
            Where the batch is needed.

        Returns
        -------
        torch.Tensor
            ``(len(idx),) + sample_shape``, float32.
        """
        device = torch.device(device)
        if self._device_raw is not None and self._device_raw.device == device:
            if isinstance(idx, torch.Tensor):
                idx = idx.to(device)
            return self._convert(self._device_raw[idx])
        return self._to_device(self._raw_batch(idx), device)

    def _to_device(self, batch, device):
        """A stored-dtype batch as float32 model input on ``device``."""
        if batch.device != device:
            if device.type == "cuda" and batch.device.type == "cpu":
                # Fancy indexing returns pageable memory, from which a
                # non_blocking copy is synchronous; pinned memory makes it async.
                batch = batch.pin_memory()
            batch = batch.to(device, non_blocking=True)
        return self._convert(batch)

    def batches(self, batch_size, device, start=0, stop=None):
        """Consecutive float32 batches of the samples, in order.

        Parameters
        ----------
        batch_size : int
            Samples per batch.
        device : torch.device
            Where the batches are needed.
        start, stop : int, default=0, None
            The range of samples (``None``: to the end).

        Yields
        ------
        torch.Tensor
        """
        stop = len(self) if stop is None else stop
        order = torch.arange(start, stop)
        yield from self.stream(order.split(batch_size), device)

    def stream(self, index_batches, device):
        """Float32 batches of the given samples, one per index batch, in order.

        The training loops draw their batches as index lists first and read
        them through this method, so that a data set read from disk
        (:class:`DatasetSamples`) can load the next batches in worker
        processes while the current one trains.

        Parameters
        ----------
        index_batches : sequence of torch.Tensor of int64
            One index tensor per batch.
        device : torch.device
            Where the batches are needed.

        Yields
        ------
        torch.Tensor
        """
        for idx in index_batches:
            yield self.fetch(idx, device)

    def spaced_batches(self, max_samples, device="cpu"):
        """At most ``max_samples`` evenly spaced samples, in batches of about
        :data:`INFERENCE_VALUES` ``["cpu"]`` values.

        Parameters
        ----------
        max_samples : int
            Upper bound.
        device : torch.device or str, default="cpu"

        Returns
        -------
        iterator of torch.Tensor
        """
        step = max(1, -(-len(self) // max_samples))
        order = torch.arange(0, len(self), step)
        return self.stream(order.split(self._value_batch()), torch.device(device))

    def _value_batch(self):
        """Samples per batch holding about ``INFERENCE_VALUES["cpu"]`` values."""
        return max(1, INFERENCE_VALUES["cpu"] // int(np.prod(self.sample_shape)))

    @torch.no_grad()
    def channel_stats(self, batch_size=None):
        """Mean and standard deviation per channel (images) or per column.

        Accumulated in float64 batch by batch, so the whole data set never
        exists in float32 at once.

        Parameters
        ----------
        batch_size : int, optional
            Samples per batch; by default about ``INFERENCE_VALUES["cpu"]``
            values (4096 images of 8 px, 5 of 224 px).

        Returns
        -------
        mean, std : torch.Tensor of float32
            Shape ``(C,)`` for images, ``(d,)`` for rows.
        """
        batch_size = batch_size or self._value_batch()
        dims = (0, 2, 3) if len(self.sample_shape) == 3 else (0,)
        total = sq = None
        count = 0
        cpu = torch.device("cpu")
        for x in self.batches(batch_size, cpu):
            x = x.double()
            s, s2 = x.sum(dim=dims), x.pow(2).sum(dim=dims)
            total = s if total is None else total + s
            sq = s2 if sq is None else sq + s2
            count += x.numel() // s.numel()
        mean = total / count
        var = (sq - count * mean**2).clamp(min=0) / max(1, count - 1)
        return mean.float(), var.sqrt().float()


class _Items(torch.utils.data.Dataset):
    """A user's data set seen as ``(C, H, W)`` arrays (picklable for workers)."""

    def __init__(self, dataset, argname):
        self.dataset, self.argname = dataset, argname

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        from .inputs import as_image_item

        return as_image_item(self.dataset[index], self.argname, index)


def _stack(arrays):
    """DataLoader collate: equal-shape ``(C, H, W)`` arrays to one tensor."""
    first = arrays[0]
    for a in arrays:
        if a.shape != first.shape or a.dtype != first.dtype:
            raise ValueError(
                f"the data set's images differ: one is {first.shape} {first.dtype}, "
                f"another {a.shape} {a.dtype} ((C, H, W)); give every image the "
                "same size and type (e.g. ImageFolderDataset(image_size=...))."
            )
    return torch.from_numpy(np.stack(arrays))


class DatasetSamples(Samples):
    """Samples read from a map-style :class:`torch.utils.data.Dataset` on demand.

    Nothing is loaded up front: every batch reads its items
    (``dataset[i]``), converts them like ``fit``'s arrays
    (:func:`~skspice.inputs.as_image_item`) and drops them after use, so
    memory holds one batch, not the data set. With ``num_workers > 0`` the
    items of the next batches are read in a :class:`~torch.utils.data.DataLoader`'s
    worker processes while the current batch trains.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Map-style (``len`` and ``dataset[i]``); items are images or
        ``(image, target)`` pairs (see :func:`~skspice.inputs.as_image_item`),
        all of one size.
    transform : callable, optional
        As in :class:`Samples`.
    num_workers : int, default=0
        Worker processes reading items; 0 reads them in this process.
    argname : str, default="X"
        Name used in error messages.
    """

    def __init__(self, dataset, transform=None, num_workers=0, argname="X"):
        if len(dataset) == 0:
            raise ValueError(
                f"{argname} is an empty data set; at least one sample is needed."
            )
        self.items = _Items(dataset, argname)
        self.num_workers = int(num_workers)
        super().__init__(None, transform)

    def __len__(self):
        return len(self.items)

    def _raw_batch(self, idx):
        if isinstance(idx, slice):
            idx = range(*idx.indices(len(self)))
        return _stack([self.items[int(i)] for i in idx])

    def place(self, device, share=DEVICE_DATA_SHARE):
        """Data read from disk stays there: nothing is copied to the device.

        Returns
        -------
        bool
            Always False.
        """
        return False

    def stream(self, index_batches, device):
        if self.num_workers <= 0:
            yield from super().stream(index_batches, device)
            return
        loader = torch.utils.data.DataLoader(
            self.items,
            batch_sampler=[idx.tolist() for idx in index_batches],
            num_workers=self.num_workers,
            collate_fn=_stack,
            pin_memory=torch.device(device).type == "cuda",
            # Its own generator: worker seeds must not draw from (and so
            # shift) the global random state the fit is seeded with.
            generator=torch.Generator(),
        )
        for batch in loader:
            yield self._to_device(batch, torch.device(device))


def _available_memory():
    """Bytes of memory available now (Linux's MemAvailable, which counts the
    page cache that can be dropped; else POSIX free pages), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def whole_data_array(shape, dtype=torch.float32, share=None):
    """An uninitialised tensor for a result with one row per sample.

    In memory, unless it would take more than ``share`` (default
    :data:`HOST_ARRAY_SHARE`) of the memory available now: then it is backed
    by a memory-mapped temporary file (already unlinked, so it disappears
    with the array), and the operating system pages it in and out.

    Parameters
    ----------
    shape : tuple of int
    dtype : torch.dtype, default=torch.float32
    share : float, optional
        0 forces a memory map (tests); None uses :data:`HOST_ARRAY_SHARE`.

    Returns
    -------
    torch.Tensor
        On the CPU; its ``numpy()`` is an ``np.memmap`` when memory-mapped.
    """
    share = HOST_ARRAY_SHARE if share is None else share
    nbytes = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
    available = _available_memory()
    if available is None or nbytes <= share * available or nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    with tempfile.TemporaryFile(prefix="skspice-") as f:
        mapped = np.memmap(f, dtype=np_dtype, mode="w+", shape=tuple(shape))
    return torch.from_numpy(mapped)


def as_samples(data):
    """``data`` as :class:`Samples` (tensors are wrapped, Samples pass through).

    Parameters
    ----------
    data : Samples or torch.Tensor

    Returns
    -------
    Samples
    """
    return data if isinstance(data, Samples) else Samples(data)


def release_freed_memory():
    """Return memory that freed tensors left in the C heap to the system.

    glibc keeps freed blocks of up to 32 MiB in its heaps after a large
    tensor is freed (its mmap threshold grows), so between the stages of a
    fit the resident memory holds the high-water mark of every earlier
    stage. ``malloc_trim`` hands those pages back, and the next stage's peak
    starts from what is really in use. Elsewhere (macOS, Windows, musl) this
    does nothing.

    Returns
    -------
    bool
        Whether memory could be trimmed (glibc found).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True

"""Mixed precision: which float type the stages compute in, and how.

``precision`` is one of :data:`PRECISIONS`. Lower precision runs the
forward passes under :func:`torch.autocast` (matrix products and
convolutions in bf16 or fp16, reductions and losses in fp32); the weights,
optimiser state and every stored result stay fp32. fp16 needs a gradient
scaler against underflowing gradients; bf16 has fp32's range and needs none.
"""

import contextlib

import torch

__all__ = [
    "PRECISIONS",
    "autocast",
    "autocast_off",
    "grad_scaler",
    "precision_name",
    "resolve_precision",
]

#: Accepted values of the ``precision`` parameter.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision, device):
    """The autocast dtype for ``precision`` on ``device`` (None for fp32).

    ``"auto"`` is bf16 on CUDA GPUs that support it (Ampere and newer) and
    fp32 elsewhere: on the CPU, bf16 speeds a step up only on processors
    with native bf16 instructions and was not adopted as the default (see
    the user guide).

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
        The requested precision.
    device : torch.device
        Where the stages run.

    Returns
    -------
    torch.dtype or None

    Raises
    ------
    ValueError
        For an unknown name, or bf16 on a GPU without bf16 support.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    cuda = device.type == "cuda"
    if precision == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(
            "precision='bf16' needs a GPU with bf16 support (compute capability "
            "8.0 or newer); use 'fp16' or 'fp32' on this one."
        )
    return _DTYPES[precision]


def precision_name(dtype):
    """The name of an autocast dtype from :func:`resolve_precision`.

    Parameters
    ----------
    dtype : torch.dtype or None

    Returns
    -------
    {"fp32", "bf16", "fp16"}

    Examples
    --------
    >>> import torch
    >>> from skspice.precision import precision_name
    >>> precision_name(None), precision_name(torch.bfloat16)
    ('fp32', 'bf16')
    """
    return next(name for name, d in _DTYPES.items() if d == dtype)


def autocast(device, dtype):
    """Autocast context for ``dtype`` on ``device``; does nothing for None.

    Parameters
    ----------
    device : torch.device
        Where the computation runs.
    dtype : torch.dtype or None
        From :func:`resolve_precision`.

    Returns
    -------
    context manager
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def autocast_off(device_type):
    """A context that turns autocast off for ``device_type`` while it is on.

    Does nothing when autocast is off: torch 2.1 rejects autocast contexts
    for device types it cannot autocast (e.g. ``"mps"``), even disabled ones.

    Parameters
    ----------
    device_type : str
        ``torch.device.type`` of the tensors computed inside.

    Returns
    -------
    context manager
    """
    if _autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _autocast_enabled(device_type):
    """Whether autocast is on for ``device_type``, on torch 2.1 and newer."""
    try:
        return torch.is_autocast_enabled(device_type)  # torch >= 2.4
    except TypeError:
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()


def grad_scaler(device, dtype):
    """A gradient scaler, active only for fp16.

    Parameters
    ----------
    device : torch.device
        Where training runs.
    dtype : torch.dtype or None
        From :func:`resolve_precision`.

    Returns
    -------
    torch.amp.GradScaler
        Disabled (a pass-through) unless ``dtype`` is fp16.
    """
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

"""Pretrained backbone weights: torchvision's weights API and local checkpoints.

* :func:`torchvision_weights` resolves a weights name (``"DEFAULT"``,
  ``"IMAGENET1K_V1"``, ...) of a torchvision model through torchvision's own
  registry, and :func:`torchvision_state_dict` loads it from the torch hub
  cache, downloading only when the file is not there. Without internet the
  error names the file and where to put it by hand.
* :func:`read_checkpoint` reads a local file: a plain state dict or a training
  checkpoint that nests it (``state_dict``, ``model``, ...).
* :func:`select_state` finds the backbone's weights inside a checkpoint of
  another tool: prefixes such as ``module.`` (DataParallel/DDP),
  ``encoder_q.`` (MoCo), ``backbone.`` or ``model.`` are stripped when that
  makes more keys match, and the rest (a key encoder, a queue, a projection
  head) is left out.
* :func:`load_state` loads the result, listing missing and unexpected keys
  and wrong shapes when they do not fit.

Every file is read with ``torch.load(weights_only=True)``: no pickled code
runs.
"""

import os

import torch

__all__ = [
    "CHECKPOINT_PREFIXES",
    "load_state",
    "read_checkpoint",
    "select_state",
    "torchvision_state_dict",
    "torchvision_weights",
]

#: Key prefixes of other tools' checkpoints, tried in this order.
CHECKPOINT_PREFIXES = ("module.", "encoder_q.", "backbone.", "model.", "encoder.")
#: Keys under which training checkpoints nest the weights.
_NESTING_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")


def torchvision_weights(model_name, weights_name):
    """The torchvision weights enum member ``weights_name`` of ``model_name``.

    Parameters
    ----------
    model_name : str
        A torchvision classification model, e.g. ``"resnet50"``.
    weights_name : str
        ``"DEFAULT"`` or one of the model's weights, e.g. ``"IMAGENET1K_V2"``
        (the enum's prefix, as in ``"ResNet50_Weights.IMAGENET1K_V2"``, is
        accepted too).

    Returns
    -------
    torchvision.models.WeightsEnum

    Raises
    ------
    ValueError
        If the model has no weights of that name; the message lists them.
    """
    import torchvision

    enum = torchvision.models.get_model_weights(model_name)
    name = weights_name.rpartition(".")[2]
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        known = ", ".join(["DEFAULT"] + [w.name for w in enum])
        raise ValueError(
            f"backbone_weights={weights_name!r} is not a weights name of "
            f"torchvision's {model_name!r}; known: {known}."
        ) from None


def _hub_path(url):
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def torchvision_state_dict(weights):
    """Load torchvision ``weights`` from the torch hub cache (or download).

    Parameters
    ----------
    weights : torchvision.models.WeightsEnum
        As returned by :func:`torchvision_weights`.

    Returns
    -------
    dict of torch.Tensor

    Raises
    ------
    RuntimeError
        If the file is not cached and cannot be downloaded; the message names
        the URL and the path where the file can be placed by hand.
    """
    path = _hub_path(weights.url)
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # no network, proxy, disk: all end here
        raise RuntimeError(
            f"could not get the weights {weights} ({type(exc).__name__}: "
            f"{str(exc)[:120]}). Without internet, download {weights.url} "
            f"elsewhere and place it at {path}."
        ) from exc


def read_checkpoint(path):
    """Read a state dict of tensors from a local file.

    Parameters
    ----------
    path : str or os.PathLike
        A file saved with ``torch.save``: a state dict, or a checkpoint that
        nests one under ``state_dict``, ``model`` or similar keys.

    Returns
    -------
    dict of torch.Tensor

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file cannot be read or holds no tensors (a short message).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file not found: {path!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"could not read weights from {path!r}: not a file written by "
            f"torch.save with tensors only, or corrupt ({type(exc).__name__})."
        ) from None
    for _ in range(3):  # checkpoints nest at most a couple of levels
        if not isinstance(state, dict):
            break
        nested = [k for k in _NESTING_KEYS if isinstance(state.get(k), dict)]
        if not nested:
            break
        state = state[nested[0]]
    if not isinstance(state, dict) or not any(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{path!r} holds a {type(state).__name__}, not a state dict of tensors."
        )
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _matches(state, target_keys):
    return len(set(state) & target_keys)


def select_state(state, target_keys):
    """The part of ``state`` that belongs to a model with ``target_keys``.

    Tries the sub-dicts under up to three nested prefixes of
    :data:`CHECKPOINT_PREFIXES` (prefixes removed) and keeps the one that
    matches most of ``target_keys``. A MoCo checkpoint
    (``module.encoder_q.conv1.weight``, ``module.encoder_k...``, ``queue``)
    thus becomes the query encoder's weights (``conv1.weight``).

    Parameters
    ----------
    state : dict of torch.Tensor
        Weights read from a checkpoint.
    target_keys : iterable of str
        Keys of the model's own state dict.

    Returns
    -------
    dict of torch.Tensor
    """
    target_keys = set(target_keys)
    best, best_state = _matches(state, target_keys), state
    frontier = [state]
    for _ in range(3):  # e.g. "module." then "encoder_q."
        deeper = []
        for current in frontier:
            for prefix in CHECKPOINT_PREFIXES:
                n = len(prefix)
                sub = {k[n:]: v for k, v in current.items() if k.startswith(prefix)}
                if not sub:
                    continue
                deeper.append(sub)
                matches = _matches(sub, target_keys)
                if matches > best:
                    best, best_state = matches, sub
        frontier = deeper
    return best_state


def load_state(module, state, source, ignored_prefixes=(), strict=True):
    """Load ``state`` into ``module``, or explain why it does not fit.

    Parameters
    ----------
    module : torch.nn.Module
        The model.
    state : dict of torch.Tensor
        Its weights (after :func:`select_state`).
    source : str
        Where the weights came from, for messages.
    ignored_prefixes : tuple of str, default=()
        Keys of layers the backbone dropped (a classifier), left out.
    strict : bool, default=True
        Require the keys to match exactly; otherwise load the common keys.

    Raises
    ------
    ValueError
        Listing missing and unexpected keys, or keys of the wrong shape.
    """
    state = {k: v for k, v in state.items() if not k.startswith(ignored_prefixes)}
    target = module.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))

    def few(keys):
        return f"{keys[:8]}{f' and {len(keys) - 8} more' if len(keys) > 8 else ''}"

    if strict and (missing or unexpected):
        raise ValueError(
            f"weights from {source} do not fit the backbone: missing keys "
            f"{few(missing)}, unexpected keys {few(unexpected)}."
        )
    common = set(state) & set(target)
    bad = sorted(k for k in common if tuple(state[k].shape) != tuple(target[k].shape))
    if bad:
        detail = ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in bad[:5]
        )
        raise ValueError(
            f"weights from {source} have the wrong shape (file vs backbone): {detail}."
        )
    module.load_state_dict({k: state[k] for k in common}, strict=strict)

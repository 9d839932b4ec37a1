"""``--param KEY=VALUE`` parsing shared by the benchmark scripts."""

import ast

__all__ = ["parse_params"]


def parse_params(items, reserved=None):
    """Parse ``KEY=VALUE`` strings into SPICEClustering keyword arguments.

    Parameters
    ----------
    items : list of str
        ``KEY=VALUE`` pairs. Values are read with :func:`ast.literal_eval`
        (numbers, tuples, ``None``, quoted strings ...) and kept as plain
        strings when that fails (``device=cuda``, ``feature_epochs=auto``).
    reserved : dict, default=None
        Keys the calling script sets itself, each mapped to where it comes
        from (e.g. ``{"random_state": "--seed"}``); they are refused.

    Returns
    -------
    params : dict
        Later pairs override earlier ones.

    Raises
    ------
    ValueError
        If an item has no ``=``, the key is not an identifier, or the key is
        in ``reserved``.
    """
    reserved = reserved or {}
    params = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}.")
        if key in reserved:
            raise ValueError(
                f"--param {key}=... is not allowed: the script sets it from "
                f"{reserved[key]}."
            )
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = raw
        params[key] = value
    return params

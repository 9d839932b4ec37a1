"""The API reference (docs/api.rst) lists every public name of the package."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import skspice

API_RST = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def _documented():
    """``(module, name)`` of every autosummary entry in docs/api.rst."""
    entries, module, in_block = set(), None, False
    for line in API_RST.read_text().splitlines():
        if m := re.match(r"\.\. currentmodule:: (\S+)", line):
            module, in_block = m[1], False
        elif line.startswith(".. autosummary::"):
            in_block = True
        elif in_block and (m := re.match(r"   ([A-Za-z_]\w*)\s*$", line)):
            entries.add((module, m[1]))
        elif line and not line.startswith(" "):
            in_block = False
    return entries


def _public_modules():
    yield skspice
    for info in pkgutil.walk_packages(skspice.__path__, "skspice."):
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # needs an optional extra that is not installed
            continue


def test_api_reference_lists_every_public_name():
    # Objects, not names: skspice.SPICEClustering documents the class that
    # skspice.estimator defines, and skspice.stages re-exports its modules'.
    documented = [
        getattr(importlib.import_module(module), name) for module, name in _documented()
    ]
    missing = []
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            if name == "__version__":
                continue
            if not any(getattr(module, name) is obj for obj in documented):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"add to docs/api.rst: {missing}"


@pytest.mark.parametrize("module, name", sorted(_documented()))
def test_api_reference_entries_exist(module, name):
    assert hasattr(importlib.import_module(module), name)

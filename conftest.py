"""pytest configuration shared by the tests and the doctests of ``skspice``.

``--doctest-modules`` (pyproject.toml) runs every docstring example of the
package; examples that need an optional extra are left out where that extra
is not installed.
"""

from importlib.util import find_spec

# Module file -> the optional package its examples need.
_OPTIONAL_DOCTESTS = {
    "skspice/plotting.py": "matplotlib",
}

collect_ignore = [
    path for path, package in _OPTIONAL_DOCTESTS.items() if find_spec(package) is None
]

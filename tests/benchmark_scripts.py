"""Load the scripts of ``benchmarks/`` as modules, by path.

By path, so the tests work with ``pytest`` and ``python -m pytest`` alike.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark_script(name):
    """Import ``benchmarks/<name>.py`` as ``skspice_benchmarks_<name>``."""
    spec = importlib.util.spec_from_file_location(
        f"skspice_benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

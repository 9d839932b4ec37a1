"""Sphinx configuration of the skspice documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(what ``.ci/run`` runs). The markdown pages (``benchmarks.md``,
``design.md``) are read by myst-parser so that they stay the single source.
"""

import inspect
import os
import re
import sys

# Document the working tree, not an installed copy.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import skspice  # noqa: E402

project = "skspice"
author = "skspice developers"
copyright = "skspice developers, BSD-3-Clause"
version = release = skspice.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    # Included by choosing.rst, not a page of its own.
    "n_clusters.md",
]

# -- autodoc / autosummary ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
# Show signatures as written (default values such as ``"auto"``).
autodoc_preserve_defaults = True

# -- numpydoc ----------------------------------------------------------------
# Members are listed by autodoc (scikit-learn style), not by numpydoc.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Every documented object must have a docstring; with ``-W`` a missing one
# fails the build.
numpydoc_validation_checks = {"GL08"}


def _inherited_docstring_methods():
    """Methods that implement a documented base-class method without a docstring.

    The stages implement :class:`skspice.training.Stage`'s hooks; autodoc shows
    the base class's docstring for them (``autodoc_inherit_docstrings``), so
    they are documented, but numpydoc validates the raw ``__doc__``.
    """
    import importlib
    import pkgutil

    names = set()
    for info in pkgutil.walk_packages(skspice.__path__, "skspice."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra is missing
            continue
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == info.name):
                continue
            for attr, member in vars(cls).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                if member.__doc__:
                    continue
                # The nearest base defining ``attr``: documented, and ours.
                base = next((b for b in cls.__mro__[1:] if attr in vars(b)), None)
                if (
                    base is not None
                    and base.__module__.startswith("skspice.")
                    and getattr(vars(base)[attr], "__doc__", None)
                ):
                    qualname = f"{info.name}.{cls.__qualname__}.{attr}"
                    names.add(rf"^{re.escape(qualname)}$")
    return names


numpydoc_validation_exclude = _inherited_docstring_methods()

# -- myst --------------------------------------------------------------------
# Anchors for ``file.md#section`` links and headings within the md pages.
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skspice {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
# The left sidebar lists a page's sub-pages; only the API reference has them.
html_sidebars = {
    page: [] for page in ("index", "user_guide", "choosing", "benchmarks", "design")
}


def _skip_torch_hooks(app, what, name, obj, skip, options):
    """Leave out ``forward``/``extra_repr`` of our torch modules.

    They have no docstring of their own (calling the module is the API), and
    autodoc would otherwise show torch's generic text for them.
    """
    if what == "class" and name in ("forward", "extra_repr"):
        if inspect.isfunction(obj) and obj.__doc__ is None:
            return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_torch_hooks)

"""Sphinx configuration of the poetml documentation (built by .ci/run with -W)."""

from __future__ import annotations

import datetime
import importlib.metadata
import sys
import types

project = "poetml"
author = "poetml developers"
copyright = f"2026-{max(2026, datetime.date.today().year)}, poetml developers"
release = importlib.metadata.version("poetml")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # MyST Markdown (it loads myst_parser) and the tutorial notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]

# .rst first: autosummary writes its generated pages with the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**/.ipynb_checkpoints",
    "tutorials/tutorial-data/**",  # what the notebooks generate when they run
]
templates_path = ["_templates"]

# MyST: ```{directive} fences, $ maths off, anchors for ## and ### headings
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Tutorial notebooks are rendered with the outputs stored in them, never executed here:
# .ci/run executes them once, as tests (pytest --nbmake docs/tutorials).
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell for what it printed

# autosummary imports every submodule to list it; importing poetml.__main__ would run the CLI
sys.modules.setdefault("poetml.__main__", types.ModuleType("poetml.__main__"))

# API reference: one page per public module (autosummary templates in _templates/)
autosummary_generate = True
autosummary_ignore_module_all = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Annotations naming a class imported only for type checking stay strings; a name that two
# modules offer (a class and its re-export) would be an ambiguous reference, so name its home.
autodoc_type_aliases = {
    "ReadingConfig": "poetml.reading.ReadingConfig",
    "ShardWriter": "poetml.datasets.hdf5.ShardWriter",
}
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
# No autodoc_mock_imports: every dependency is installable (pip install ".[all,docs]").

html_theme = "furo"
html_title = f"poetml {release}"
html_static_path: list[str] = []

# Modules left out of the API reference (none at present); the template
# _templates/autosummary/module.rst skips them.
api_excluded: list[str] = []


def _reexported_exceptions() -> dict[str, list[str]]:
    """Per module, the exceptions of poetml.exceptions its ``__all__`` re-exports: every
    exception is documented once, on the poetml.exceptions page."""
    import importlib
    import pkgutil

    import poetml
    import poetml.exceptions

    names = set(poetml.exceptions.__all__)
    out: dict[str, list[str]] = {}
    for info in pkgutil.walk_packages(poetml.__path__, "poetml."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.name == "poetml.exceptions":
            continue
        module = importlib.import_module(info.name)
        hidden = sorted(names.intersection(getattr(module, "__all__", ())))
        if hidden:
            out[info.name] = hidden
    return out


autosummary_context = {"api_excluded": api_excluded, "api_hidden": _reexported_exceptions()}

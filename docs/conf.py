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
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# MyST: ```{directive} fences, $ maths off, anchors for ## and ### headings
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autosummary imports every submodule to list it; importing poetml.__main__ would run the CLI
sys.modules.setdefault("poetml.__main__", types.ModuleType("poetml.__main__"))

# API reference: one page per public module (autosummary templates in _templates/)
autosummary_generate = True
autosummary_ignore_module_all = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
# No autodoc_mock_imports: every dependency is installable (pip install ".[all,docs]").

html_theme = "furo"
html_title = f"poetml {release}"
html_static_path: list[str] = []

# Modules left out of the API reference (public, but their docstrings are not valid
# reStructuredText yet); the template _templates/autosummary/module.rst skips them.
api_excluded: list[str] = ["poetml.firmware"]
autosummary_context = {"api_excluded": api_excluded}

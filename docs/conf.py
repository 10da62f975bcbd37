"""Sphinx configuration of the nndynamics documentation.

Build from the repository root (``pip install -e ".[docs]"`` first)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery (``examples/*.py``) runs at build time: each script trains or loads a small run
and its last expression is a scene's player (``Scene.show``), which sphinx-gallery embeds
from ``_repr_html_``. A script whose source has not changed since the last build is not run
again (sphinx-gallery keeps an md5 of it beside its page).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NNDYNAMICS_PROGRESS", "0")  # no progress bars in the pages

project = "nndynamics"
author = "the nndynamics authors"
copyright = "2026, the nndynamics authors"
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "nndynamics"
html_static_path = ["_static"]
templates_path = ["_templates"]
html_css_files = ["nndynamics.css"]
html_show_sourcelink = False

# -- API reference -----------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- the gallery -------------------------------------------------------------------------


sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "examples")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|/_",
    "image_scrapers": ("nndynamics_docs.scene_scraper", "matplotlib"),
    "capture_repr": ("_repr_html_",),
    "ignore_repr_types": r"matplotlib|Recording|Path",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "min_reported_time": 1,
    "within_subsection_order": "nndynamics_docs.gallery_order",
    "reset_modules": ("matplotlib",),
}

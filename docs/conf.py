"""Sphinx configuration of the skkgp documentation.

Built in CI with ``python -m sphinx -W --keep-going -b html -q docs docs/_build/html``:
every warning is an error, the examples of the gallery are executed, and nothing is
fetched from the network (no intersphinx inventories).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import matplotlib

# The gallery executes the examples in this process; no display on a build machine.
matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout, when skkgp is not installed

import torch  # noqa: E402

import skkgp  # noqa: E402

# The gallery's networks are tiny: a second thread buys nothing and, on a busy 2-core
# build machine, threads that spin waiting for each other cost several times the work.
torch.set_num_threads(1)

# -- Project ------------------------------------------------------------------------
project = "skkgp"
author = "skkgp developers"
copyright = "skkgp developers, BSD-3-Clause"  # noqa: A001
release = skkgp.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions ---------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"
# Unresolved cross-references to third-party objects (torch, skorch...) stay plain
# text: there are no intersphinx inventories without network access.
nitpicky = False

# -- autodoc / autosummary ----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    # skorch's and scikit-learn's own methods are documented by those projects; their
    # docstrings are not all numpydoc, so they would break a build with -W.
    "inherited-members": False,
    "show-inheritance": False,
}
autodoc_typehints = "none"  # the numpydoc sections carry the types, with shapes
autoclass_content = "class"
autodoc_member_order = "groupwise"

# -- numpydoc -----------------------------------------------------------------------
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
# Validation is done by tests/test_docstrings.py on skkgp's public names only.
numpydoc_validation_checks: set[str] = set()

# -- sphinx-gallery -----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("skkgp",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skkgp": None},
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "show_memory": False,
    "min_reported_time": 1,
}

# -- HTML ---------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skkgp {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "install": [], "auto_examples/index": []}
html_show_sourcelink = False
html_static_path: list[str] = []

# No progress bars in the executed examples' captured output (tqdm reads TQDM_* defaults
# from the environment), and no matplotlib notice that Agg figures cannot be shown.
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore", category=UserWarning, message=".*non-interactive.*")

# numpydoc's "References" sections list sources without citing each one in the text.
suppress_warnings = ["ref.citation"]


def _skip_generated_members(app, what, name, obj, skip, options):
    """Skip the ``set_*_request`` methods scikit-learn generates on every estimator.

    They are documented in scikit-learn's metadata-routing guide; their docstrings link
    to labels that exist only in scikit-learn's documentation.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_generated_members)

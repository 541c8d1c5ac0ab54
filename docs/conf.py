"""Sphinx configuration of the approxmat documentation.

Build with ``bash docs/build.sh`` (or ``sphinx-build -W --keep-going -b html docs
docs/_build/html``) in an environment where approxmat is installed and
``docs/requirements.txt`` is installed. The build runs offline: links into NumPy's
and Python's documentation (intersphinx) are made only when
``APPROXMAT_DOCS_INTERSPHINX=1`` is set, because fetching their inventories needs
the network.
"""

import os
import pathlib
import runpy
import sys

import approxmat

HERE = pathlib.Path(__file__).resolve().parent

# -- Figures and tables made at build time, from scripts in docs/scripts/ ----------
GENERATED = HERE / "_generated"
GENERATED.mkdir(exist_ok=True)
for script in ("how_it_works.py", "perf_tables.py", "error_table.py"):
    runpy.run_path(str(HERE / "scripts" / script), run_name="__main__")

# -- Project ------------------------------------------------------------------------
project = "approxmat"
author = "approxmat developers"
copyright = "approxmat developers"
release = approxmat.__version__
version = ".".join(release.split(".")[:2])

# Names documented under ``approxmat.`` that the package does not (yet) export at
# the top level: document them where users meet them.
for _name, _module in (("LevelInfo", "approxmat._matrix"), ("Config", "approxmat._config")):
    if not hasattr(approxmat, _name):
        setattr(approxmat, _name, getattr(sys.modules[_module], _name))
        getattr(approxmat, _name).__module__ = "approxmat"

# The examples of the pages (a ```python block after <!-- example -->) run at build
# time, and what they print is shown below them: docs/scripts/run_examples.py.
sys.path.insert(0, str(HERE / "scripts"))

extensions = [
    "run_examples",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated/*.md", "requirements.txt", "scripts", "data",
                    "_templates"]
# _templates/autosummary/class-no-members.rst: a class page without the members of its
# base (WeightsChunk, an ndarray).
templates_path = ["_templates"]

# -- Markdown (MyST) ----------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# -- API reference ------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False
numpydoc_xref_param_type = False

# -- Links into other projects: only with the network ------------------------------
if os.environ.get("APPROXMAT_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "threadpoolctl": ("https://threadpoolctl.readthedocs.io/en/latest/", None),
    }
else:
    intersphinx_mapping = {}

# -- HTML ---------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"approxmat {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path = []
html_show_sourcelink = False

"""Sphinx configuration for the procurement pickup platform's documentation."""

import os
import sys
from pathlib import Path

# The repository root, so that autodoc imports the project's own modules.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Local extensions: tables drawn from the code (``_ext/platform_tables.py``).
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

# Autodoc imports the Celery task modules, which import models: Django must be set up first.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "procurement_system.settings")

import django  # noqa: E402

django.setup()

# -- Project information -----------------------------------------------------------------------

project = "Procurement pickup platform"
author = "The procurement pickup platform team"
copyright = "the procurement pickup platform team"

# -- General configuration ---------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "platform_tables",
    "openapi_page",
    "diagrams",
    "link_check",
    "asyncapi_doc",
]
# Documents Celery tasks with ``.. autotask::`` and gives them a ``(task)`` prefix.
extensions += ["celery.contrib.sphinx"]
# Sphinx 9 rewrote autodoc; the Celery task documenter needs the class-based implementation.
autodoc_use_legacy_class_based = True
celery_task_prefix = "(task) "

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

exclude_patterns = ["_build"]
templates_path: list[str] = []
root_doc = "index"
language = "en"
pygments_style = "sphinx"
pygments_dark_style = "monokai"

# -- HTML output -------------------------------------------------------------------------------

html_theme = "furo"
html_title = "Procurement pickup platform"
html_static_path: list[str] = []

# -- Diagrams ----------------------------------------------------------------------------------

# Graphviz renders every diagram at build time, locally (the ``dot`` program; no network).
graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=Helvetica", "-Nfontname=Helvetica", "-Efontname=Helvetica"]

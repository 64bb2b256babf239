# Sphinx configuration of Snapmanager's release notes, written with reno
# (releasenotes/notes/*.yaml, `reno new <slug>`). The test command builds
# them with warnings as errors (tests/unit/test_docs.py).

project = "Snapmanager Release Notes"
copyright = "Snapmanager developers"
extensions = ["reno.sphinxext"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
html_theme = "alabaster"

# Sphinx configuration of Snapmanager's documentation. The test command
# builds it with warnings as errors (tests/unit/test_docs.py).

project = "Snapmanager"
copyright = "Snapmanager developers"
extensions = []
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = []
html_theme = "alabaster"
# The API reference is the OpenAPI file beside this tree; the docs link to
# it rather than render it.
nitpicky = False

"""Sphinx extension: what the site needs beyond the theme, for every reader.

- ``_static/sidebar-toggle.js``: the sidebar toggles work (pydata-sphinx-theme issue 2451)
- ``_static/course.css``: long outputs wrap, animations as wide as figures, print styles
- formulas are not tab stops (MathJax's menu setting ``inTabOrder``; the menu stays), except
  display formulas too wide for the column (``_static/wide-formulas.js``: they scroll)
- the bibliography is a list of list items for screen readers (docutils writes
  ``role="list"`` around entries with the deprecated ``role="doc-biblioentry"``)
- math in bibliography entries (``{$O(1/k^2)$}`` in a BibTeX title) is typeset
- progress bars of ``sgdkit.train.fit`` print one final line in the executed pages (the
  kernels inherit ``SGDKIT_PROGRESS=final``); live bars stay in Jupyter
"""

import os
import re
from pathlib import Path

from docutils import nodes

STATIC = Path(__file__).resolve().parent.parent / "_static"
MATH = re.compile(r"\$([^$]+)\$")


def _static_files(app):
    app.config.html_static_path.append(str(STATIC))


def _mathjax_not_in_tab_order(app, config):
    mathjax = dict(config.mathjax3_config or {})
    options = mathjax.setdefault("options", {})
    options.setdefault("menuOptions", {}).setdefault("settings", {})["inTabOrder"] = False
    config.mathjax3_config = mathjax


def _bibliography_math(app, doctree, docname):
    """``$...$`` in a citation's text becomes a math node (sphinxcontrib-bibtex keeps it raw)."""
    found = False
    for citation in doctree.findall(nodes.citation):
        for text in list(citation.findall(nodes.Text)):
            parts = MATH.split(str(text))
            if len(parts) == 1 or isinstance(text.parent, (nodes.math, nodes.literal)):
                continue
            pieces = [nodes.math(part, part) if i % 2 else nodes.Text(part)
                      for i, part in enumerate(parts) if part]
            text.parent.replace(text, pieces)
            found = True
    if found:  # Sphinx loads MathJax only on pages it knows have math
        app.env.get_domain("math").data["has_equations"][docname] = True


def _bibliography_roles(app, pagename, templatename, context, doctree):
    if "doc-biblioentry" in context.get("body", ""):
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


def setup(app):
    os.environ.setdefault("SGDKIT_PROGRESS", "final")  # before any notebook executes
    app.connect("builder-inited", _static_files)
    app.connect("config-inited", _mathjax_not_in_tab_order)
    app.connect("doctree-resolved", _bibliography_math)
    app.connect("html-page-context", _bibliography_roles)
    app.add_js_file("sidebar-toggle.js")
    app.add_js_file("wide-formulas.js")
    app.add_css_file("course.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}

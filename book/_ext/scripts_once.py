"""Sphinx extension: include each page script once.

sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) every time
Sphinx fires ``env-before-read-docs``, which Jupyter Book 1 fires more than once in a build; the
second copy makes browsers log "Identifier 'THEBE_JS_URL' has already been declared" on every
page. Dropping exact duplicates from the page's script list fixes it and changes nothing else.
"""


def _once(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        if script not in seen:  # equal: same file (or None), priority and attributes (the body)
            seen.add(script)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def setup(app):
    app.connect("html-page-context", _once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

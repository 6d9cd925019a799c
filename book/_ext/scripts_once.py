"""Sphinx extension: include each page script once.

sphinx-thebe and sphinx-togglebutton add their inline configuration scripts (``const
THEBE_JS_URL = ...``) once with ``filename=None`` and once more, later in the build, with
``filename=''``; Sphinx sees two different scripts and the page runs both, so browsers log
"Identifier 'THEBE_JS_URL' has already been declared" on every page. This drops the second copy
of any script with the same file (None and '' alike), priority and attributes (the body).
"""


def _key(script):
    attributes = getattr(script, "attributes", {})
    return (getattr(script, "filename", script) or None, getattr(script, "priority", 0),
            tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _once(app, pagename, templatename, context, doctree):
    if "script_files" not in context:
        return
    seen, unique = set(), []
    for script in context["script_files"]:
        if _key(script) not in seen:
            seen.add(_key(script))
            unique.append(script)
    context["script_files"][:] = unique


def setup(app):
    # late: other handlers add page scripts to the context first
    app.connect("html-page-context", _once, priority=990)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Jupyter server settings for the course's venv (`make student-jupyter` copies this file to
.venv/etc/jupyter/, where every `jupyter lab` / `jupyter notebook` of the venv reads it).

MathJax's fonts in Notebook 7 after JupyterLab (or the reverse) were refused with 403:
jupyter_server's FileFindHandler caches where it found a static file by the file's *name*
only, for every app at once. JupyterLab and Notebook 7 ship the same MathJax font names
(``1a10595a47bb3cf2.woff``) in different folders, so once one app served a font the other
looked it up in the first app's folder and refused it as "not in root static directory".
Looking the file up again each time costs a few stat calls.
"""

from jupyter_server.base.handlers import FileFindHandler

_find = FileFindHandler.get_absolute_path.__func__


def _find_in_own_roots(cls, roots, path):
    with cls._lock:
        cls._static_paths.pop(path, None)  # a path cached for another app's roots
    return _find(cls, roots, path)


FileFindHandler.get_absolute_path = classmethod(_find_in_own_roots)

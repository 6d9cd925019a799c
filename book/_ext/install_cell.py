"""Put the "install sgdkit if it is missing" cell first in every notebook.

A chapter or a student notebook opened in Colab, on Binder or as a downloaded file has no
``sgdkit``. Its first code cell installs it, pinned to the release the site was built from
(``v<version>`` of ``pyproject.toml``, a git tag), from the repository URL set in one place,
``_config.yml``'s ``repository.url``. Where ``sgdkit`` is importable (the course's venv, the
grader) the cell does nothing.

    python book/_ext/install_cell.py            # add or update the cell in every notebook
    python book/_ext/install_cell.py --check    # exit 1, listing notebooks without it
    python book/_ext/install_cell.py PATH...    # only these notebooks

Notebooks: ``book/*.ipynb`` and the nbgrader sources ``solutions/*/*.ipynb`` (``make
exercises`` then carries the cell into the student versions). The cell is tagged
``remove-cell``: the site's readers need not see it. ``SGDKIT_INSTALL_URL`` replaces the
URL; only the tests set it, to install from a local clone with no network.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
CELL_ID = "install-sgdkit"
TEMPLATE = '''\
# In Colab, on Binder or in a downloaded copy: install sgdkit, the course's helpers.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("sgdkit") is None:
    _url = "{url}"
    _url = os.environ.get("SGDKIT_INSTALL_URL", _url)  # set by the course's tests only
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"sgdkit @ {{_url}}"],
                   check=True)'''


def release_url(root: Path = ROOT) -> str:
    """``git+<repository.url>@v<version>``: the tagged release of this version."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    version = re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    return f"git+{config['repository']['url'].rstrip('/')}@v{version.group(1)}"


def cell_source(root: Path = ROOT) -> str:
    return TEMPLATE.format(url=release_url(root))


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted([*root.glob("book/*.ipynb"), *root.glob("solutions/*/*.ipynb")])


def _is_install_cell(cell) -> bool:
    return cell.get("id") == CELL_ID or cell.metadata.get("sgdkit") == "install"


def _first_code_cell(nb) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)


def has_current_cell(nb, source: str) -> bool:
    """True when the first code cell is the install cell with exactly ``source``."""
    i = _first_code_cell(nb)
    return i is not None and _is_install_cell(nb.cells[i]) and nb.cells[i].source == source


def add_cell(nb, source: str) -> bool:
    """Make the install cell the first code cell of ``nb`` (in place); True if it changed."""
    if has_current_cell(nb, source):
        return False
    nb.cells = [c for c in nb.cells if not _is_install_cell(c)]  # an old or misplaced one
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell"],
                                                       "sgdkit": "install"})
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):  # cell ids: a fixed one, no churn
        cell["id"] = CELL_ID
    else:
        cell.pop("id", None)
    first = _first_code_cell(nb)
    nb.cells.insert(len(nb.cells) if first is None else first, cell)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a "
                        "notebook lacks the current cell")
    args = parser.parse_args(argv)
    source = cell_source()
    stale = []
    for path in args.paths or notebooks():
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if not has_current_cell(nb, source):
                stale.append(path)
        elif add_cell(nb, source):
            nbformat.write(nb, path)
            print(f"install cell written: {path}")
    if stale:
        print("notebooks without the current install cell (run python "
              "book/_ext/install_cell.py):\n  " + "\n  ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Static checks on the committed notebooks (nbval executes them: see the Makefile's `test`)."""

import re

import nbformat
import pytest
import yaml

from conftest import ROOT, notebooks

BOOK = notebooks("book")
SOURCES = notebooks("book", "solutions", "exercises")


def rel(path):
    return str(path.relative_to(ROOT))


def toc_files() -> list[str]:
    """Every `file:` entry of _toc.yml, in order, without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    return files


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (
        f"{rel(path)} carries outputs in cells {dirty}: clear them before committing "
        f"(jupyter nbconvert --clear-output --inplace {rel(path)})")


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_valid_notebook_with_python3_kernel(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{rel(path)}: kernelspec name should be 'python3' so every Jupyter runs it")


@pytest.mark.parametrize("path", BOOK, ids=rel)
def test_chapter_title_and_toc(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    number = int(path.name[:2])
    assert first.cell_type == "markdown" and re.match(rf"# {number}\. \S", first.source), (
        f"{rel(path)} should open with a title cell '# {number}. Title', got {first.source[:40]!r}")
    assert rel(path).removesuffix(".ipynb") in toc_files(), f"{rel(path)} is missing from _toc.yml"


def test_toc_entries_exist():
    missing = [f for f in toc_files()
               if not any((ROOT / (f + ext)).exists() for ext in (".ipynb", ".md"))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_exercise_is_in_the_site():
    listed = set(toc_files())
    for path in notebooks("exercises"):
        assert rel(path).removesuffix(".ipynb") in listed, f"{rel(path)} is not in _toc.yml"

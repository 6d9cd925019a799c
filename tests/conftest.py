"""Shared paths and helpers for the test suite."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebooks(*folders: str) -> list[Path]:
    """Every committed .ipynb under the given top-level folders, sorted."""
    found = []
    for folder in folders:
        found += [p for p in (ROOT / folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


# The longest module (both editions of the site built, every page checked in Chromium) goes
# first: pytest -n hands out modules in this order, and started last it would run alone at the
# end while the other worker idles.
FIRST = ("test_site.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in FIRST)  # stable: the rest keep their order

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

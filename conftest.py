"""Test distribution for `make test` (pytest -n 2 --dist loadgroup).

Each notebook's cells must run in order in one kernel, and a test module's expensive
module-scoped fixtures (the built site) must be built once: so by default every item is
grouped with the others of its file and one worker runs the file. A test module whose tests are
independent of each other and slow (each runs nbgrader in its own temp directory) sets
`XDIST_SPREAD = True` to let its tests spread over the workers.
"""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and getattr(module, "XDIST_SPREAD", False):
            continue
        item.add_marker(pytest.mark.xdist_group(str(item.path)))

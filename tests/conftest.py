"""Shared test configuration.

`make test` runs the suite on parallel workers (pytest-xdist, `--dist loadgroup`). Each
test module stays on one worker, so its module-scoped fixtures (most e2e modules build an
image once and assert on it many times) are made once; the tests that share the session's
builds (tests/e2e/builds.py, the `build` fixture) go to one worker together, so each of
those builds runs once.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.iter_markers("xdist_group")):
            continue
        group = "shared-builds" if "build" in getattr(item, "fixturenames", ()) \
            else f"{item.path.parent.name}/{item.path.stem}"
        item.add_marker(pytest.mark.xdist_group(group))

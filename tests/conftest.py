"""Shared test configuration.

`make test` runs the suite on parallel workers (pytest-xdist, `-n`). Tests go to workers
by group (pytest_xdist_make_scheduler below): a test module stays on one worker, so its
module-scoped fixtures (most e2e modules build an image once and assert on it many
times) are made once; the modules that share the session's builds (tests/e2e/builds.py,
the `build` fixture) run on one worker together, so each of those builds runs once; the
modules that install this repository (pip into fresh venvs, `make image` building its
wheels and minify:latest) run one after another on one worker, as concurrent builds of
one source tree and one image tag collide.
"""

from __future__ import annotations

_GROUPS = {
    "shared-builds": ("test_app_shapes", "test_closure", "test_probe_shapes",
                      "test_report_contract", "test_verify"),
    "repo-installs": ("test_action", "test_ci", "test_doctor", "test_gitlab_template",
                      "test_setup"),
}
_GROUP_OF = {f"tests/e2e/{module}.py": group
             for group, modules in _GROUPS.items() for module in modules}


def group_of(nodeid: str) -> str:
    """The worker group of a test: its module's, or the group its module belongs to."""
    path = nodeid.split("::", 1)[0]
    return _GROUP_OF.get(path, path)


def pytest_xdist_make_scheduler(config, log):
    # xdist's own `--dist loadgroup` (xdist_group marks) does not group anything with
    # pytest 9 here (checked with explicit marks); its scope scheduler with our scopes does.
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


def pytest_sessionfinish(session, exitstatus):
    # Every process that imported the e2e helpers made their temp directories: xdist's
    # controller too (it collects), where the e2e session fixture that removes them does
    # not run.
    import sys

    helpers = sys.modules.get("tests.e2e.helpers")
    if helpers is not None:
        import shutil

        shutil.rmtree(helpers.TMP, ignore_errors=True)
        shutil.rmtree(helpers.CACHE, ignore_errors=True)

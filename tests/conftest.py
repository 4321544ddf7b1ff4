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

import pytest

_DANGLING_BEFORE = pytest.StashKey[set]()

_GROUPS = {
    "shared-builds": ("test_app_shapes", "test_closure", "test_probe_shapes",
                      "test_report_contract", "test_verify"),
    "repo-installs": ("test_action", "test_ci", "test_doctor", "test_gitlab_template",
                      "test_setup"),
}
_GROUP_OF = {f"tests/e2e/{module}.py": group
             for group, modules in _GROUPS.items() for module in modules}


def _remove_new_dangling(before) -> None:
    """The untagged images of ours that this session left (dozens of MB each, on every
    run), once every worker has ended; those there before the session are not touched."""
    if before is None:
        return
    import docker

    c = docker.from_env(timeout=60)
    for image_id in _dangling_ours() - before:
        try:
            c.api.remove_image(image_id)
        except docker.errors.APIError:
            pass  # still used by a container, or removed meanwhile


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


# Labels of the images the tests make: minify's outputs, and the images built from this
# repository's recipes (the sandbox, `make image`'s minify:latest).
_OUR_IMAGES = ("minify.source.id", "minify.recipe")


def _dangling_ours() -> set[str]:
    """Untagged images the tests' kind of build leaves: an output built again under its
    tag, minify:latest rebuilt from changed sources. Empty when no engine answers."""
    try:
        import docker

        c = docker.from_env(timeout=30)
        found = c.api.images(filters={"dangling": True})
    except Exception:  # noqa: BLE001 - no engine: make test-unit
        return set()
    return {i["Id"] for i in found if set(i.get("Labels") or {}) & set(_OUR_IMAGES)}


def _controller(config) -> bool:
    """The process that runs the session as a whole: xdist's controller, or pytest alone."""
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session):
    if _controller(session.config):
        session.config.stash[_DANGLING_BEFORE] = _dangling_ours()


def pytest_sessionfinish(session, exitstatus):
    if _controller(session.config):
        _remove_new_dangling(session.config.stash.get(_DANGLING_BEFORE, None))
    # Every process that imported the e2e helpers made their temp directories: xdist's
    # controller too (it collects), where the e2e session fixture that removes them does
    # not run.
    import sys

    helpers = sys.modules.get("tests.e2e.helpers")
    if helpers is not None:
        import shutil

        shutil.rmtree(helpers.TMP, ignore_errors=True)
        shutil.rmtree(helpers.CACHE, ignore_errors=True)

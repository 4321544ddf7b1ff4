"""Fixtures for end-to-end tests: a real engine and the sandbox images.

Nothing is started here beyond what `make test` already ensured: an engine that does
not answer, or a missing sandbox image, fails the test loudly instead of skipping.
"""

from __future__ import annotations

import os

import docker
import pytest

from . import builds, helpers

SANDBOX = {
    name: f"minify-sandbox/{name}:latest"
    for name in ("nginx", "python", "busybox", "jq", "quirks", "nolisten", "crash", "java",
                 "node", "musl", "tools", "mistakes", "confine", "headless", "untyped",
                 "jsonapi", "mixed", "layers", "postgres", "redis", "health", "oneshot",
                 "mountconf", "netpeer", "lifecycle")
}


def pytest_collection_modifyitems(config, items):
    """Every test under tests/e2e is an e2e test (needs the engine and the sandbox), so
    `pytest -m "not e2e"` (make test-unit) is the fast engine-free suite."""
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=300)
        c.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no Docker engine answers ({exc}): run `make engine` (make test does)")
    for ref in SANDBOX.values():
        try:
            c.images.get(ref)
        except docker.errors.ImageNotFound:
            pytest.fail(f"sandbox image {ref} is missing: run `make sandbox` (make test does)")
    return c


def minify_containers(client, pids) -> set[str]:
    """Containers made by minify processes with these pids (the label `minify.pid`).

    The low-level list does not inspect each container, so it cannot race a removal;
    filtering on our own pids keeps another minify on the same engine out of it.
    """
    found = client.api.containers(all=True, filters={"label": "minify.run"})
    return {c["Id"] for c in found if (c.get("Labels") or {}).get("minify.pid") in pids}


@pytest.fixture(autouse=True)
def no_leftovers(request):
    """Every e2e test must leave no container behind, whether it ran minify in-process
    or as a subprocess (helpers.minify records the pids it starts)."""
    if "client" not in request.fixturenames:
        yield
        return
    c = request.getfixturevalue("client")
    helpers.STARTED.clear()
    yield
    pids = {str(os.getpid()), *(str(p) for p in helpers.STARTED)}
    left = minify_containers(c, pids)
    for cid in left:
        try:
            c.api.remove_container(cid, force=True)
        except docker.errors.APIError:
            pass
    assert not left, f"containers left behind: {sorted(left)}"


@pytest.fixture(scope="session")
def build(client):
    """The shared runs of builds.CASES: `build(case)` runs a case once per session."""
    done: dict[str, builds.Built] = {}

    def get(case: str) -> builds.Built:
        if case not in done:
            done[case] = builds.run_case(case)
        return done[case]

    yield get
    for built in done.values():
        try:
            client.images.remove(built.tag, force=True)
        except docker.errors.ImageNotFound:
            pass  # not built (the case fails before that)


@pytest.fixture(scope="session", autouse=True)
def _remove_test_tmpdir():
    yield
    import shutil
    shutil.rmtree(helpers.TMP, ignore_errors=True)
    shutil.rmtree(helpers.CACHE, ignore_errors=True)

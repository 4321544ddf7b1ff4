"""Fixtures for end-to-end tests: a real engine and the sandbox images.

Nothing is started here beyond what `make test` already ensured: an engine that does
not answer, or a missing sandbox image, fails the test loudly instead of skipping.
"""

from __future__ import annotations

import docker
import pytest

SANDBOX = {
    name: f"minify-sandbox/{name}:latest"
    for name in ("nginx", "python", "busybox", "jq", "quirks", "nolisten", "crash")
}


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


def minify_containers(client) -> list:
    return client.containers.list(all=True, filters={"label": "minify.run"})


@pytest.fixture(autouse=True)
def no_leftovers(request):
    """Every e2e test must leave no minify container behind."""
    yield
    if "client" not in request.fixturenames:
        return
    c = request.getfixturevalue("client")
    left = minify_containers(c)
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[x.name for x in left]}"

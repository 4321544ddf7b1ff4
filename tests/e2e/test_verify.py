"""Verification end to end: a broken minified image fails the build, loudly and usefully."""

from __future__ import annotations

import json

from minifier.engine import inspect_image
from minifier.errors import ExitStatus
from minifier.options import BuildOptions, ProbeSetup
from minifier.output.verify import verify
from minifier.records import AppLife, BuildResult, Observation
from minifier.ui import Progress

from .conftest import SANDBOX
from .helpers import minify


def test_excluding_a_needed_file_fails_verification(client, build):
    b = build("python-broken")  # --exclude-pattern /app/data/items.json
    assert b.run.code == ExitStatus.VERIFY, b.run.stderr
    assert "GET /api/items (port 8080): original 200, minified 500" in b.error_line
    report = b.report
    assert report["verify"]["status"] == "failed"
    assert report["excluded"] == ["/app/data/items.json"]
    requests = [m["request"] for m in report["verify"]["mismatches"] if m["request"]]
    bad = [r for r in requests if r["path"] == "/api/items"]
    assert bad and bad[0]["original_status"] == 200 and bad[0]["minified_status"] == 500
    # Only that endpoint differs: the others still match.
    assert {r["path"] for r in requests} == {"/api/items"}
    image = client.images.get(b.tag)  # kept for inspection, but marked
    assert image.labels["minify.verified"] == "false"
    assert "/app/data/items.json" in b.run.stderr  # the --include-path hint


def test_no_verify_reports_skipped(client, tmp_path):
    tag = "minify-test/busybox-noverify.min:e2e"
    report_file = tmp_path / "report.json"
    run = minify("build", SANDBOX["busybox"], "--tag", tag, "--no-verify",
                 "--report-file", str(report_file))
    try:
        assert run.code == 0, run.stderr
        verdict = json.loads(report_file.read_text())["verify"]
        assert (verdict["status"], verdict["reason"]) == ("skipped", "--no-verify")
        # Not verified, and the image says so: only a verified image lacks the label.
        assert client.images.get(tag).labels["minify.verified"] == "false"
    finally:
        client.images.remove(tag, force=True)


def test_an_engine_error_while_verifying_is_a_failed_verification(client):
    """Whatever escapes while exercising a container (here the engine refusing to create
    one) is a failed verification with its reason, never an internal error."""
    image = inspect_image(client, SANDBOX["oneshot"])
    observed = Observation(http=None, execs=(), target=None,
                           life=AppLife(ran_seconds=0.5, exit_code=0, listening=()))
    missing = BuildResult(image_id="sha256:" + "0" * 64, tag="minify-test/none:e2e", size=0,
                          layer_path="")
    opts = BuildOptions(image=image.ref, probe=ProbeSetup(http=None))
    verdict = verify(client, image, missing, observed, opts, Progress(live=False, quiet=True))
    assert verdict.status == "failed"
    assert verdict.reason.startswith(
        "verification could not finish while running the minified image: the Docker "
        "engine failed: No such image: sha256:0000")
    assert [m.kind for m in verdict.mismatches] == ["error"]

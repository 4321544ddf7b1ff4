"""Verification end to end: a broken minified image fails the build, loudly and usefully."""

from __future__ import annotations

import json

from minifier.errors import ExitStatus

from .conftest import SANDBOX
from .helpers import minify


def test_excluding_a_needed_file_fails_verification(client, tmp_path):
    tag = "minify-test/python-broken.min:e2e"
    report_file = tmp_path / "report.json"
    run = minify("build", SANDBOX["python"], "--tag", tag, "--report-file", str(report_file),
                 "--exclude-pattern", "/app/data/items.json")
    try:
        assert run.code == ExitStatus.VERIFY, run.stderr
        first = [ln for ln in run.stderr.splitlines() if ln.startswith("minify: error:")]
        assert len(first) == 1
        assert "GET /api/items (port 8080): original 200, minified 500" in first[0]
        report = json.loads(report_file.read_text())
        assert report["verify"]["status"] == "failed"
        assert report["excluded"] == ["/app/data/items.json"]
        bad = [m for m in report["verify"]["mismatches"] if m.get("path") == "/api/items"]
        assert bad and bad[0]["original_status"] == 200 and bad[0]["minified_status"] == 500
        # Only that endpoint differs: the others still match.
        assert {m.get("path") for m in report["verify"]["mismatches"]} <= {"/api/items", None}
        image = client.images.get(tag)  # kept for inspection, but marked
        assert image.labels["minify.verified"] == "false"
        assert "/app/data/items.json" in run.stderr  # the --include-path hint
    finally:
        client.images.remove(tag, force=True)


def test_no_verify_reports_skipped(client, tmp_path):
    tag = "minify-test/busybox-noverify.min:e2e"
    report_file = tmp_path / "report.json"
    run = minify("build", SANDBOX["busybox"], "--tag", tag, "--no-verify",
                 "--report-file", str(report_file))
    try:
        assert run.code == 0, run.stderr
        assert json.loads(report_file.read_text())["verify"]["status"] == "skipped"
    finally:
        client.images.remove(tag, force=True)

"""HTTP probing end to end: probe command files, and an app that never listens."""

from __future__ import annotations

import json

from minifier.errors import ExitStatus

from .conftest import SANDBOX
from .helpers import minify


def test_probe_file_post_with_json_body_and_header(client, tmp_path):
    cmd_file = tmp_path / "probes.json"
    cmd_file.write_text(json.dumps({"commands": [
        {"method": "POST", "resource": "/api/echo", "body": '{"n": 42}',
         "headers": ["X-Probe-Token: minify", "Content-Type: application/json"]},
        {"method": "GET", "resource": "/api/greeting"},
    ]}))
    report_file = tmp_path / "report.json"
    tag = "minify-test/python-probefile.min:e2e"
    run = minify("build", SANDBOX["python"], "--tag", tag, "--no-http-probe-crawl",
                 "--http-probe-cmd-file", str(cmd_file), "--report-file", str(report_file))
    try:
        assert run.code == 0, run.stderr
        report = json.loads(report_file.read_text())
        posts = [r for r in report["probe"]["requests"] if r["method"] == "POST"]
        assert [(r["path"], r["status"]) for r in posts] == [("/api/echo", 200)]
        assert report["verify"]["status"] == "passed"
        compared = {(r["method"], r["path"]): r for r in report["verify"]["requests"]}
        assert compared[("POST", "/api/echo")]["compared"] == "status+body"
        assert compared[("POST", "/api/echo")]["minified_status"] == 200
    finally:
        client.images.remove(tag, force=True) if _exists(client, tag) else None


def test_app_that_never_listens_times_out_within_bound(client):
    before = client.images.get(SANDBOX["nolisten"]).id
    run = minify("build", SANDBOX["nolisten"], "--http-probe-start-wait", "4")
    assert run.code == ExitStatus.APP
    assert "no HTTP answer on port(s) 8080" in run.stderr
    assert "within 4" in run.stderr
    assert run.seconds < 4 + 30
    assert "Traceback" not in run.stderr
    assert client.images.get(SANDBOX["nolisten"]).id == before


def _exists(client, tag):
    try:
        client.images.get(tag)
        return True
    except Exception:  # noqa: BLE001
        return False

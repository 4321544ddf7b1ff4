"""The GitHub Action (`action.yml`, composite), run the way GitHub's runner runs it
(tests/e2e/ci_runners.py): the install step (a venv with minify pip-installed from the
action's directory), `minify doctor`, then the build with every input used, against an
app image built like a CI job builds one. Checked: the outputs, the files, the step
summary; a threshold that fails the step still gives its outputs and summary; an input
that is not true/false is refused before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from minifier.errors import ExitStatus

from . import helpers
from .ci_runners import run_action
from .conftest import SANDBOX
from .test_ci import no_orphans  # noqa: F401 - autouse: no minify container left behind

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
APP = "minify-test/action-app:e2e"
TAG = "minify-test/action-app.min:e2e"


@pytest.fixture(scope="module")
def runner(client, tmp_path_factory):
    """A workspace with the app's Dockerfile (busybox plus 3 MB it never reads) and a
    probe file; the app image built; the runner's temp dir shared by every use of the
    action in this module, as within one job."""
    ws = tmp_path_factory.mktemp("workspace")
    (ws / "Dockerfile").write_text(f"FROM {SANDBOX['busybox']}\n"
                                   "COPY unused.bin /opt/unused.bin\n")
    (ws / "unused.bin").write_bytes(os.urandom(3_000_000))
    (ws / "probes.json").write_text(json.dumps(
        {"commands": [{"method": "GET", "resource": "/page.html"}]}))
    built = subprocess.run(["docker", "build", "-q", "-t", APP, "."], cwd=ws,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert built.returncode == 0, built.stderr
    env = {**helpers.ENV, "HOME": str(ws)}
    env.pop("DOCKER_HOST", None)
    yield ws, env
    for tag in (APP, TAG):
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="module")
def passed(runner):
    ws, env = runner
    run = run_action(ROOT, {
        "image": APP, "tag": TAG, "http-probe": "true", "http-probe-cmd-file": "probes.json",
        "exec": "/bin/busybox cat /www/index.html\n/bin/busybox true\n",
        "include-path": "/www\n", "min-ratio": "2", "max-size": "50MB",
        "args": "--no-http-probe-crawl --exec '/bin/busybox echo \"a  b\"'",
        "output-dir": "out"}, ws, env)
    return run, ws


def test_every_step_runs_and_the_outputs_are_the_reports(client, passed):
    run, ws = passed
    assert run.code == 0, [(s.name, s.code, s.stderr[-2000:]) for s in run.steps]
    assert [s.name for s in run.steps] == ["Install minify", "Check the runner (minify doctor)",
                                           "Minify, verify, check the thresholds"]
    venv = ws / "_runner_temp" / "minify-venv"
    assert run.steps[0].stdout.splitlines()[0] == f"minify: installing into {venv}"
    assert run.steps[1].stdout.splitlines()[-1] == ("minify: doctor: every check passed: a "
                                                    "build can work here")
    report_path = ws / "out" / "report.json"
    report = json.loads(report_path.read_text())
    assert run.outputs == {"image": TAG, "image-id": report["output"]["id"],
                           "ratio": str(report["ratio"]), "report": str(report_path),
                           "report-html": str(ws / "out" / "report.html")}
    assert client.images.get(TAG).id == report["output"]["id"]
    assert report["verify"]["status"] == "passed"
    assert (ws / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_each_input_reached_minify(passed):
    run, ws = passed
    report = json.loads((ws / "out" / "report.json").read_text())
    requests = [(r["method"], r["path"], r["discovered_by"])
                for r in report["probe"]["requests"]]
    # http-probe-cmd-file, and --no-http-probe-crawl from args: nothing crawled
    assert requests == [("GET", "/", "default"), ("HEAD", "/", "default"),
                        ("GET", "/page.html", "user")]
    assert [e["argv"] for e in report["probe"]["execs"]] == [  # exec, one per line, then
        ["/bin/busybox", "cat", "/www/index.html"], ["/bin/busybox", "true"],  # args' own,
        ["/bin/busybox", "echo", "a  b"]]  # split like a shell twice
    kept = {k["path"]: k["reasons"] for k in report["kept"]}
    assert "include-path" in kept["/www"]  # include-path
    assert "/opt/unused.bin" not in kept
    assert report["ratio"] >= 2  # min-ratio met


def test_the_summary_is_appended_to_the_step_summary(passed):
    run, ws = passed
    summary = (ws / "out" / "summary.md").read_text()
    assert run.summary == summary
    assert "| | before | after |" in summary and f"`{TAG}`" in summary


def test_a_failed_threshold_fails_the_step_but_keeps_outputs_and_summary(runner, passed):
    ws, env = runner
    run = run_action(ROOT, {"image": APP, "tag": TAG, "min-ratio": "1000",
                            "output-dir": "out-threshold"}, ws, env)
    assert run.code == ExitStatus.THRESHOLD, run.steps[-1].stderr[-2000:]
    assert "below --min-ratio 1000" in run.steps[-1].stderr
    report = json.loads((ws / "out-threshold" / "report.json").read_text())
    assert run.outputs["image"] == TAG and run.outputs["ratio"] == str(report["ratio"])
    assert "| | before | after |" in run.summary
    # The second use in the same job reuses the venv: no second install.
    venv = ws / "_runner_temp" / "minify-venv"
    assert run.steps[0].stdout.splitlines()[0] == f"minify: reusing {venv}"


def test_a_bad_input_is_refused_before_anything_runs(runner, passed):
    ws, env = runner
    run = run_action(ROOT, {"image": APP, "http-probe": "maybe", "output-dir": "out-bad"},
                     ws, env)
    assert run.code == ExitStatus.USAGE
    assert run.steps[-1].stdout.strip() == (
        "::error::minify: http-probe must be true or false, not 'maybe'")
    assert run.outputs["image"] == "" and not (ws / "out-bad" / "report.json").exists()


def test_unbalanced_quotes_in_args_are_refused(runner, passed):
    ws, env = runner
    run = run_action(ROOT, {"image": APP, "args": "--tag 'oops", "output-dir": "out-q"},
                     ws, env)
    assert run.code == ExitStatus.USAGE
    assert run.steps[-1].stderr.strip() == "::error::minify: args: No closing quotation"

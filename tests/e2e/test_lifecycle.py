"""How the traced app lives, as under runc, on a real container (the lifecycle sample):
its entrypoint reopens its stdout and stderr by name, stops a helper with `kill 0`, and
runs `gzip` and `mv` only when the container is started again; an exec probe writes to
both streams. Two builds, each asserted on by several tests: the image as it is (root:
its `kill 0` could reach any process of its group), and `--user nobody` without the
traced restart and without verification (a non-root app's stdio, and what the traced
restart is for).
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import SANDBOX
from .helpers import minify

pytestmark = pytest.mark.e2e

EXEC = "/bin/bash -c 'echo exec-out; echo exec-err > /dev/stderr; id -un > /dev/stdout'"
RESTART_ONLY = {"/usr/bin/gzip", "/usr/bin/mv"}
FIRST_LINES = ["entrypoint: starting as {user}", "entrypoint: stdout reopened",
               "entrypoint: stderr reopened", "entrypoint: caught TERM"]


def _build(client, tmp_path_factory, name: str, *args: str):
    art = tmp_path_factory.mktemp(name)
    tag = f"minify-test/lifecycle-{name}.min:e2e"  # unique to this module: run in parallel
    run = minify("build", SANDBOX["lifecycle"], "--tag", tag, "--artifacts-dir", str(art),
                 *args)
    report = art / "report.json"
    yield run, art, json.loads(report.read_text()) if report.exists() else {}
    try:
        client.images.remove(tag, force=True)
    except Exception:  # noqa: BLE001 - not built when the run failed
        pass


@pytest.fixture(scope="module")
def built(client, tmp_path_factory):
    yield from _build(client, tmp_path_factory, "lifecycle", "--exec", EXEC)


@pytest.fixture(scope="module")
def as_nobody(client, tmp_path_factory):
    yield from _build(client, tmp_path_factory, "lifecycle-nobody", "--user", "nobody",
                      "--no-restart-trace", "--no-verify")


def _kept(report: dict) -> set[str]:
    return {k["path"] for k in report["kept"]}


def test_kill_0_from_a_root_app_does_not_cut_the_trace_short(built):
    run, art, report = built
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    assert not [w for w in report["warnings"] if "trace interrupted" in w]
    assert (art / "app.log").read_text().splitlines()[:4] == \
        [line.format(user="root") for line in FIRST_LINES]
    # `sort` runs after the kill: traced, kept, and its file served.
    assert "/usr/bin/sort" in _kept(report)
    sorted_txt = [r for r in report["probe"]["requests"] if r["path"] == "/sorted.txt"]
    assert [r["status"] for r in sorted_txt] == [200]


def test_an_exec_probe_s_output_is_captured_exactly(built):
    run, art, report = built
    assert run.code == 0, run.stderr
    assert (art / "exec-0.log").read_text() == "exec-out\nexec-err\nroot\n"
    assert report["probe"]["execs"] == [{"argv": ["/bin/bash", "-c", EXEC.split("'")[1]],
                                         "exit_code": 0}]


def test_a_restart_is_traced_and_what_only_it_runs_is_kept(built):
    run, art, report = built
    assert run.code == 0, run.stderr
    observed = report["observation"]
    assert observed["restarts"] == 1
    assert observed["restart"]["status"] == "traced" and observed["restart"]["note"] == ""
    assert observed["restart"]["requests"] == len(report["probe"]["requests"])
    assert observed["restart"]["execs"] == 1
    assert "minify: restarting the app under trace, as docker restart would" in run.stderr
    # python's http.server ends on the image's stop signal, well within the grace period
    assert re.search(r"minify:   after \d+\.\d s of running, stopped by SIGTERM, as docker "
                     r"stop would; started again\n", run.stderr), run.stderr
    assert "restart traced once" in run.stdout
    assert "entrypoint: started again" in (art / "app-2.log").read_text().splitlines()
    assert (art / "exec-1.log").read_text() == "exec-out\nexec-err\nroot\n"
    assert RESTART_ONLY <= _kept(report)
    # Verification's restart round: the minified image compresses as the original does.
    again = [(r["round"], r["original_status"], r["minified_status"])
             for r in report["verify"]["requests"] if r["path"] == "/sorted.txt.gz"]
    assert again == [(1, 404, 404), (2, 200, 200)]


def test_a_non_root_app_reopens_its_stdout_and_stderr_and_loses_no_line(as_nobody):
    run, art, _ = as_nobody
    assert run.code == 0, run.stderr
    assert (art / "app.log").read_text().splitlines()[:4] == \
        [line.format(user="nobody") for line in FIRST_LINES]


def test_without_the_traced_restart_what_only_it_runs_is_missing(as_nobody):
    run, art, report = as_nobody
    assert run.code == 0, run.stderr
    assert report["observation"] == {
        "restarts": 0, "restart": {"status": "skipped", "note": "--no-restart-trace",
                                   "seconds": 0.0, "requests": 0, "execs": 0}}
    assert "restart skipped (--no-restart-trace)" in run.stdout
    assert "restarting the app" not in run.stderr
    assert not (art / "app-2.log").exists()
    kept = _kept(report)
    assert "/usr/bin/sort" in kept and not RESTART_ONLY & kept

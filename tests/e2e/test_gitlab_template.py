"""The GitLab CI template (`templates/minify.gitlab-ci.yml`), included by a project's
`.gitlab-ci.yml` and extended by its job, run the way GitLab's runner runs a job
(tests/e2e/ci_runners.py): its script lines with GitLab's predefined variables set,
against an app image built like a CI job builds one, minify in its own container
(`minify:latest`, `make image`). Checked: the artifacts, the dotenv report, the summary
in the job log; a threshold that fails the job still leaves the artifacts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from minifier.errors import ExitStatus

from . import helpers
from .ci_runners import run_gitlab_job
from .conftest import SANDBOX
from .test_ci import no_orphans  # noqa: F401 - autouse: no minify container left behind

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHA = "e2e19" + secrets.token_hex(2)
APP = f"minify-test/gitlab-app:{SHA}"
TAG = f"minify-test/gitlab-app.min:{SHA}"

PROJECT_CI = """\
include:
  - local: templates/minify.gitlab-ci.yml

minify:
  extends: .minify
  variables:
    MINIFY_IMAGE: minify-test/gitlab-app:$CI_COMMIT_SHORT_SHA
    MINIFY_TAG: minify-test/gitlab-app.min:$CI_COMMIT_SHORT_SHA
    MINIFY_HTTP_PROBE_CMD_FILE: probes.json
    MINIFY_EXEC: |
      /bin/busybox cat /www/index.html
      /bin/busybox true
    MINIFY_INCLUDE_PATH: /www
    MINIFY_MIN_RATIO: "2"
    MINIFY_ARGS: --no-http-probe-crawl --exec '/bin/busybox echo "a  b"'
"""


def _predefined(project: Path) -> dict:
    """GitLab's predefined variables that a job like this one sees."""
    job_id = str(4_000_000 + secrets.randbelow(1_000_000))
    return {"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_DIR": str(project),
            "CI_BUILDS_DIR": str(project.parent), "CI_PROJECT_NAME": "app",
            "CI_PROJECT_PATH": "group/app", "CI_COMMIT_SHORT_SHA": SHA,
            "CI_COMMIT_SHA": SHA + "0" * 31, "CI_COMMIT_REF_NAME": "main",
            "CI_JOB_ID": job_id, "CI_JOB_NAME": "minify", "CI_JOB_STAGE": "test",
            "CI_PIPELINE_ID": "77", "CI_REGISTRY": "registry.invalid",
            "CI_REGISTRY_IMAGE": "registry.invalid/group/app"}


@pytest.fixture(scope="module")
def image(client):
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "image"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def project(client, image, tmp_path_factory):
    """A project checkout: its Dockerfile (busybox plus 3 MB it never reads), a probe
    file, its .gitlab-ci.yml, and minify's template where `include: local` finds it (a
    `project:` or `remote:` include fetches the same file)."""
    p = tmp_path_factory.mktemp("gitlab") / "app"
    (p / "templates").mkdir(parents=True)
    shutil.copy(ROOT / "templates" / "minify.gitlab-ci.yml", p / "templates")
    (p / ".gitlab-ci.yml").write_text(PROJECT_CI)
    (p / "Dockerfile").write_text(f"FROM {SANDBOX['busybox']}\n"
                                  "COPY unused.bin /opt/unused.bin\n")
    (p / "unused.bin").write_bytes(os.urandom(3_000_000))
    (p / "probes.json").write_text(json.dumps(
        {"commands": [{"method": "GET", "resource": "/page.html"}]}))
    built = subprocess.run(["docker", "build", "-q", "-t", APP, "."], cwd=p,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert built.returncode == 0, built.stderr
    yield p
    for tag in (APP, TAG):
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001
            pass


def _env() -> dict:
    env = {**helpers.ENV}
    env.pop("DOCKER_HOST", None)
    return env


@pytest.fixture(scope="module")
def job(project):
    predefined = _predefined(project)
    return run_gitlab_job(project, "minify", predefined, _env()), predefined


def test_the_template_is_valid_for_include_and_extends():
    doc = yaml.safe_load((ROOT / "templates" / "minify.gitlab-ci.yml").read_text())
    assert list(doc) == [".minify"]  # hidden: nothing runs until a job extends it
    job = doc[".minify"]
    assert job["image"] == "docker:24-cli"
    assert job["artifacts"] == {"when": "always", "expose_as": "minify report",
                                "paths": ["minify-out/"],
                                "reports": {"dotenv": "minify-out/minify.env"}}


def test_the_job_builds_verifies_and_leaves_its_artifacts(client, job, project):
    run, predefined = job
    assert run.code == 0, run.stderr[-3000:]
    out = project / "minify-out"
    assert sorted(p.name for p in out.iterdir()) == ["minify.env", "report.html",
                                                     "report.json", "summary.md"]
    report = json.loads((out / "report.json").read_text())
    assert report["verify"]["status"] == "passed"
    assert report["output"]["image"] == TAG and report["source"]["image"] == APP
    assert run.dotenv == {"MINIFY_OUTPUT_IMAGE": TAG, "MINIFY_OUTPUT_ID": report["output"]["id"],
                          "MINIFY_RATIO": str(report["ratio"]), "MINIFY_VERIFY": "passed"}
    assert client.images.get(TAG).id == report["output"]["id"]
    assert (out / "summary.md").read_text() in run.stdout  # the summary in the job log
    assert not client.containers.list(all=True, filters={
        "name": f"minify-{predefined['CI_JOB_ID']}"})


def test_each_variable_reached_minify(job, project):
    run, _ = job
    assert run.code == 0, run.stderr[-3000:]
    report = json.loads((project / "minify-out" / "report.json").read_text())
    assert [(r["method"], r["path"], r["discovered_by"]) for r in report["probe"]["requests"]] \
        == [("GET", "/", "default"), ("HEAD", "/", "default"), ("GET", "/page.html", "user")]
    assert [e["argv"] for e in report["probe"]["execs"]] == [
        ["/bin/busybox", "cat", "/www/index.html"], ["/bin/busybox", "true"],
        ["/bin/busybox", "echo", "a  b"]]
    assert "include-path" in {k["path"]: k["reasons"] for k in report["kept"]}["/www"]
    assert report["ratio"] >= 2


def test_a_failed_threshold_fails_the_job_but_keeps_the_artifacts(client, job, project):
    # After the passing run, in the same checkout.
    (project / ".gitlab-ci.yml").write_text(PROJECT_CI.replace('"2"', '"1000"'))
    try:
        predefined = _predefined(project)
        run = run_gitlab_job(project, "minify", predefined, _env())
    finally:
        (project / ".gitlab-ci.yml").write_text(PROJECT_CI)
    assert run.code == ExitStatus.THRESHOLD, run.stderr[-3000:]
    assert "below --min-ratio 1000" in run.stderr
    report = json.loads((project / "minify-out" / "report.json").read_text())
    assert run.dotenv["MINIFY_RATIO"] == str(report["ratio"])
    assert run.dotenv["MINIFY_VERIFY"] == "passed"
    assert not client.containers.list(all=True, filters={
        "name": f"minify-{predefined['CI_JOB_ID']}"})


def test_a_missing_image_variable_is_said(project):
    doc = (project / ".gitlab-ci.yml").read_text()
    (project / ".gitlab-ci.yml").write_text(
        doc.replace("MINIFY_IMAGE: minify-test/gitlab-app:$CI_COMMIT_SHORT_SHA", "X: y"))
    try:
        run = run_gitlab_job(project, "minify", _predefined(project), _env())
    finally:
        (project / ".gitlab-ci.yml").write_text(doc)
    assert run.code == ExitStatus.USAGE
    assert run.stderr.strip() == "minify: error: set MINIFY_IMAGE to the image to minify"

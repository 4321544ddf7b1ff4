"""minify against Podman's Docker-compatible API (Debian's podman, installed by `make
test-tools`): a rootful `podman system service` on a socket under this test's control,
the busybox sample loaded into it with `docker save | podman load`, then minify built
and verified there with DOCKER_HOST=unix://...; `minify doctor` on it; and a real
rootless Podman service refused by name (build and doctor).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from minifier.engineinfo import describe
from minifier.errors import ExitStatus

from . import helpers, podman
from .conftest import SANDBOX
from .helpers import answers

pytestmark = pytest.mark.e2e

TAG = "minify-test/podman-busybox.min:e2e"
# What the busybox sample's app touches, the same on every engine; Podman's export of a
# created container has no /etc (Docker's adds one for /etc/hosts), so /etc is made a
# directory for the /etc/hosts and /etc/resolv.conf placeholders.
KEPT = {"/bin": "dir", "/bin/busybox": "file", "/bin/httpd": "symlink", "/etc": "dir",
        "/etc/hosts": "file", "/etc/resolv.conf": "file", "/tmp": "dir", "/www": "dir",
        "/www/index.html": "file", "/www/page.html": "file"}


@pytest.fixture(scope="module")
def service():
    # Podman refuses a runroot longer than 50 characters: pytest's temp dirs under
    # parallel workers (/tmp/pytest-of-root/pytest-N/popen-gwN/...) are longer.
    top = Path(tempfile.mkdtemp(prefix="minify-podman-"))
    with podman.rootful(top) as (host, client):
        saved = subprocess.Popen(["docker", "save", SANDBOX["busybox"]],
                                 stdout=subprocess.PIPE)
        loaded = subprocess.run([podman.podman_path(), "--url", host, "load"],
                                stdin=saved.stdout, capture_output=True, text=True,
                                timeout=300)
        saved.stdout.close()
        assert saved.wait() == 0 and loaded.returncode == 0, loaded.stderr
        assert "Loaded image: localhost/minify-sandbox/busybox:latest" in loaded.stdout
        yield host, client
    shutil.rmtree(top, ignore_errors=True)  # rootful() unmounted everything under it


@pytest.fixture(scope="module")
def build(service):
    host, client = service
    proc = helpers.minify("build", SANDBOX["busybox"], "--tag", TAG, "--json",
                          env={"DOCKER_HOST": host}, timeout=300)
    return proc, client


def test_engine_is_detected_from_its_version_answer(service):
    _, client = service
    engine = describe(client)
    assert (engine.kind, engine.name, engine.rootless) == ("podman", "Podman", False)
    out = subprocess.run([podman.podman_path(), "--version"], capture_output=True, text=True)
    assert out.stdout.split()[-1] == engine.version  # the Debian package's own version
    assert engine.storage_driver == "overlay"  # Podman's name; Docker's is overlay2


def test_minify_builds_and_verifies_on_podman(build):
    proc, client = build
    assert proc.code == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["verify"]["status"] == "passed"
    assert {k["path"]: k["kind"] for k in report["kept"]} == KEPT
    image = client.images.get(TAG)
    assert image.id == report["output"]["id"]
    # Podman names local images under localhost/.
    assert image.tags == ["localhost/" + TAG]
    assert image.labels["minify.source.image"] == SANDBOX["busybox"]
    # Podman's storage driver is "overlay": the index reads the export stream instead.
    assert report["index"]["reader"] == "export"
    assert report["index"]["why"] == "the engine's storage driver is overlay, not overlay2"


def test_minified_image_answers_like_the_original_on_podman(build):
    proc, client = build
    assert proc.code == 0, proc.stderr[-3000:]
    paths = sorted({r["path"] for r in json.loads(proc.stdout)["probe"]["requests"]
                    if r["method"] == "GET"})
    assert {"/", "/page.html"} <= set(paths)
    assert answers(client, TAG, 8080, paths) == answers(client, SANDBOX["busybox"], 8080,
                                                       paths)


def test_nothing_is_left_in_podman(build):
    proc, client = build
    assert proc.code == 0, proc.stderr[-3000:]
    assert client.api.containers(all=True, filters={"label": "minify.run"}) == []


def test_the_source_tag_under_podmans_spelling_is_refused(service):
    host, client = service
    # The source named as Podman lists it, the output as the user would type the source.
    proc = helpers.minify("build", "localhost/minify-sandbox/busybox:latest", "--tag",
                          "minify-sandbox/busybox:latest", env={"DOCKER_HOST": host},
                          timeout=120)
    assert proc.code == ExitStatus.IMAGE, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "minify: error: refusing to tag the output minify-sandbox/busybox:latest: the engine "
        "resolves that name to the source image localhost/minify-sandbox/busybox:latest")
    assert client.api.containers(all=True) == []


def test_doctor_on_podman(service):
    host, _ = service
    proc = helpers.minify("doctor", env={"DOCKER_HOST": host}, timeout=120)
    assert proc.code == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"ok    engine        Podman {describe_version(host)} (API ")
    assert lines[0].endswith(f"at {host}, rootful")
    assert lines[1] == ("ok    storage       overlay on extfs: builds read images through the "
                        "engine's export stream (the engine's storage driver is overlay, not "
                        "overlay2)")
    assert any(line.startswith("ok    network       minify shares the network namespace of "
                               "the engine's conmon") for line in lines)
    assert lines[-1] == "minify: doctor: every check passed: a build can work here"


def describe_version(host: str) -> str:
    import docker

    client = docker.DockerClient(base_url=host)
    try:
        return describe(client).version
    finally:
        client.close()


@pytest.fixture(scope="module")
def rootless_host():
    # Not under pytest's own directory: nobody may not enter it.
    with podman.rootless(Path(tempfile.mkdtemp(prefix="minify-rootless-"))) as host:
        yield host


def test_rootless_podman_is_refused_by_build(rootless_host):
    version = describe_version(rootless_host)
    proc = helpers.minify("build", SANDBOX["busybox"], env={"DOCKER_HOST": rootless_host},
                          timeout=120)
    assert proc.code == ExitStatus.ENGINE, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"minify: error: the engine at {rootless_host} is a rootless Podman {version} (its "
        "/libpod/info says host.security.rootless): minify works only with rootful engines "
        "so far; missing: a rootful engine (sudo podman system service --time=0 "
        "unix:///run/podman/podman.sock, then DOCKER_HOST=unix:///run/podman/podman.sock)")


def test_rootless_podman_fails_doctor(rootless_host):
    proc = helpers.minify("doctor", env={"DOCKER_HOST": rootless_host}, timeout=120)
    assert proc.code == ExitStatus.ENGINE
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"FAIL  engine        the engine at {rootless_host} is a "
                               "rootless Podman")
    assert [line.split()[0] for line in lines if line.split()[1] in (
        "containers", "pid", "network", "fanotify")] == ["skip"] * 4
    assert proc.stderr.strip() == ("minify: error: doctor: 1 check(s) failed (engine): a "
                                   "build cannot work here")

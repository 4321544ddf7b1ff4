"""--volume end to end, with --include-zoneinfo: a service whose configuration each
deployment mounts over the image's default (minify-sandbox/mountconf). The traced run
and verification get the mount; the output keeps the mountpoint and nothing the image
has below it, keeps what the mounted file names outside it, and every time zone."""

from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import SANDBOX
from .helpers import answers, exported, minify

pytestmark = pytest.mark.e2e

IMAGE = SANDBOX["mountconf"]
TAG = "minify-test/mountconf.min:e2e"
HELLO = b"hello from the mounted configuration\n"


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory):
    """The deployment's configuration: another greeting file, another zone."""
    conf = tmp_path_factory.mktemp("conf")
    (conf / "app.conf").write_text("greeting_file=/srv/greetings/hello.txt\n"
                                   "zone=Europe/Paris\n")
    return conf


@pytest.fixture(scope="module")
def mounted(client, conf_dir, tmp_path_factory):
    report_file = tmp_path_factory.mktemp("out") / "report.json"
    run = minify("build", IMAGE, "--tag", TAG, "--volume", f"{conf_dir}:/config:ro",
                 "--include-zoneinfo", "--report-file", str(report_file))
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    yield run, report
    client.images.remove(TAG, force=True)


def test_the_mountpoint_is_kept_and_nothing_the_image_has_below_it(client, mounted):
    run, report = mounted
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    # Both would have the one configuration directory: the original's run goes first.
    assert report["verify"]["original_run"] == "first"
    kept = {k["path"]: k for k in report["kept"]}
    # The mountpoint, reached through the image's own link to it, without its content:
    # the default app.conf and the 300 kB cache below it are the image's, hidden.
    assert (kept["/etc/app"]["kind"], kept["/config"]["kind"]) == ("symlink", "dir")
    assert "mountpoint" in kept["/config"]["reasons"]
    assert [p for p in kept if p.startswith("/config/")] == []
    # What the mounted file named outside the mount is kept; the default's is not.
    assert kept["/srv/greetings/hello.txt"]["reasons"] == ["accessed"]
    assert "/srv/greetings/default.txt" not in kept
    # The traced run and verification saw the mounted configuration.
    [root] = [r for r in report["probe"]["requests"] if r["method"] == "GET" and r["path"] == "/"]
    assert (root["status"], root["sha256"]) == (200, _sha(HELLO))
    assert all(r["ok"] for r in report["verify"]["requests"])
    tar = exported(client, TAG)
    members = {"/" + m.name.rstrip("/"): m for m in tar.getmembers()}
    assert members["/config"].isdir() and members["/etc/app"].issym()
    assert not [n for n in members if n.startswith("/config/")]


def test_every_time_zone_is_kept_with_include_zoneinfo(mounted):
    """Only Europe/Paris was loaded while observed; --include-zoneinfo keeps them all."""
    _, report = mounted
    kept = {k["path"]: k for k in report["kept"]}
    assert kept["/usr/share/zoneinfo/Europe/Paris"]["reasons"][0] == "accessed"
    assert kept["/usr/share/zoneinfo/Asia/Tokyo"]["reasons"] == ["zoneinfo"]


def test_the_minified_image_serves_with_the_mount_and_any_zone(client, mounted, conf_dir):
    got = answers(client, TAG, 8080, ["/", "/time?tz=Asia/Tokyo", "/time?tz=America/New_York"],
                  volumes=[f"{conf_dir}:/config:ro"])
    assert got == {"/": (200, _sha(HELLO)),
                   "/time?tz=Asia/Tokyo": (200, _sha(b"Asia/Tokyo +0900\n")),
                   "/time?tz=America/New_York": (200, _sha(b"America/New_York -0500\n"))}


def test_without_the_mount_the_minified_image_has_no_configuration(client, mounted):
    """The image's default configuration was not kept: without the mount it cannot start
    (the original would, with its default)."""
    container = client.containers.run(TAG, detach=True, labels={"minify.run": "test"})
    try:
        assert container.wait(timeout=60)["StatusCode"] == 1
        assert container.logs().decode() == (
            "fatal: cannot read /etc/app/app.conf: No such file or directory\n")
    finally:
        container.remove(force=True, v=True)

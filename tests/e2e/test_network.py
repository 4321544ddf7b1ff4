"""--network and --link end to end: a service that needs a peer container at start and
on a request (minify-sandbox/netpeer), as an app needs its database. The test makes the
user network and the peer, and removes both; the traced run and verification join the
network and reach the peer by its --link alias; probing still goes only through ports
published on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import secrets

import pytest

from .conftest import SANDBOX
from .helpers import answers, minify

pytestmark = pytest.mark.e2e

IMAGE = SANDBOX["netpeer"]
TAG = "minify-test/netpeer.min:e2e"
SECRET = b"the peer's secret\n"


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture(scope="module")
def peer(client):
    """A user network and the peer on it (named, no alias: the app finds it as `db` only
    through --link PEER:db); both removed afterwards, whatever happened."""
    suffix = secrets.token_hex(4)
    network = client.networks.create(f"minify-test-net-{suffix}", labels={"minify.run": "test"})
    container = None
    try:
        container = client.containers.run(
            IMAGE, ["python3", "-m", "http.server", "8000", "--directory", "/peer"],
            name=f"minify-test-peer-{suffix}", network=network.name, detach=True,
            labels={"minify.run": "test"})
        yield network.name, container.name
    finally:
        if container is not None:
            container.remove(force=True, v=True)
        network.remove()


@pytest.fixture(scope="module")
def built(client, peer, tmp_path_factory):
    network, name = peer
    report_file = tmp_path_factory.mktemp("out") / "report.json"
    run = minify("build", IMAGE, "--tag", TAG, "--network", network, "--link", f"{name}:db",
                 "--http-probe-cmd", "/now", "--report-file", str(report_file))
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    yield run, report
    client.images.remove(TAG, force=True)


def test_traced_and_verified_on_the_users_network(built):
    run, report = built
    assert run.code == 0, run.stderr
    requests = {(r["method"], r["path"]): r for r in report["probe"]["requests"]}
    # The app reached the peer at start and again on /now, through the link's alias.
    assert (requests["GET", "/"]["status"], requests["GET", "/"]["sha256"]) == (
        200, _sha(b"at start: " + SECRET))
    assert (requests["GET", "/now"]["status"], requests["GET", "/now"]["sha256"]) == (
        200, _sha(b"now: " + SECRET))
    verify = report["verify"]
    assert verify["status"] == "passed"
    assert verify["original_run"] == "first"  # the peer is both instances': one at a time
    assert {(r["round"], r["path"], r["compared"], r["ok"]) for r in verify["requests"]
            if r["path"] in ("/", "/now")} == {
        (n, p, "status+body", True) for n in (1, 2) for p in ("/", "/now")}


def test_the_minified_image_needs_the_peer_like_the_original(client, built, peer):
    network, name = peer
    got = answers(client, TAG, 8080, ["/", "/now"], network=network,
                  networking_config={network: {"Links": [f"{name}:db"]}})
    assert got == {"/": (200, _sha(b"at start: " + SECRET)),
                   "/now": (200, _sha(b"now: " + SECRET))}
    alone = client.containers.run(TAG, detach=True, labels={"minify.run": "test"})
    try:  # on the default network there is no `db`: it refuses to start, as designed
        assert alone.wait(timeout=60)["StatusCode"] == 1
        assert alone.logs().decode().startswith(
            "fatal: cannot reach the peer at http://db:8000/secret.txt: ")
    finally:
        alone.remove(force=True, v=True)

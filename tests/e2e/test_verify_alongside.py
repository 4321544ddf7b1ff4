"""Verification's minified run alongside the original's (the default when the two
containers share no mount and no network namespace), and one after the other when they
would: an app that also listens on a port the kernel picks in each run (as a JMX or
debug agent does) is not held waiting for the traced run's port, and the verdict asks
only for the port every run listened on; a build with a bind mount runs them in turn."""

from __future__ import annotations

import json

import docker
import pytest

from .conftest import SANDBOX
from .helpers import minify

pytestmark = pytest.mark.e2e

TAG = "minify-test/ephemeral.min:e2e"
START_WAIT = 30
SERVE = '''\
"""Answers HTTP on 8080; like a JMX or debug agent, also listens on a port the kernel
picks, another one in each run."""
import http.server
import socket

side = socket.socket()
side.bind(("0.0.0.0", 0))
side.listen()
http.server.ThreadingHTTPServer(("", 8080), http.server.SimpleHTTPRequestHandler).serve_forever()
'''


@pytest.fixture(scope="module")
def ephemeral(client, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ephemeral")
    (ctx / "serve.py").write_text(SERVE)
    (ctx / "Dockerfile").write_text(f"FROM {SANDBOX['python']}\nCOPY serve.py /app/serve.py\n"
                                    'CMD ["python3", "serve.py"]\n')
    tag = "minify-test/ephemeral:e2e"
    client.images.build(path=str(ctx), tag=tag, rm=True)
    yield tag
    client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def built(client, ephemeral, tmp_path_factory):
    report_file = tmp_path_factory.mktemp("out") / "report.json"
    run = minify("build", ephemeral, "--tag", TAG, "--start-wait", str(START_WAIT),
                 "--report-file", str(report_file))
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    yield run, report
    try:
        client.images.remove(TAG, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_an_ephemeral_port_is_neither_waited_for_nor_asked_for(built):
    run, report = built
    assert run.code == 0, run.stderr
    verify = report["verify"]
    assert (verify["status"], verify["original_run"]) == ("passed", "alongside")
    assert "running the minified image alongside it" in run.stderr
    liveness = verify["liveness"]
    # Only the port of every run is asked for; the minified app did listen on another.
    assert liveness["ports"] == [8080]
    assert 8080 in liveness["minified_ports"] and len(liveness["minified_ports"]) == 2
    # Waiting for the traced run's random port would have run to the start wait.
    assert report["timings"]["verify"] < START_WAIT
    assert all(r["ok"] for r in verify["requests"])

"""The traced restart's readiness (observe/restart.py): ready as on the first start. A
port that answered HTTP must answer HTTP again; one that did not (not HTTP, loopback
only) must be listened on again, without asking it for HTTP or TLS once more."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minifier.observe.restart import _first_run, _until_ready
from minifier.observe.runner import Restarted
from minifier.options import ProbeSetup
from minifier.records import AppLife, Observation
from minifier.ui import Progress
from probes import ReadyInfo
from probes.records import NOT_HTTP
from tests.unit.conftest import serve_tcp


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def recording() -> Iterator[tuple[int, list[bytes]]]:
    """A port that records what each connection sends (and answers nothing)."""
    received: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            try:
                received.append(conn.recv(4096))
            except OSError:
                received.append(b"")

    for port in serve_tcp(handle):
        yield port, received


class _Restarted:
    """What _until_ready asks of the traced container: its published ports, whether the
    app lives, and what it listens on (the kernel's socket table)."""

    def __init__(self, ports: dict[int, int], listening: set[int]) -> None:
        self.ports = ports
        self._listening = listening

    def app_alive(self) -> bool:
        return True

    def listening_ports(self) -> frozenset[int]:
        return frozenset(self._listening)

    def wait_app(self, timeout: float) -> bool:
        time.sleep(timeout)  # an app that does not end: the wait runs to its bound
        return False


def test_a_port_that_spoke_no_http_is_waited_for_by_listening_only(web, recording):
    other, received = recording
    tc = _Restarted({8080: web, 6379: other}, listening={8080, 6379})
    obs = Observation(http=None, execs=(), target=None,
                      ports=(ReadyInfo(8080, "http", 0.1, 200), ReadyInfo(6379, NOT_HTTP, 0.5)))
    assert _until_ready(tc, obs, ProbeSetup(http=None, start_wait=10), (),
                        Progress(quiet=True)) == ""
    assert received == []  # neither HTTP nor a TLS hello: its socket was enough


def test_a_port_that_spoke_no_http_and_is_not_listened_on_again_is_said(web, recording):
    other, _ = recording
    tc = _Restarted({8080: web, 6379: other}, listening={8080})
    obs = Observation(http=None, execs=(), target=None,
                      ports=(ReadyInfo(8080, "http", 0.1, 200), ReadyInfo(6379, NOT_HTTP, 0.5)))
    said = _until_ready(tc, obs, ProbeSetup(http=None, start_wait=0.3), (), Progress(quiet=True))
    assert said == "the app did not listen on port(s) 6379 within 0.3 s"


@pytest.mark.parametrize(("stop", "life", "said"), [
    ("stopped by SIGTERM", AppLife(ran_seconds=2.04, exit_code=None, listening=(80,)),
     "after 2.0 s of running, stopped by SIGTERM, as docker stop would"),
    # squid under Debian's default config: how long it ran is not how long it took to stop
    ("killed: it did not stop within 10 s of SIGTERM",
     AppLife(ran_seconds=0.5, exit_code=None, listening=(3128,)),
     "after 0.5 s of running, killed: it did not stop within 10 s of SIGTERM, as docker "
     "stop would"),
    ("", AppLife(ran_seconds=3.0, exit_code=None, listening=()),
     "its first run ended by itself after 3.0 s"),
    ("", AppLife(ran_seconds=1.0, exit_code=0, listening=()),
     "its first run had ended by itself (exit code 0)"),
])
def test_the_restart_says_how_the_first_run_was_stopped(stop, life, said):
    assert _first_run(Restarted(life, stop)) == said

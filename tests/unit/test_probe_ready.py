"""Readiness in front of an upstream that starts later: a real reverse proxy (answering
502 while its upstream refuses connections, as nginx does) and an app that answers 503
while it warms up."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from probes.ready import wait_ready
from probes.records import LOOPBACK_ONLY, Target
from tests.unit.test_probe_http import SiteHandler, _serve


class ProxyHandler(BaseHTTPRequestHandler):
    """Relays GETs to `server.upstream` (a port on 127.0.0.1); 502 when it refuses."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=5)
        try:
            conn.request("GET", self.path)
            answer = conn.getresponse()
            body = answer.read()
        except ConnectionRefusedError:
            self.send_error(502, "Bad Gateway")
            return
        finally:
            conn.close()
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class WarmingHandler(BaseHTTPRequestHandler):
    """503 with Retry-After until `server.warm_at` (a monotonic time), then 200."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if time.monotonic() < self.server.warm_at:
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"warm")


@pytest.fixture
def upstream_port() -> int:
    """A port nothing listens on yet (the upstream binds it later)."""
    with ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler) as probe:
        return probe.server_address[1]


@pytest.fixture
def proxy(upstream_port: int) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    server.upstream = upstream_port
    yield from _serve(server)


def _start_upstream_later(port: int, delay: float) -> tuple[threading.Timer, list]:
    started: list[ThreadingHTTPServer] = []

    def start() -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), SiteHandler)
        server.log = []
        started.append(server)
        server.serve_forever(poll_interval=0.05)

    timer = threading.Timer(delay, start)
    timer.start()
    return timer, started


def test_a_proxy_answering_502_is_waited_for_until_its_upstream_answers(proxy) -> None:
    timer, started = _start_upstream_later(proxy.upstream, 0.8)
    try:
        (info,) = wait_ready(Target({80: proxy.server_address[1]}), (), 10.0, lambda: True)
        assert (info.protocol, info.status) == ("http", 200)
        assert 0.7 <= info.elapsed < 10.0
    finally:
        timer.cancel()
        for server in started:  # ends serve_forever in the timer's thread
            server.shutdown()
            server.server_close()
        timer.join()


def test_an_app_answering_503_while_it_warms_up_is_waited_for() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), WarmingHandler)
    server.warm_at = time.monotonic() + 0.8
    for running in _serve(server):
        (info,) = wait_ready(Target({80: running.server_address[1]}), (), 10.0, lambda: True)
        assert info.status == 200 and info.elapsed >= 0.7


def test_a_502_that_lasts_the_whole_start_wait_is_taken_as_it_is(proxy) -> None:
    """No upstream ever: at the bound the port is returned with its 502 (probing then
    shows what it serves), not called silent."""
    start = time.monotonic()
    (info,) = wait_ready(Target({80: proxy.server_address[1]}), (), 1.5, lambda: True)
    assert (info.port, info.protocol, info.status) == (80, "http", 502)
    assert 1.5 <= time.monotonic() - start < 4.0


def test_with_no_statuses_to_wait_past_the_first_answer_is_ready(proxy) -> None:
    start = time.monotonic()
    (info,) = wait_ready(Target({80: proxy.server_address[1]}), (), 10.0, lambda: True,
                         not_ready=())
    assert info.status == 502 and time.monotonic() - start < 1.5


def test_a_port_listened_on_only_inside_is_said_at_once(closing_port: int) -> None:
    """qa/loopback (`http.server --bind 127.0.0.1`): the kernel's view says the app listens
    on the container's loopback only; the wait ends at once instead of at the bound."""
    start = time.monotonic()
    (info,) = wait_ready(Target({8000: closing_port}), (), 60.0, lambda: True,
                         listening=lambda: {8000}, loopback_only=lambda: {8000})
    assert (info.port, info.protocol, info.speaks_http) == (8000, LOOPBACK_ONLY, False)
    assert time.monotonic() - start < 10.0


def test_a_loopback_listener_next_to_an_answering_port_does_not_matter(proxy) -> None:
    """The kernel's view counts only while no HTTP answer comes."""
    (info,) = wait_ready(Target({80: proxy.server_address[1]}), (), 5.0, lambda: True,
                         loopback_only=lambda: {80}, not_ready=())
    assert (info.protocol, info.status) == ("http", 502)

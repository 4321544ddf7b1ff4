"""HTTP probing against real local servers: crawl, commands, judging, replay, readiness."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from probes import ready
from probes.apispec import DOC_PAGES, WELL_KNOWN_PATHS, parse_document
from probes.errors import AppExitedError, NotReadyError, ProbeSpecError
from probes.http import counts, evaluate, replay, run
from probes.ready import wait_ready
from probes.records import (
    NOT_HTTP,
    ApiSpecUse,
    HttpProbeOptions,
    ProbeCommand,
    ReadyInfo,
    RequestResult,
    Target,
)
from tests.unit.conftest import serve_tcp

# Like most hand-written servers: stdlib http.server with do_GET only (HEAD gets 501),
# several answers without a Content-Type, chunked bodies, and Connection: close.
PAGES = {
    "/": (None, '<a href="/page.html">p</a><link rel="stylesheet" href="/static/site.css">'
                '<img src="/img/logo.png"><a href="/gone">404</a>'
                '<a href="mailto:x@example.com">m</a><a href="http://example.com/">e</a>'),
    "/page.html": ("text/html", '<a href="/">home</a><a href="sub/deep.html#top">deep</a>'
                                '<a href="/old">old</a>'),
    "/sub/deep.html": ("text/html; charset=utf-8", '<a href="deeper.html">deeper</a>'),
    "/sub/deeper.html": (None, "<p>the end</p>"),
    "/moved.html": ("application/octet-stream", "<p>moved here</p>"),
    "/static/site.css": (None, "body { background: url('../img/bg.png'); }"),
    "/img/logo.png": ("image/png", "\x89PNG logo"),
    "/img/bg.png": (None, "\x89PNG background"),
}
DEPTH_1 = {"/", "/page.html", "/static/site.css", "/img/logo.png", "/gone"}
DEPTH_2 = DEPTH_1 | {"/sub/deep.html", "/old", "/img/bg.png"}
DEPTH_3 = DEPTH_2 | {"/sub/deeper.html", "/moved.html"}
AUTH = "Basic " + base64.b64encode(b"alice:s3cret").decode()
# What a default run asks every site for besides its pages: 404s on this site.
WELL_KNOWN = ["/robots.txt", "/favicon.ico", *WELL_KNOWN_PATHS, *DOC_PAGES]


class SiteHandler(BaseHTTPRequestHandler):
    """A small generated site; every request is logged on the server. No do_HEAD."""

    protocol_version = "HTTP/1.1"
    extra_pages: dict[str, tuple[str | None, str]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, ctype: str | None, body: bytes,
               extra: dict | None = None) -> None:
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        half = len(body) // 2
        for chunk in (body[:half], body[half:]):
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _log(self, body: bytes = b"") -> None:
        self.server.log.append((self.command, self.path, dict(self.headers), body))

    def do_GET(self) -> None:
        self._log()
        pages = {**PAGES, **self.extra_pages}
        if self.path in pages:
            ctype, text = pages[self.path]
            self._reply(200, ctype, text.encode("latin-1"))
        elif self.path == "/old":
            self._reply(302, None, b"", {"Location": "/moved.html"})
        elif self.path == "/slow":
            time.sleep(0.6)  # a slow app: longer than the test's time budget
            self._reply(200, None, b"finally")
        elif self.path == "/boom":
            self.send_error(500)
        elif self.path == "/private":
            ok = self.headers.get("Authorization") == AUTH
            self._reply(200 if ok else 401, None, b"secret" if ok else b"who?")
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._log(body)
        if self.path == "/orders" and self.headers.get("Content-Type") == "application/json":
            self._reply(201, "application/json", body)
            return
        if self.path != "/echo" or self.headers.get("X-Probe") != "yes":
            self._reply(400, None, b"missing X-Probe")
            return
        try:
            doc = json.loads(body)
        except ValueError:
            self._reply(400, None, b"not json")
            return
        self._reply(200, "application/json", json.dumps({"echo": doc}).encode())


def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    server.log = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def site() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler))


def _tls_context(tmp_path: Path) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[ThreadingHTTPServer]:
    """A TLS port as Python's ssl has it: plain HTTP gets the connection closed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    server.socket = _tls_context(tmp_path).wrap_socket(server.socket, server_side=True,
                                                        do_handshake_on_connect=False)
    yield from _serve(server)


# What Go's net/http (Caddy, Traefik, most Go services) answers to plain HTTP on a TLS port.
GO_PLAIN_ON_TLS = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                   b"Client sent an HTTP request to an HTTPS server.\n")


class _GoLikeTLSServer(ThreadingHTTPServer):
    """A TLS port as Go's net/http has it: plain HTTP gets a 400 in plain HTTP."""

    context: ssl.SSLContext
    tls_refused = 0  # handshakes failed before TLS is up (Caddy making its certificate)

    def get_request(self):
        sock, addr = self.socket.accept()
        if sock.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS handshake record
            if self.tls_refused > 0:
                self.tls_refused -= 1
                sock.close()
                raise OSError("no certificate yet")
            return self.context.wrap_socket(sock, server_side=True), addr
        sock.recv(65536)  # the request, read first as Go does (else the close is a reset)
        sock.sendall(GO_PLAIN_ON_TLS)
        sock.close()
        raise OSError("plain HTTP on the TLS port, answered")  # socketserver skips it


@pytest.fixture
def go_tls_site(tmp_path: Path) -> Iterator[ThreadingHTTPServer]:
    server = _GoLikeTLSServer(("127.0.0.1", 0), SiteHandler)
    server.context = _tls_context(tmp_path)
    yield from _serve(server)


class _BadRequestHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(400)
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b"bad request")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def bad_request_site() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _BadRequestHandler))


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _target(server: ThreadingHTTPServer) -> Target:
    return Target({80: server.server_address[1]})


def _crawl_paths(summary) -> list[str]:
    return [r.path for r in summary.requests if r.discovered_by == "crawl"]


def test_crawl_reaches_exactly_the_paths_to_depth_2_each_once(site) -> None:
    options = HttpProbeOptions(default_probe=False, max_depth=2, well_known=False)
    summary = run(_target(site), options)
    paths = _crawl_paths(summary)
    assert sorted(paths) == sorted(DEPTH_2)
    assert Counter(path for _, path, _, _ in site.log) == Counter(DEPTH_2)
    assert {r.method for r in summary.requests} == {"GET"}
    assert paths[0] == "/"  # breadth first from the root
    assert summary.counts == {"2xx": 6, "3xx": 1, "4xx": 1, "5xx": 0, "unsupported": 0,
                              "error": 0}
    assert summary.ok and summary.failure is None and summary.notes == ()


def test_crawl_stops_at_a_lowered_max_depth(site) -> None:
    summary = run(_target(site), HttpProbeOptions(default_probe=False, max_depth=1,
                                                  well_known=False))
    assert sorted(_crawl_paths(summary)) == sorted(DEPTH_1)
    # found, not fetched; named as the app is addressed (container port 80), not by the
    # port it happened to be published on
    assert "http://127.0.0.1/sub/deep.html" in summary.discovered


def test_default_run_asks_what_a_browser_and_a_crawler_ask_then_crawls(site) -> None:
    summary = run(_target(site), HttpProbeOptions())
    assert [(r.discovered_by, r.method, r.path, r.status)
            for r in summary.requests[:2 + len(WELL_KNOWN)]] == [
        ("default", "GET", "/", 200), ("default", "HEAD", "/", 501),
        *[("well-known", "GET", path, 404) for path in WELL_KNOWN]]
    assert sorted(_crawl_paths(summary)) == sorted(DEPTH_3 - {"/"})  # "/" reused, not refetched
    gets = Counter(path for method, path, _, _ in site.log if method == "GET")
    assert gets == Counter([*DEPTH_3, *WELL_KNOWN])
    redirect = next(r for r in summary.requests if r.path == "/old")
    assert redirect.status == 302 and redirect.length == 0  # recorded, not followed
    # The server's own HEAD 501 is "unsupported", neither a server error nor a failure.
    assert summary.counts == {"2xx": 8, "3xx": 1, "4xx": 16, "5xx": 0, "unsupported": 1,
                              "error": 0}
    assert summary.ok and summary.failure is None and summary.apispecs == ()


def test_results_record_the_answer(site) -> None:
    summary = run(_target(site), HttpProbeOptions(default_probe=False, crawl=False,
                                                  commands=(ProbeCommand(resource="/img/logo.png"),),
                                                  well_known=False))
    (result,) = summary.requests
    port = site.server_address[1]
    assert result.url == f"http://127.0.0.1:{port}/img/logo.png"
    assert (result.port, result.protocol, result.status, result.discovered_by) == (
        80, "http", 200, "user")
    assert result.content_type == "image/png"
    assert result.length == len("\x89PNG logo".encode("latin-1"))  # read through the chunks
    assert result.sha256 == hashlib.sha256("\x89PNG logo".encode("latin-1")).hexdigest()
    assert result.error is None and result.elapsed > 0


def test_post_command_sends_json_body_and_header(site) -> None:
    command = ProbeCommand(method="POST", resource="/echo",
                           headers=(("X-Probe", "yes"), ("Content-Type", "application/json")),
                           body='{"n": 1}')
    summary = run(_target(site), HttpProbeOptions(default_probe=False, crawl=False,
                                                  commands=(command,)))
    (result,) = summary.requests
    assert (result.method, result.path, result.status) == ("POST", "/echo", 200)
    assert result.body == b'{"n": 1}'
    assert result.headers == (("X-Probe", "yes"), ("Content-Type", "application/json"))
    ((method, path, headers, body),) = site.log
    assert (method, path, body) == ("POST", "/echo", b'{"n": 1}')
    assert headers["X-Probe"] == "yes" and headers["Content-Type"] == "application/json"


def test_body_file_and_basic_auth(site, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b'{"from": "file"}')
    commands = (
        ProbeCommand(method="POST", resource="/echo", headers=(("X-Probe", "yes"),),
                     body_file=str(payload)),
        ProbeCommand(resource="/private", username="alice", password="s3cret"),
        ProbeCommand(resource="/private"),
    )
    summary = run(_target(site), HttpProbeOptions(default_probe=False, crawl=False,
                                                  commands=commands))
    assert [r.status for r in summary.requests] == [200, 200, 401]
    assert site.log[0][3] == b'{"from": "file"}'
    assert site.log[1][2]["Authorization"] == AUTH
    assert summary.counts["4xx"] == 1 and summary.ok  # a 4xx is reported, not a failure


def test_command_with_crawl_crawls_from_its_resource(site) -> None:
    command = ProbeCommand(resource="/sub/deep.html", crawl=True)
    summary = run(_target(site), HttpProbeOptions(default_probe=False, crawl=False,
                                                  commands=(command,)))
    assert [(r.discovered_by, r.path) for r in summary.requests] == [
        ("user", "/sub/deep.html"), ("crawl", "/sub/deeper.html")]


def test_5xx_fails_the_run_unless_fail_on_none(site) -> None:
    commands = (ProbeCommand(resource="/boom"),)
    summary = run(_target(site), HttpProbeOptions(crawl=False, commands=commands))
    assert summary.failure == "server errors: GET /boom -> 500"
    assert not summary.ok
    assert summary.counts == {"2xx": 1, "3xx": 0, "4xx": 0, "5xx": 1, "unsupported": 1,
                              "error": 0}
    lenient = run(_target(site), HttpProbeOptions(crawl=False, commands=commands, fail_on="none"))
    assert lenient.ok


def test_all_connection_errors_fail(closed_port: int) -> None:
    summary = run(Target({80: closed_port}), HttpProbeOptions(request_timeout=2.0))
    assert summary.counts == {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "unsupported": 0,
                              "error": 2}
    assert summary.failure == (
        "no request succeeded (2 error); no answer: "
        "GET / -> http: connection refused; https: connection refused, "
        "HEAD / -> http: connection refused; https: connection refused"
    )


def test_404_is_counted_but_not_a_failure() -> None:
    results = [_result("GET", "/", 200), _result("GET", "/nope", 404)]
    assert counts(results) == {"2xx": 1, "3xx": 0, "4xx": 1, "5xx": 0, "unsupported": 0,
                               "error": 0}
    assert evaluate(results, "5xx") is None


def test_evaluate_messages() -> None:
    assert evaluate([], "5xx") == "no request was made"
    assert evaluate([_result("GET", "/a", 404)], "none") == "no request succeeded (1 4xx)"
    crawl_error = _result("GET", "/slow", None, by="crawl", error="no answer within 10 s")
    assert evaluate([_result("GET", "/", 200), crawl_error], "5xx") is None
    many = [_result("GET", "/", 200)] + [_result("GET", f"/e{i}", 500 + i) for i in range(7)]
    assert evaluate(many, "5xx") == (
        "server errors: GET /e0 -> 500, GET /e1 -> 501, GET /e2 -> 502, GET /e3 -> 503, "
        "GET /e4 -> 504 and 2 more")
    two_ports = [_result("GET", "/", 200, port=80), _result("GET", "/", 502, port=8080)]
    assert evaluate(two_ports, "5xx") == "server errors: GET / -> 502 (port 8080)"


def test_replay_gives_the_same_answers(site) -> None:
    command = ProbeCommand(method="POST", resource="/echo", headers=(("X-Probe", "yes"),),
                           body='{"k": [1, 2]}')
    first = run(_target(site), HttpProbeOptions(commands=(command,)))
    site.log.clear()
    again = replay(_target(site), first.requests)
    assert [(r.method, r.path, r.discovered_by) for r in again] == [
        (r.method, r.path, r.discovered_by) for r in first.requests]
    assert [r.sha256 for r in again] == [r.sha256 for r in first.requests]
    assert [r.status for r in again] == [r.status for r in first.requests]
    assert ("POST", "/echo") in [(m, p) for m, p, _, _ in site.log]
    post = next(entry for entry in site.log if entry[0] == "POST")
    assert post[2]["X-Probe"] == "yes" and post[3] == b'{"k": [1, 2]}'


def test_bounds_stop_the_run_with_a_note(site) -> None:
    calls: list[RequestResult] = []
    summary = run(_target(site), HttpProbeOptions(max_requests=3), on_request=calls.append)
    assert len(summary.requests) == 3 and calls == list(summary.requests)
    assert summary.notes == (
        "port 80: crawl stopped at max_requests (3); 4 URL(s) not fetched",
    )
    pages = run(_target(site), HttpProbeOptions(default_probe=False, max_pages=2))
    assert [r.path for r in pages.requests] == ["/", "/page.html"]
    assert pages.notes == ("port 80: crawl stopped at max_pages (2); 5 URL(s) not fetched",)


def test_proxy_environment_is_ignored(site, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    summary = run(_target(site), HttpProbeOptions(crawl=False))
    assert summary.ok and [r.status for r in summary.requests] == [200, 501]


def test_unpublished_ports_are_spec_errors(site) -> None:
    with pytest.raises(ProbeSpecError, match=r"ports: container port 81 is not published"):
        run(_target(site), HttpProbeOptions(ports=(81,)))
    bad = HttpProbeOptions(commands=(ProbeCommand(port=9000),))
    with pytest.raises(ProbeSpecError, match=r"commands\[0\].port: container port 9000"):
        run(_target(site), bad)


def test_https_port_is_found_after_http_fails(tls_site) -> None:
    summary = run(_target(tls_site), HttpProbeOptions(max_depth=1))
    assert {r.protocol for r in summary.requests} == {"https"}
    assert summary.ok and summary.requests[0].url.startswith("https://127.0.0.1:")
    (info,) = wait_ready(_target(tls_site), (), 10.0, lambda: True)
    assert (info.port, info.protocol) == (80, "https")


def test_a_tls_port_answering_plain_http_with_400_is_found_as_https(go_tls_site) -> None:
    (info,) = wait_ready(_target(go_tls_site), (), 10.0, lambda: True)
    assert (info.port, info.protocol, info.status) == (80, "https", 200)
    summary = run(_target(go_tls_site), HttpProbeOptions(max_depth=1))
    assert {r.protocol for r in summary.requests} == {"https"}
    assert summary.requests[0].status == 200


def test_a_tls_port_that_says_so_is_waited_for_until_its_tls_is_up(go_tls_site) -> None:
    """Caddy answers plain HTTP with Go's 400 before its certificate is made, while its
    handshakes still fail: the port is not taken for plain HTTP, it is waited for."""
    go_tls_site.tls_refused = 2
    (info,) = wait_ready(_target(go_tls_site), (), 30.0, lambda: True)
    assert (info.port, info.protocol, info.status) == (80, "https", 200)
    assert go_tls_site.tls_refused == 0


def test_a_plain_port_answering_400_stays_http(bad_request_site) -> None:
    """The https attempt a 400 leads to finds no TLS: the plain answer stands."""
    (info,) = wait_ready(_target(bad_request_site), (), 10.0, lambda: True)
    assert (info.port, info.protocol, info.status) == (80, "http", 400)
    summary = run(_target(bad_request_site), HttpProbeOptions(crawl=False))
    assert summary.requests[0].protocol == "http" and summary.requests[0].status == 400


def test_wait_ready_returns_when_http_answers(site) -> None:
    (info,) = wait_ready(_target(site), (80,), 5.0, lambda: True)
    assert isinstance(info, ReadyInfo) and (info.port, info.protocol) == (80, "http")
    assert 0 <= info.elapsed < 5.0


def test_wait_ready_raises_app_exited(closing_port: int) -> None:
    alive = iter([True, True, False])
    start = time.monotonic()
    with pytest.raises(AppExitedError, match=r"the app exited after .* before answering HTTP "
                                             r"on port\(s\) 80$"):
        wait_ready(Target({80: closing_port}), (), 30.0, lambda: next(alive))
    assert time.monotonic() - start < 5.0


def test_wait_ready_not_ready_within_the_bound(closing_port: int) -> None:
    start = time.monotonic()
    with pytest.raises(NotReadyError) as info:
        wait_ready(Target({80: closing_port}), (80,), 1.5, lambda: True)
    assert time.monotonic() - start < 1.5 + 2.0
    assert str(info.value) == (
        f"no HTTP answer on port(s) 80 (127.0.0.1:{closing_port}) within 1.5 s")
    assert info.value.ports == (80,)


def _result(method: str, path: str, status: int | None, *, by: str = "user",
            error: str | None = None, port: int = 80) -> RequestResult:
    return RequestResult(method=method, url=f"http://127.0.0.1:1{path}", path=path, port=port,
                         protocol="http", status=status, content_type=None, length=None,
                         sha256=None, elapsed=0.0, error=error, discovered_by=by)


def test_wait_ready_waits_for_an_app_that_starts_late(closed_port: int) -> None:
    started: list[ThreadingHTTPServer] = []

    def start() -> None:
        server = ThreadingHTTPServer(("127.0.0.1", closed_port), SiteHandler)
        server.log = []
        started.append(server)
        server.serve_forever(poll_interval=0.05)

    timer = threading.Timer(0.5, start)
    timer.start()
    try:
        (info,) = wait_ready(Target({80: closed_port}), (), 10.0, lambda: True)
        assert info.protocol == "http" and 0.4 <= info.elapsed < 10.0
    finally:
        timer.cancel()
        for server in started:
            server.shutdown()
            server.server_close()
        timer.join()


def test_time_budget_bounds_the_run(site) -> None:
    commands = (ProbeCommand(resource="/slow"), ProbeCommand(resource="/"),
                ProbeCommand(resource="/page.html"))
    start = time.monotonic()
    summary = run(_target(site), HttpProbeOptions(default_probe=False, commands=commands,
                                                  time_budget=0.3))
    assert time.monotonic() - start < 2.0
    (slow,) = summary.requests
    assert (slow.path, slow.status, slow.error) == ("/slow", None, "no answer within 0.3 s")
    assert summary.notes == (
        "stopped at the time budget (0.3 s); 2 default/command request(s) not sent",
        "port 80: crawl stopped at the time budget (0.3 s); 1 URL(s) not fetched",
    )
    assert not summary.ok


# -- issue 14: what minify invents is judged as such ----------------------------------

def test_head_501_is_unsupported_only_when_minify_invented_the_request(site) -> None:
    summary = run(_target(site), HttpProbeOptions(crawl=False))
    head = summary.requests[1]
    assert (head.method, head.status, head.discovered_by, head.status_class) == (
        "HEAD", 501, "default", "unsupported")
    assert summary.ok
    asked = run(_target(site), HttpProbeOptions(
        crawl=False, default_probe=False,
        commands=(ProbeCommand(resource="/"), ProbeCommand(method="HEAD", resource="/"))))
    assert asked.failure == "server errors: HEAD / -> 501"
    assert asked.counts["5xx"] == 1 and asked.counts["unsupported"] == 0
    assert run(_target(site), HttpProbeOptions(
        crawl=False, default_probe=False, fail_on="none",
        commands=(ProbeCommand(resource="/"), ProbeCommand(method="HEAD", resource="/")))).ok


def test_405_to_an_invented_request_is_unsupported_to_a_user_one_a_4xx() -> None:
    crawled = _result("GET", "/form", 405, by="crawl")
    asked = _result("GET", "/form", 405)
    assert (crawled.status_class, asked.status_class) == ("unsupported", "4xx")
    assert evaluate([_result("GET", "/", 200), crawled, asked], "5xx") is None
    assert evaluate([crawled], "5xx") == "no request succeeded (1 unsupported)"


def test_failure_listing_says_how_each_request_was_found() -> None:
    results = [_result("GET", "/", 200, by="default"), _result("GET", "/a", 500, by="crawl"),
               _result("GET", "/items/1", 502, by="apispec"),
               _result("GET", "/favicon.ico", 503, by="well-known"),
               _result("POST", "/x", 500)]
    assert evaluate(results, "5xx") == (
        "server errors: GET /a -> 500 (found by crawling), GET /items/1 -> 502 (from the API "
        "document), GET /favicon.ico -> 503 (a well-known path), POST /x -> 500")


class SitemapHandler(SiteHandler):
    extra_pages = {
        "/robots.txt": ("text/plain", "User-agent: *\nDisallow:\n"
                                      "Sitemap: https://www.example.com/sitemap-index.xml\n"),
        "/sitemap-index.xml": ("application/xml",
                               "<sitemapindex><sitemap><loc>https://www.example.com/pages.xml"
                               "</loc></sitemap></sitemapindex>"),
        "/pages.xml": (None, "<urlset><url><loc>https://www.example.com/hidden.html</loc></url>"
                             "<url><loc>https://www.example.com/page.html</loc></url></urlset>"),
        "/hidden.html": (None, '<html><a href="/only-from-hidden.html">x</a>'),
        "/only-from-hidden.html": ("text/html", "leaf"),
    }


def test_robots_txt_sitemaps_and_favicon(tmp_path: Path) -> None:
    for server in _serve(ThreadingHTTPServer(("127.0.0.1", 0), SitemapHandler)):
        summary = run(_target(server), HttpProbeOptions(max_depth=1))
        found = [(r.discovered_by, r.path, r.status) for r in summary.requests
                 if r.discovered_by == "well-known"]
        assert found == [
            ("well-known", "/robots.txt", 200),
            ("well-known", "/favicon.ico", 404),  # an honest answer, not a failure
            ("well-known", "/sitemap-index.xml", 200),
            ("well-known", "/pages.xml", 200),
            *[("well-known", p, 404) for p in (*WELL_KNOWN_PATHS, *DOC_PAGES)],  # no API
            ("well-known", "/hidden.html", 200),  # crawl seeds from the sitemap,
            ("well-known", "/page.html", 200),  # its host ignored: this app is that site
        ]
        # /page.html is linked from / as well: fetched once.
        assert [r.path for r in summary.requests].count("/page.html") == 1
        assert ("crawl", "/only-from-hidden.html") in [
            (r.discovered_by, r.path) for r in summary.requests]
        assert summary.ok


OPENAPI = {
    "openapi": "3.0.2",
    "paths": {
        "/items/{item_id}": {"get": {"parameters": [
            {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"},
             "example": "apple"}]}},
        "/reports": {"get": {"parameters": [
            {"name": "format", "in": "query", "required": False,
             "schema": {"$ref": "#/components/schemas/Format"}}]}},
        "/orders": {"post": {"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["item"],
                       "properties": {"item": {"type": "string", "example": "apple"}}}}}}}},
    },
    "components": {"schemas": {"Format": {"type": "string", "enum": ["csv", "json"]}}},
}


class ApiHandler(SiteHandler):
    """A JSON API: / says nothing of its endpoints; only its document names them."""

    extra_pages = {
        "/": ("application/json", '{"service": "shop"}'),
        "/openapi.json": ("application/json", json.dumps(OPENAPI)),
        "/items/apple": ("application/json", '{"name": "apple"}'),
        "/reports?format=csv": ("text/csv", "a,b\n"),
    }


@pytest.fixture
def api_site() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), ApiHandler))


def _by(summary, how: str) -> list[tuple[str, str, int | None]]:
    return [(r.method, r.path, r.status) for r in summary.requests if r.discovered_by == how]


def test_api_document_at_a_well_known_path_gets_one_request_per_safe_operation(api_site) -> None:
    summary = run(_target(api_site), HttpProbeOptions())
    assert _by(summary, "well-known") == [
        ("GET", "/robots.txt", 404), ("GET", "/favicon.ico", 404),
        ("GET", "/openapi.json", 200),  # a document: every other address is asked too
        *[("GET", p, 404) for p in (*WELL_KNOWN_PATHS, *DOC_PAGES) if p != "/openapi.json"]]
    assert _by(summary, "apispec") == [("GET", "/items/apple", 200),
                                       ("GET", "/reports?format=csv", 200)]
    assert "POST" not in [m for m, _, _, _ in api_site.log]  # never destructive by default
    assert summary.apispecs == (ApiSpecUse(
        source="/openapi.json", port=80, version="3.0.2", discovered_by="well-known",
        operations=3, requests=2,
        skipped=("POST /orders: not sent (only GET and HEAD by default; "
                 "--http-probe-apispec-methods all sends it)",)),)
    assert summary.ok
    again = replay(_target(api_site), summary.requests)
    assert [r.sha256 for r in again] == [r.sha256 for r in summary.requests]


def test_apispec_methods_all_sends_json_bodies(api_site) -> None:
    summary = run(_target(api_site), HttpProbeOptions(apispec_methods="all", crawl=False,
                                                      apispec_paths=("/openapi.json",)))
    post = next(r for r in summary.requests if r.method == "POST")
    assert (post.path, post.status, post.body, post.discovered_by) == (
        "/orders", 201, b'{"item":"apple"}', "apispec")
    assert post.headers == (("Content-Type", "application/json"),)
    assert _by(summary, "user") == [("GET", "/openapi.json", 200)]
    assert summary.apispecs[0].discovered_by == "user" and summary.apispecs[0].skipped == ()


def test_api_document_linked_from_the_root_answer(api_site, monkeypatch) -> None:
    yaml_doc = "openapi: 3.0.0\npaths:\n  /items/{id}:\n    get:\n      parameters:\n" \
               "        - {name: id, in: path, required: true, example: apple}\n"
    monkeypatch.setattr(ApiHandler, "extra_pages", {
        **ApiHandler.extra_pages,
        "/": (None, '{"docs": "/internal/spec.yaml"}'),
        "/internal/spec.yaml": ("text/plain", yaml_doc)})
    summary = run(_target(api_site), HttpProbeOptions(max_depth=0))
    assert _by(summary, "crawl") == [("GET", "/internal/spec.yaml", 200)]
    # Both documents: the linked one first; the same request is not sent twice.
    assert _by(summary, "apispec") == [("GET", "/items/apple", 200),
                                       ("GET", "/reports?format=csv", 200)]
    assert [(a.source, a.discovered_by, a.requests) for a in summary.apispecs] == [
        ("/internal/spec.yaml", "crawl", 1), ("/openapi.json", "well-known", 2)]


def test_user_apispec_file_and_a_missing_user_apispec_path(api_site, tmp_path: Path) -> None:
    doc = parse_document(json.dumps(OPENAPI).encode(), "api.json")
    summary = run(_target(api_site), HttpProbeOptions(
        crawl=False, apispec_docs=(doc,), apispec_paths=("/v9/spec.json",)))
    assert _by(summary, "user") == [("GET", "/v9/spec.json", 404)]
    assert _by(summary, "apispec") == [("GET", "/items/apple", 200),
                                       ("GET", "/reports?format=csv", 200)]
    assert summary.failure == ("--http-probe-apispec /v9/spec.json (port 80): "
                               "GET /v9/spec.json -> 404, no API document there")


def test_answers_that_are_not_a_document_are_passed_over(site) -> None:
    class Everything(SiteHandler):  # a single-page app: every path gives the index page
        def do_GET(self) -> None:
            self._log()
            self._reply(200, "text/html", b"<html><body>app</body></html>")

    for server in _serve(ThreadingHTTPServer(("127.0.0.1", 0), Everything)):
        summary = run(_target(server), HttpProbeOptions(max_depth=0))
        assert [p for _, p, _ in _by(summary, "well-known")] == WELL_KNOWN
        assert summary.apispecs == () and summary.ok


SWAGGER_UI = """<!-- HTML for static distribution bundle build -->
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>Swagger UI</title>
  <link rel="stylesheet" type="text/css" href="./swagger-ui.css" >
  <link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32" />
</head>
<body>
<div id="swagger-ui"></div>
<script src="./swagger-ui-bundle.js"> </script>
<script src="./swagger-ui-init.js"> </script>
</body>
</html>
"""
REDOC = """<!DOCTYPE html><html><head><title>ReDoc</title></head><body>
<redoc spec-url="/openapi.json"></redoc><script src="/static/redoc.standalone.js"></script>
</body></html>"""


class SwaggerUiHandler(ApiHandler):
    """swagger-ui-express's way: the document at /openapi.json, the page that shows it at
    /api-docs (a redirect to /api-docs/), its assets next to it; and a Redoc page."""

    extra_pages = {
        **ApiHandler.extra_pages,
        "/api-docs/": ("text/html; charset=utf-8", SWAGGER_UI),
        "/api-docs/swagger-ui.css": ("text/css", ".swagger-ui{}"),
        "/api-docs/favicon-32x32.png": ("image/png", "\x89PNG"),
        "/api-docs/swagger-ui-bundle.js": ("application/javascript", "var SwaggerUIBundle;"),
        "/api-docs/swagger-ui-init.js": ("application/javascript", "window.onload = 1;"),
        "/redoc": ("text/html", REDOC),
        "/static/redoc.standalone.js": ("application/javascript", "var Redoc;"),
    }

    def do_GET(self) -> None:
        if self.path == "/api-docs":
            self._log()
            self._reply(301, "text/html", b"Redirecting", {"Location": "/api-docs/"})
            return
        super().do_GET()


def test_every_document_address_is_asked_and_the_pages_there_are_crawled() -> None:
    """qa/express: discovery stopped at /openapi.json, so /api-docs was never asked and the
    minified app lost Swagger UI's files (its bundle.js answered with the HTML page)."""
    for server in _serve(ThreadingHTTPServer(("127.0.0.1", 0), SwaggerUiHandler)):
        summary = run(_target(server), HttpProbeOptions())
        known = {path: status for _, path, status in _by(summary, "well-known")}
        assert (known["/openapi.json"], known["/api-docs"], known["/redoc"]) == (200, 301, 200)
        assert sorted(_crawl_paths(summary)) == [
            "/api-docs/", "/api-docs/favicon-32x32.png", "/api-docs/swagger-ui-bundle.js",
            "/api-docs/swagger-ui-init.js", "/api-docs/swagger-ui.css",
            "/static/redoc.standalone.js"]
        assert [a.source for a in summary.apispecs] == ["/openapi.json"]
        assert summary.ok


def test_a_single_page_app_answering_every_path_is_not_crawled_again() -> None:
    """The index page at every document address is the root answer: nothing new."""
    class Spa(SiteHandler):
        def do_GET(self) -> None:
            self._log()
            self._reply(200, "text/html", b'<html><script src="main.js"></script></html>')

    for server in _serve(ThreadingHTTPServer(("127.0.0.1", 0), Spa)):
        summary = run(_target(server), HttpProbeOptions())
        assert _crawl_paths(summary) == ["/main.js"]  # from /, not from /docs/ or /swagger-ui/


class HostEchoHandler(SiteHandler):
    """Builds absolute URLs from the Host header, as many apps do, and says it on its
    error page, as Apache does ("Server at 127.0.0.1 Port 8080")."""

    def do_GET(self) -> None:
        self._log()
        host = self.headers.get("Host", "")
        if self.path == "/":
            body = f'<a href="http://{host}/abs.html">abs</a><a href="http://example.com/">x</a>'
            self._reply(200, "text/html", body.encode())
        elif self.path == "/abs.html":
            self._reply(200, "text/html", f"<p>served for {host}</p>".encode())
        else:
            name, _, port = host.partition(":")
            self._reply(404, "text/html", f"<address>Server at {name} Port {port or 80}"
                                          "</address>".encode())


def test_the_host_header_is_the_same_in_every_run_whatever_port_is_published() -> None:
    """qa finding 7: the Host was 127.0.0.1:<the port published in this run>, so pages that
    echo it differed between runs and were compared by status only."""
    runs = []
    for _ in range(2):  # two runs: the app published on another random port each time
        for server in _serve(ThreadingHTTPServer(("127.0.0.1", 0), HostEchoHandler)):
            target = Target({8080: server.server_address[1]})
            summary = run(target, HttpProbeOptions(well_known=False))
            again = replay(target, summary.requests)
            assert {h["Host"] for _, _, h, _ in server.log} == {"127.0.0.1:8080"}
            runs.append([(r.path, r.status, r.sha256) for r in (*summary.requests, *again)])
    assert runs[0] == runs[1]
    assert [path for path, _, _ in runs[0]] == ["/", "/", "/abs.html"] + ["/", "/", "/abs.html"]


def test_the_users_own_host_header_is_sent_as_given(site) -> None:
    command = ProbeCommand(resource="/page.html", headers=(("host", "shop.example"),))
    run(_target(site), HttpProbeOptions(commands=(command,), crawl=False, default_probe=False))
    assert [h.get("host") for _, _, h, _ in site.log] == ["shop.example"]
    assert Target({80: 1}).authority(80, "http") == "127.0.0.1"
    assert Target({443: 1}).authority(443, "https") == "127.0.0.1"
    assert Target({443: 1}).authority(443, "http") == "127.0.0.1:443"


# -- issue 14: a port that listens but speaks no HTTP ---------------------------------

@pytest.fixture
def redis_like() -> Iterator[int]:
    """Answers each line with a RESP error, like Redis does to an HTTP request."""
    yield from _line_server(b"-ERR unknown command\r\n")


@pytest.fixture
def text_only() -> Iterator[int]:
    """Answers text commands with an error and says nothing to a TLS ClientHello, like
    Redis does when the hello holds no newline."""
    yield from _line_server(b"-ERR unknown command\r\n", only_text=True)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts and never says anything (waits for a protocol it never gets)."""
    yield from _line_server(None)


def _line_server(reply: bytes | None, only_text: bool = False,
                 received: list[bytes] | None = None) -> Iterator[int]:
    def handle(conn: socket.socket) -> None:
        if reply is None:
            return  # held open, silent
        conn.settimeout(2)
        try:
            data = conn.recv(4096)
            if received is not None:
                received.append(data)
            if only_text and not data[:1].isalpha():
                conn.recv(4096)  # silent until the client gives up
            conn.sendall(reply)
        except OSError:
            pass
        conn.close()

    return serve_tcp(handle)


@pytest.mark.parametrize("fixture", ["redis_like", "closing_port", "text_only"])
def test_a_listening_port_that_refuses_http_and_tls_is_said_at_once(
        request, fixture, monkeypatch) -> None:
    monkeypatch.setattr(ready, "TLS_HANDSHAKE_TIMEOUT", 0.5)
    port = request.getfixturevalue(fixture)
    start = time.monotonic()
    (info,) = wait_ready(Target({6379: port}), (), 60.0, lambda: True,
                         listening=lambda: {6379})
    assert (info.port, info.protocol, info.speaks_http) == (6379, NOT_HTTP, False)
    assert time.monotonic() - start < 10.0  # not the 60 s start wait


def test_a_port_answering_in_its_own_protocol_gets_no_tls_handshake() -> None:
    """Redis answers an HTTP request line with "-ERR" at once, and a TLS ClientHello with
    silence: the text answer is enough, no handshake is waited out (3 s, each round)."""
    received: list[bytes] = []
    server = _line_server(b"-ERR unknown command\r\n", only_text=True, received=received)
    port = next(server)
    try:
        (info,) = wait_ready(Target({6379: port}), (), 60.0, lambda: True,
                             listening=lambda: {6379})
    finally:
        server.close()
    assert (info.port, info.protocol) == (6379, NOT_HTTP)
    sent = [data for data in received if data]  # b"": a bare connect, to see it accepts
    assert sent and all(data.startswith(b"GET / HTTP/1.") for data in sent)


def test_http_and_https_ports_are_not_taken_for_non_http(site, tls_site) -> None:
    target = Target({8080: site.server_address[1], 8443: tls_site.server_address[1]})
    infos = wait_ready(target, (), 10.0, lambda: True, listening=lambda: {8080, 8443})
    assert [(i.port, i.protocol) for i in infos] == [(8080, "http"), (8443, "https")]


def test_without_the_kernel_view_a_refusing_port_is_waited_for(redis_like) -> None:
    with pytest.raises(NotReadyError) as info:
        wait_ready(Target({6379: redis_like}), (), 1.5, lambda: True)
    assert str(info.value) == (
        f"no HTTP answer on port(s) 6379 (127.0.0.1:{redis_like}) within 1.5 s")


def test_timeout_message_says_what_listens(silent_port, closing_port) -> None:
    target = Target({5432: silent_port, 8080: closing_port})
    with pytest.raises(NotReadyError) as info:
        wait_ready(target, (), 1.5, lambda: True, listening=lambda: {5432, 3000})
    assert str(info.value) == (
        f"no HTTP answer on port(s) 5432 (127.0.0.1:{silent_port}), 8080 (127.0.0.1:"
        f"{closing_port}) within 1.5 s: port(s) 5432 accept connections but gave no HTTP "
        "answer; nothing listens on port(s) 8080 in the container (the app listens on 3000)")


class _SessionSiteHandler(BaseHTTPRequestHandler):
    """A site behind a login, as Django's admin: its pages link to log-out addresses."""

    PAGES = {"/": b'<a href="/admin/">admin</a> <a href="/blog/layout.html">blog</a>',
             "/admin/": b'<a href="/admin/logout/">log out</a> <a href="/admin/users/">u</a>'
                        b' <a href="/account/Sign-Out?next=/">x</a> <a href="/signoff.php">y</a>',
             "/admin/users/": b"users", "/blog/layout.html": b"blog"}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.log.append(self.path)
        body = self.PAGES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        pass


def test_the_crawl_does_not_follow_log_out_links() -> None:
    """qa/django: a probe file logged in, and the crawl then reached /admin/logout/:
    every admin page after it was the login page."""
    for server in _serve(ThreadingHTTPServer(("127.0.0.1", 0), _SessionSiteHandler)):
        summary = run(_target(server), HttpProbeOptions(default_probe=False,
                                                        well_known=False))
        assert server.log == ["/", "/admin/", "/blog/layout.html", "/admin/users/"]
        assert summary.notes == (
            "port 80: not crawled, as a log-out link would end the probes' session: "
            "/admin/logout/, /account/Sign-Out?next=/, /signoff.php",)

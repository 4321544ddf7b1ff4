"""Probing orchestration rules without an engine: true failure messages, usage checks made
before anything starts, and the report's `probe` part."""

from __future__ import annotations

import io
from collections import Counter

import pytest

import probes
from minifier.errors import ProbeError, UsageError
from minifier.image.indexing import Indexed
from minifier.observe.probing import (
    _readiness_warnings,
    check_probes,
    http_probe_ports,
    loopback_message,
    not_http_message,
    probe_failed,
)
from minifier.options import ProbeSetup
from minifier.output.report import make_report
from minifier.output.summary import render_text
from minifier.records import (
    AccessRecord,
    BuildPlan,
    BuildResult,
    ImageInfo,
    Observation,
    VerifyResult,
)
from minifier.ui import Progress
from probes import ApiSpecUse, HttpProbeOptions, ProbeCommand, ProbeSummary, ReadyInfo
from tests.unit.fixtures import image_info

SETUP = ProbeSetup(http=HttpProbeOptions())


def _image(ports: tuple[str, ...]) -> ImageInfo:
    return image_info(ref="app:1", size=1, cmd=("app",), exposed_ports=ports)


def _request(path: str, status, by: str = "default", method: str = "GET"):
    return probes.RequestResult(method=method, url=f"http://127.0.0.1:1{path}", path=path,
                                port=8080, protocol="http", status=status, content_type=None,
                                length=0, sha256="0" * 64, elapsed=0.01, error=None,
                                discovered_by=by)


def _observation(requests, alive: bool = True, **extra) -> Observation:
    summary = ProbeSummary(requests=tuple(requests), discovered=(),
                           counts=probes.counts(requests),
                           failure=probes.evaluate(requests, "5xx"), **extra)
    return Observation(http=summary, execs=(), target=probes.Target({8080: 1}),
                       app_alive_after_probes=alive,
                       ports=(ReadyInfo(8080, "http", 0.5), ReadyInfo(6379, "not-http", 1.25)))


FAILING = [_request("/", 200), _request("/boom", 500, "crawl")]


# Issue 14 (a): "-15" was minify's own SIGTERM, never a crash of the app.
@pytest.mark.parametrize("exit_after_stop", [-15, 0, -9, None])
def test_an_app_alive_after_probing_is_not_said_to_have_crashed(exit_after_stop) -> None:
    with pytest.raises(ProbeError) as info:
        check_probes(_observation(FAILING, alive=True), SETUP, "app log", exit_after_stop)
    assert info.value.message == ("HTTP probing failed: server errors: GET /boom -> 500 "
                                  "(found by crawling)")
    assert info.value.detail == ""


@pytest.mark.parametrize("status,said", [(3, "exit status 3"), (-11, "killed by SIGSEGV"),
                                         (None, "exit status unknown")])
def test_an_app_gone_before_the_stop_crashed_by_itself(status, said) -> None:
    with pytest.raises(ProbeError) as info:
        check_probes(_observation(FAILING, alive=False), SETUP, "boom\nTraceback", status)
    assert info.value.message == ("HTTP probing failed: server errors: GET /boom -> 500 "
                                  f"(found by crawling); the app exited by itself during "
                                  f"probing ({said})")
    assert info.value.detail.endswith("  boom\n  Traceback")


def test_a_crash_on_a_crawled_page_fails_the_build_by_itself() -> None:
    """A crawled request without an answer fails nothing on its own; the app exiting on it
    does (the restart round must not take the server for a one-shot command)."""
    crashed = [_request("/", 200), _request("/boom", None, "crawl")]
    check_probes(_observation(crashed, alive=True), SETUP, "", -15)  # it answered later
    obs = _observation(crashed, alive=False)
    assert probe_failed(obs, SETUP)
    with pytest.raises(ProbeError) as info:
        check_probes(obs, SETUP, "Traceback", 4)
    assert info.value.message == ("HTTP probing failed: the app exited by itself during "
                                  "probing (exit status 4)")


# Issue 14 (b): a HEAD 501 to minify's own default request fails nothing.
def test_head_501_to_the_default_probe_passes() -> None:
    obs = _observation([_request("/", 200), _request("/", 501, method="HEAD")])
    check_probes(obs, SETUP, "", -15)
    assert obs.http.counts["unsupported"] == 1 and obs.http.counts["5xx"] == 0


def test_not_http_message() -> None:
    assert not_http_message(5432) == ("port 5432 accepts connections but does not speak HTTP: "
                                      "probe it with --exec '<client command>'")
    # RabbitMQ's AMQP port next to its HTTP API, built with --exec probes already
    assert not_http_message(5672, execs=True) == (
        "port 5672 accepts connections but does not speak HTTP: not probed over HTTP")


def test_a_warning_does_not_advise_exec_probes_that_were_given() -> None:
    ready = (ReadyInfo(15672, "http", 1.0, 200), ReadyInfo(5672, probes.NOT_HTTP, 0.4))
    warnings = _readiness_warnings(ready, 60.0, 0, Progress(io.StringIO(), live=False),
                                   execs=True)
    assert warnings == [not_http_message(5672, execs=True)]


def test_every_answer_a_4xx_fails_with_what_to_do() -> None:
    """squid with Debian's config: a proxy answers 400 to every plain request."""
    obs = _observation([_request("/", 400), _request("/robots.txt", 400),
                        _request("/", 501, method="HEAD")])
    with pytest.raises(ProbeError) as caught:
        check_probes(obs, SETUP, "", None)
    assert caught.value.message == ("HTTP probing failed: no request succeeded "
                                    "(2 4xx, 1 unsupported)")
    assert caught.value.detail == (
        "every request was answered with a 4xx: name a path the app serves with "
        "--http-probe-cmd (with a header it needs: --http-probe-cmd-file), or probe it "
        "another way with --exec '<client command>' and --no-http-probe")


def test_no_hint_when_something_else_failed_too() -> None:
    obs = _observation([_request("/", 404), _request("/x", None, "user")])
    with pytest.raises(ProbeError) as caught:
        check_probes(obs, SETUP, "", None)
    assert caught.value.detail == ""


def test_a_port_out_of_reach_is_said_with_its_address() -> None:
    assert loopback_message(8000, ("127.0.0.1",)) == (
        "port 8000: the app listens on 127.0.0.1:8000 only, inside the container: a "
        "published port cannot reach it; make the app listen on 0.0.0.0 (every address), "
        "or probe it with --exec '<client command>'")
    assert "listens on 127.0.0.1:3306 and [::1]:3306 only" in loopback_message(
        3306, ("127.0.0.1", "::1"))


def test_a_port_that_said_only_not_yet_is_probed_with_a_warning() -> None:
    ready = (ReadyInfo(80, "http", 60.0, 502), ReadyInfo(8080, "http", 0.2, 200),
             ReadyInfo(6379, probes.NOT_HTTP, 0.4))
    stream = io.StringIO()
    warnings = _readiness_warnings(ready, 60.0, 0, Progress(stream, live=False))
    assert warnings == [
        not_http_message(6379),
        "port 80 answered GET / with 502 until the start wait (60 s) ran out: probing it as "
        "it is (if the app starts slowly, a longer --http-probe-start-wait)"]
    assert all(w in stream.getvalue() for w in warnings)


def test_a_probe_command_on_an_unpublished_port_is_a_usage_error() -> None:
    setup = ProbeSetup(http=HttpProbeOptions(commands=(ProbeCommand(resource="/x", port=9000),)))
    with pytest.raises(UsageError) as info:
        http_probe_ports(_image(("8080/tcp",)), setup, ())
    assert info.value.message == ("probe command GET /x names port 9000, which the container "
                                  "does not publish (published: 8080): add --expose 9000")
    assert http_probe_ports(_image(("8080/tcp",)), setup, ("9000",)) == (8080, 9000)


def _report(obs: Observation):
    return make_report(_image(("8000/tcp",)), BuildResult("sha256:" + "b" * 64, "app.min:1", 1, ""),
                       BuildPlan(kept=(), total_files=1, total_size=1), AccessRecord(accesses={}),
                       obs, VerifyResult("passed"), Counter(), "",
                       index=Indexed(reader="export", cache="off", cache_file="", entries=1))


def test_probe_part_of_the_report() -> None:
    use = ApiSpecUse(source="/openapi.json", port=8080, version="3.0.2",
                     discovered_by="well-known", operations=3, requests=2,
                     skipped=("POST /orders: not sent",))
    obs = _observation([_request("/", 200), _request("/items/1", 200, "apispec")],
                       apispecs=(use,), notes=("a note",))
    doc = _report(obs).document["probe"]
    assert list(doc) == ["requests", "counts", "discovered", "ports", "apispecs", "notes",
                         "execs"]
    assert doc["requests"][1] == {
        "method": "GET", "path": "/items/1", "port": 8080, "protocol": "http", "status": 200,
        "content_type": None, "length": 0, "sha256": "0" * 64, "elapsed": 0.01, "error": None,
        "discovered_by": "apispec", "outcome": "2xx"}
    assert doc["ports"] == [{"port": 8080, "speaks": "http", "ready_after": 0.5},
                            {"port": 6379, "speaks": "not-http", "ready_after": 1.25}]
    assert doc["apispecs"] == [{"source": "/openapi.json", "port": 8080, "version": "3.0.2",
                                "discovered_by": "well-known", "operations": 3, "requests": 2,
                                "skipped": ["POST /orders: not sent"]}]
    assert doc["notes"] == ["a note"]
    assert doc["counts"] == {"2xx": 2, "3xx": 0, "4xx": 0, "5xx": 0, "unsupported": 0,
                             "error": 0}
    empty = _report(Observation(http=None, execs=(), target=None)).document["probe"]
    assert empty == {"requests": [], "counts": {}, "discovered": [], "ports": [],
                     "apispecs": [], "notes": [], "execs": []}


def test_the_text_report_names_the_api_documents_used() -> None:
    use = ApiSpecUse(source="/openapi.json", port=8000, version="3.0.2",
                     discovered_by="well-known", operations=4, requests=3)
    lines = render_text(_report(_observation([_request("/", 200)], apispecs=(use,))))
    assert "api     /openapi.json (port 8000): 3 of 4 operation(s) requested" in lines.splitlines()


def test_when_observation_ends_by_default():
    """After the HTTP probes; after the exec probes when there are only those; else 60 s
    or the app's own exit (a one-shot whose image exposes no port just runs)."""
    from minifier.observe.probing import default_continue_after, no_port_note

    assert default_continue_after(True, ()) == probes.ContinueAfter("probe")
    assert default_continue_after(True, (("ls",),)) == probes.ContinueAfter("probe")
    assert default_continue_after(False, (("ls",),)) == probes.ContinueAfter("exec")
    assert default_continue_after(False, ()) == probes.ContinueAfter("timeout", 60.0)
    assert no_port_note(image_info(ref="tool:1")) == (
        "HTTP probing skipped: image tool:1 exposes no TCP port (--expose PORT or "
        "--http-probe-ports PORT probes one)")

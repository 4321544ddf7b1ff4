"""The apps users bring (issue 14), each with the plain `minify build --http-probe IMAGE`:
a stdlib server without HEAD, pages without a Content-Type, a JSON API known only
through its OpenAPI document, and an HTTP and an HTTPS port next to Redis. Each build
must succeed and verify; the report says how every request was discovered, and exactly
the app files that the discovered endpoints read are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minifier.errors import ExitStatus
from probes.apispec import DOC_PAGES, WELL_KNOWN_PATHS

from . import helpers
from .conftest import SANDBOX
from .helpers import minify

pytestmark = pytest.mark.e2e

NOT_HTTP = ("port 6379 accepts connections but does not speak HTTP: probe it with "
            "--exec '<client command>'")
NO_API = [("well-known", "GET", path, 404, "4xx") for path in (*WELL_KNOWN_PATHS, *DOC_PAGES)]


def _build(client, name: str, *extra: str, label: str = "plain"):
    tag = f"minify-test/probe-{name}-{label}.min:e2e"
    report_file = Path(helpers.TMP) / f"{name}-{label}-report.json"
    run = minify("build", SANDBOX[name], "--http-probe", "--tag", tag,
                 "--report-file", str(report_file), *extra)
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return run, report, tag


@pytest.fixture(scope="module")
def built(client, build):
    """One plain build per sample (builds.CASES, shared with the other e2e modules), and
    the builds with other flags of this module, each shared by the assertions below."""
    done: dict[str, tuple] = {}

    def get(name: str, *extra: str, label: str = "plain"):
        if not extra:
            b = build(f"{name}-{label}")
            return b.run, b.report
        if (name, label) not in done:
            done[(name, label)] = _build(client, name, *extra, label=label)
        return done[(name, label)][:2]

    yield get
    for _run, _report, tag in done.values():
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - a failed build leaves no image
            pass


def _requests(report: dict) -> list[tuple]:
    return [(r["discovered_by"], r["method"], r["path"], r["status"], r["outcome"])
            for r in report["probe"]["requests"]]


def _app_files(report: dict, root: str = "/app/", reason: str = "") -> list[str]:
    """The files kept below `root` (for `reason` only, when given)."""
    return sorted(k["path"] for k in report["kept"]
                  if k["path"].startswith(root) and k["kind"] == "file"
                  and (not reason or reason in k["reasons"]))


def _served_only(report: dict) -> list[str]:
    """Files kept only because they are in a directory the app served files from."""
    return sorted(k["path"] for k in report["kept"]
                  if k["kind"] == "file" and k["reasons"] == ["served-dir"])


def test_headless_stdlib_server_head_501_is_unsupported_not_a_failure(built):
    run, report = built("headless")
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    assert _requests(report) == [
        ("default", "GET", "/", 200, "2xx"),
        ("default", "HEAD", "/", 501, "unsupported"),  # was: a server error, exit 6
        ("well-known", "GET", "/robots.txt", 404, "4xx"),
        ("well-known", "GET", "/favicon.ico", 404, "4xx"),
        *NO_API,
        ("crawl", "GET", "/static/site.css", 200, "2xx"),
        ("crawl", "GET", "/static/app.js", 200, "2xx"),
        ("crawl", "GET", "/static/logo.png", 200, "2xx"),
        ("crawl", "GET", "/about", 200, "2xx"),
        ("crawl", "GET", "/notes", 200, "2xx"),
        ("crawl", "GET", "/static/bg.png", 200, "2xx"),
        ("crawl", "GET", "/notes/alpha", 200, "2xx"),
        ("crawl", "GET", "/notes/beta", 200, "2xx"),
    ]
    assert report["probe"]["counts"] == {"2xx": 9, "3xx": 0, "4xx": 15, "5xx": 0,
                                         "unsupported": 1, "error": 0}
    assert _app_files(report, reason="accessed") == [
        "/app/data/about.txt", "/app/data/notes.txt", "/app/data/notes/alpha.txt",
        "/app/data/notes/beta.txt", "/app/server.py", "/app/static/app.js",
        "/app/static/bg.png", "/app/static/logo.png", "/app/static/site.css"]
    # /static/app.js was answered from /app/static/app.js: /app is a served directory
    # (the page /notes/gamma, linked from nowhere, then works in the minified image too)
    assert _served_only(report) == ["/app/data/notes/gamma.txt", "/app/static/unused.png"]
    head = next(r for r in report["verify"]["requests"] if r["method"] == "HEAD")
    assert (head["original_status"], head["minified_status"], head["ok"]) == (501, 501, True)


def test_untyped_pages_are_sniffed_and_crawled(built):
    run, report = built("untyped")
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    assert {r["content_type"] for r in report["probe"]["requests"] if r["status"] == 200} == {
        None}  # the JDK's HttpServer sends none unless told
    assert _requests(report) == [
        ("default", "GET", "/", 200, "2xx"),
        ("default", "HEAD", "/", 200, "2xx"),
        ("well-known", "GET", "/robots.txt", 200, "2xx"),
        ("well-known", "GET", "/favicon.ico", 404, "4xx"),
        ("well-known", "GET", "/sitemap.xml", 200, "2xx"),  # named by robots.txt
        *NO_API,
        ("well-known", "GET", "/pages/archive.html", 200, "2xx"),  # listed by the sitemap
        ("crawl", "GET", "/static/site.css", 200, "2xx"),
        ("crawl", "GET", "/static/app.js", 200, "2xx"),
        ("crawl", "GET", "/img/logo.png", 200, "2xx"),
        ("crawl", "GET", "/img/logo-2x.png", 200, "2xx"),  # srcset
        ("crawl", "GET", "/pages/news.html", 200, "2xx"),
        ("crawl", "GET", "/pages/search.html", 200, "2xx"),  # a GET form's action
        ("crawl", "GET", "/static/print.css", 200, "2xx"),  # @import of untyped CSS
        ("crawl", "GET", "/img/bg.png", 200, "2xx"),  # url() of untyped CSS
        ("crawl", "GET", "/pages/latest.html", 200, "2xx"),  # meta refresh
    ]
    assert _app_files(report, reason="accessed") == [
        "/app/Server.class", "/app/www/img/bg.png", "/app/www/img/logo-2x.png",
        "/app/www/img/logo.png", "/app/www/index.html", "/app/www/pages/archive.html",
        "/app/www/pages/latest.html", "/app/www/pages/news.html",
        "/app/www/pages/search.html", "/app/www/robots.txt", "/app/www/sitemap.xml",
        "/app/www/static/app.js", "/app/www/static/print.css", "/app/www/static/site.css"]
    # Linked from nowhere, so never requested; kept as part of the served /app/www.
    assert _served_only(report) == ["/app/www/pages/unlinked.html"]


def test_json_api_found_only_through_its_openapi_document(built):
    run, report = built("jsonapi")
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    assert _requests(report) == [
        ("default", "GET", "/", 200, "2xx"),
        ("default", "HEAD", "/", 405, "unsupported"),  # FastAPI's answer to HEAD /
        ("well-known", "GET", "/robots.txt", 404, "4xx"),
        ("well-known", "GET", "/favicon.ico", 404, "4xx"),
        ("well-known", "GET", "/openapi.json", 200, "2xx"),
        # every other address of a document, and of the pages that show one: FastAPI's
        # Swagger UI and Redoc pages (their scripts come from a CDN: nothing to crawl)
        *[("well-known", "GET", path, 404, "4xx") for path in WELL_KNOWN_PATHS[1:]],
        ("well-known", "GET", "/docs", 200, "2xx"),
        ("well-known", "GET", "/redoc", 200, "2xx"),
        *[("well-known", "GET", path, 404, "4xx") for path in DOC_PAGES[2:]],
        ("apispec", "GET", "/items/apple", 200, "2xx"),  # the path parameter's example
        ("apispec", "GET", "/reports?format=csv", 200, "2xx"),  # the enum's first value
    ]
    assert report["probe"]["apispecs"] == [{
        "source": "/openapi.json", "port": 8000, "version": "3.0.2",
        "discovered_by": "well-known", "operations": 4, "requests": 3,
        "skipped": ["POST /orders: not sent (only GET and HEAD by default; "
                    "--http-probe-apispec-methods all sends it)"]}]
    # Exactly the data each called endpoint reads: no other item, report format or the
    # order template (POST is never sent by default).
    assert _app_files(report) == ["/app/app.py", "/app/data/items/apple.json",
                                  "/app/data/reports/summary.csv"]
    compared = {r["path"]: r for r in report["verify"]["requests"]}
    assert compared["/items/apple"]["compared"] == "status+body"
    assert compared["/reports?format=csv"]["ok"]


def test_apispec_paths_file_and_all_methods(built, tmp_path):
    hidden = tmp_path / "hidden.yaml"
    hidden.write_text("openapi: 3.0.3\ninfo: {title: internal, version: '1'}\n"
                      "paths:\n  /internal/stats:\n    get:\n      summary: not in the app's "
                      "own document\n")
    run, report = built("jsonapi", "--http-probe-apispec", "/openapi.json",
                        "--http-probe-apispec", "/admin/openapi.json",
                        "--http-probe-apispec-file", str(hidden),
                        "--http-probe-apispec-methods", "all", "--no-verify", label="flags")
    assert run.code == 0, run.stderr
    assert _requests(report)[4:] == [
        ("user", "GET", "/openapi.json", 200, "2xx"),
        ("user", "GET", "/admin/openapi.json", 200, "2xx"),
        ("apispec", "GET", "/items/apple", 200, "2xx"),
        ("apispec", "GET", "/reports?format=csv", 200, "2xx"),
        ("apispec", "POST", "/orders", 201, "2xx"),  # with a JSON body from the schema
        ("apispec", "GET", "/admin/audit", 200, "2xx"),  # under the mounted app's server url
        ("apispec", "GET", "/internal/stats", 200, "2xx"),
    ]
    post = next(r for r in report["probe"]["requests"] if r["method"] == "POST")
    assert post["length"] > 0 and post["content_type"] == "application/json"
    assert [(a["source"], a["discovered_by"], a["skipped"]) for a in
            report["probe"]["apispecs"]] == [("/openapi.json", "user", []),
                                             ("/admin/openapi.json", "user", []),
                                             (str(hidden), "user", [])]
    assert _app_files(report) == [
        "/app/app.py", "/app/data/audit.log", "/app/data/items/apple.json",
        "/app/data/orders/template.json", "/app/data/reports/summary.csv",
        "/app/data/stats.json"]


def test_http_and_https_ports_next_to_redis(built):
    run, report = built("mixed")
    assert run.code == 0, run.stderr
    assert report["verify"]["status"] == "passed"
    assert f"minify: warning: {NOT_HTTP}" in run.stderr
    # Nothing else: the app's main process ends on SIGTERM, and the Redis it started
    # ends with it, as in a container whose PID 1 exits (no "did not stop ... killed").
    assert report["warnings"] == [NOT_HTTP]
    assert report["timings"]["stop"] < 5
    # 9443 is Caddy's (Go): it answers plain HTTP with 400, and https is found all the same.
    assert [(p["port"], p["speaks"]) for p in report["probe"]["ports"]] == [
        (6379, "not-http"), (8080, "http"), (8443, "https"), (9443, "https")]
    # Said as soon as Redis listened, not after the 60 s start wait.
    assert next(p for p in report["probe"]["ports"] if p["port"] == 6379)["ready_after"] < 30
    crawled = [(r["port"], r["protocol"], r["path"], r["status"])
               for r in report["probe"]["requests"] if r["discovered_by"] == "crawl"]
    assert crawled == [(8080, "http", "/status", 200), (8443, "https", "/vault", 200),
                       (9443, "https", "/ledger.txt", 200)]
    assert 6379 not in {r["port"] for r in report["probe"]["requests"]}
    assert _app_files(report) == ["/app/Caddyfile", "/app/data/status.txt",
                                  "/app/data/vault.txt", "/app/gosite/index.html",
                                  "/app/gosite/ledger.txt", "/app/server.py", "/app/start.sh",
                                  "/app/tls/cert.pem", "/app/tls/key.pem"]
    assert "/usr/bin/redis-server" in {k["path"] for k in report["kept"]}


# -- issue 14: each wrong message, corrected -----------------------------------------

def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("minify: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_port_named_for_http_that_speaks_redis(client):
    run = minify("build", SANDBOX["mixed"], "--http-probe-ports", "6379")
    assert run.code == ExitStatus.PROBE, run.stderr
    assert _error_line(run.stderr) == f"minify: error: {NOT_HTTP}"
    assert run.seconds < 60  # the default start wait was not waited out


def test_a_failed_request_of_a_live_app_is_not_called_a_crash(client):
    run = minify("build", SANDBOX["headless"], "--no-http-probe-crawl",
                 "--http-probe-cmd", "/fail")
    assert run.code == ExitStatus.PROBE, run.stderr
    # The app was alive when probing ended; minify's own stop (SIGTERM, status -15)
    # is not the app crashing.
    assert _error_line(run.stderr) == ("minify: error: HTTP probing failed: no answer: "
                                       "GET /fail -> connection closed without an answer")


def test_an_app_that_exits_by_itself_while_probed(client):
    run = minify("build", SANDBOX["headless"], "--no-http-probe-crawl",
                 "--http-probe-cmd", "/crash")
    assert run.code == ExitStatus.PROBE, run.stderr
    assert _error_line(run.stderr) == (
        "minify: error: HTTP probing failed: no answer: GET /crash -> connection closed "
        "without an answer; the app exited by itself during probing (exit status 3)")

"""Served directories, end to end: a site whose script fetches a template by a name it
builds (as RabbitMQ's management UI does), which no crawler can find. The directory the
app served its files from is kept whole, so the minified image serves the template like
the original; `--no-include-served-dirs` keeps only what was requested, and the template
is then missing although verification passes (it can only replay what was requested)."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from .conftest import SANDBOX
from .helpers import answers, minify

pytestmark = pytest.mark.e2e

APP = "minify-test/served-site:e2e"
INDEX = b'<html><script src="/js/main.js"></script><img src="/img/logo.png"></html>\n'
MAIN_JS = b"var page = 'login'; fetch('/js/tmpl/' + page + '.ejs');\n"
LOGIN = b"<form><%= user %></form>\n"


@pytest.fixture(scope="module")
def site(client, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("served-site")
    for rel, data in (("www/index.html", INDEX), ("www/js/main.js", MAIN_JS),
                      ("www/js/tmpl/login.ejs", LOGIN), ("www/img/logo.png", b"\x89PNG\r\n"),
                      ("notes.txt", b"beside the site, never served\n")):
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    (ctx / "Dockerfile").write_text(
        f"FROM {SANDBOX['busybox']}\nCOPY www /site/www\nCOPY notes.txt /site/notes.txt\n"
        'ENTRYPOINT ["/bin/httpd", "-f", "-p", "8080", "-h", "/site/www"]\n')
    built = subprocess.run(["docker", "build", "-q", "-t", APP, str(ctx)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    yield APP
    client.images.remove(APP, force=True)


def _build(client, site, tmp_path, tag, *args):
    report_file = tmp_path / "report.json"
    run = minify("build", site, "--tag", tag, "--report-file", str(report_file), *args)
    assert run.code == 0, run.stderr
    return json.loads(report_file.read_text())


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_the_served_directory_is_kept_whole(client, site, tmp_path):
    tag = "minify-test/served-site.min:e2e"
    try:
        report = _build(client, site, tmp_path, tag)
        kept = {k["path"]: k["reasons"] for k in report["kept"]}
        assert "/js/tmpl/login.ejs" not in {r["path"] for r in report["probe"]["requests"]}
        assert kept["/site/www/js/tmpl/login.ejs"] == ["served-dir"]
        assert "accessed" in kept["/site/www/js/main.js"]
        assert "/site/notes.txt" not in kept
        assert report["verify"]["status"] == "passed"
        assert answers(client, tag, 8080, ["/js/tmpl/login.ejs"]) == {
            "/js/tmpl/login.ejs": (200, _sha(LOGIN))}
    finally:
        client.images.remove(tag, force=True)


def test_without_it_the_template_is_missing_and_verification_cannot_tell(client, site,
                                                                          tmp_path):
    tag = "minify-test/served-site.min-off:e2e"
    try:
        report = _build(client, site, tmp_path, tag, "--no-include-served-dirs")
        assert "/site/www/js/tmpl/login.ejs" not in {k["path"] for k in report["kept"]}
        assert report["verify"]["status"] == "passed"
        assert answers(client, tag, 8080, ["/js/tmpl/login.ejs"])["/js/tmpl/login.ejs"][0] \
            == 404
    finally:
        client.images.remove(tag, force=True)

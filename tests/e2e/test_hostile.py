"""Unusual and hostile images, and apps that misbehave: handled, reported, nothing leaked."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
import threading

import pytest

from minifier.errors import ExitStatus
from minifier.image.rebuild import LayerInfo, load_image

from .conftest import SANDBOX
from .helpers import MINIFY, exported, minify

HOSTILE = "minify-test/hostile:e2e"
LONG = "/weird/" + "/".join(["d" * 60] * 8) + "/deep.txt"  # ~500 characters


def _tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _m(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", **kw):
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.mode, info.linkname = kind, mode, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(info, k, v)
    return info, (data if kind == tarfile.REGTYPE else None)


def _hostile_members():
    dirs = sorted({"/".join(LONG.split("/")[:i]) for i in range(2, LONG.count("/") + 1)})
    return [
        _m("/weird", tarfile.DIRTYPE, mode=0o755),
        *[_m(d, tarfile.DIRTYPE, mode=0o755) for d in dirs if d != "/weird"],
        _m(LONG, data=b"deep\n"),
        _m("/weird/escape-abs", tarfile.SYMTYPE, link="/etc/shadow"),
        _m("/weird/escape-rel", tarfile.SYMTYPE, link="../../../../../../etc/shadow"),
        _m("/weird/loop-a", tarfile.SYMTYPE, link="loop-b"),
        _m("/weird/loop-b", tarfile.SYMTYPE, link="loop-a"),
        _m("/weird/original.txt", data=b"shared content\n"),
        _m("/weird/hardlink.txt", tarfile.LNKTYPE, link="weird/original.txt"),
        _m("/weird/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        _m("/weird/fifo", tarfile.FIFOTYPE, mode=0o600),
        _m("/weird/suid", data=b"#!/bin/sh\n", mode=0o4755),
        _m("/weird/sgid-dir", tarfile.DIRTYPE, mode=0o2775),
        _m("/weird/with space.txt", data=b"space\n"),
        _m("/weird/latin1-\udce9t\udce9.txt", data=b"latin-1 name\n"),
        _m("/weird/deleted.txt", data=b"gone in the upper layer\n"),
        _m("/www/index.html", data=b"<a href='/page.html'>p</a>\n"),
    ]


@pytest.fixture(scope="module")
def hostile_image(client, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("hostile")
    raw = _tar(_hostile_members())
    (ctx / "weird.tar").write_bytes(raw)
    (ctx / "Dockerfile").write_text(
        f"FROM {SANDBOX['busybox']}\n"
        "ADD weird.tar /\n"
        "RUN rm /weird/deleted.txt\n")  # a whiteout over a lower layer's file
    proc = subprocess.run(["docker", "build", "-q", "-t", HOSTILE, str(ctx)],
                          capture_output=True, text=True, timeout=300,
                          env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert proc.returncode == 0, proc.stderr
    yield HOSTILE
    client.images.remove(HOSTILE, force=True)


def test_hostile_tree_is_kept_faithfully(client, hostile_image, tmp_path):
    tag = "minify-test/hostile.min:e2e"
    report_file = tmp_path / "report.json"
    run = minify("build", hostile_image, "--tag", tag, "--include-path", "/weird",
                 "--report-file", str(report_file), "--json")
    try:
        assert run.code == 0, run.stderr
        tar = exported(client, tag)
        m = {"/" + t.name.rstrip("/"): t for t in tar.getmembers()}
        assert m["/weird/escape-abs"].issym() and m["/weird/escape-abs"].linkname == "/etc/shadow"
        assert "/etc/shadow" not in m  # an escaping link never pulls in a host or image file
        assert m["/weird/loop-a"].issym() and m["/weird/loop-b"].issym()
        a, b = m["/weird/hardlink.txt"], m["/weird/original.txt"]
        link, target = (a, b) if a.islnk() else (b, a)
        assert link.islnk() and "/" + link.linkname == "/" + target.name  # still one inode
        assert tar.extractfile(target).read() == b"shared content\n"
        assert m["/weird/null"].ischr() and (m["/weird/null"].devmajor,
                                              m["/weird/null"].devminor) == (1, 3)
        assert m["/weird/fifo"].isfifo()
        assert m["/weird/suid"].mode & 0o4000
        assert m["/weird/sgid-dir"].mode & 0o2000
        assert "/weird/with space.txt" in m
        assert any(n.startswith("/weird/latin1-") for n in m)
        assert LONG in m
        assert "/weird/deleted.txt" not in m  # the whiteout wins
        report = json.loads(report_file.read_text())
        assert any("loop" in w for w in report["warnings"])
        _latin1_name_survives_strict_parsers(report_file.read_bytes(), run.stdout)
    finally:
        client.images.remove(tag, force=True)


def _latin1_name_survives_strict_parsers(report: bytes, stdout: str) -> None:
    """The latin-1 file name in the report file and on stdout (--json): UTF-8 JSON with no
    lone surrogate, the name escaped (\\xe9) with its exact bytes in `path_b64`, and jq
    (the jq sample's) reads it without U+FFFD."""
    assert stdout.encode("utf-8") == report  # the same document, strict UTF-8 both
    text = report.decode("utf-8")
    assert "\\ud" not in text.lower()
    name = b"/weird/latin1-\xe9t\xe9.txt"
    [row] = [k for k in json.loads(text)["kept"] if k["path"].startswith("/weird/latin1-")]
    assert row["path"] == "/weird/latin1-\\xe9t\\xe9.txt"
    assert base64.b64decode(row["path_b64"]) == name
    jq = subprocess.run(
        ["docker", "run", "--rm", "-i", "--label", "minify.run=test", SANDBOX["jq"], "-r",
         '.kept[] | select(.path_b64) | .path + " " + .path_b64'],
        input=report, capture_output=True, timeout=60)
    assert jq.returncode == 0, jq.stderr
    assert jq.stdout.decode("utf-8") == (
        f"/weird/latin1-\\xe9t\\xe9.txt {base64.b64encode(name).decode()}\n")


def test_empty_image_is_a_clear_error(client):
    raw = _tar([])
    proc = subprocess.run(["docker", "import", "-", "minify-test/empty:e2e"], input=raw,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0
    try:
        run = minify("build", "minify-test/empty:e2e")
        assert run.code == ExitStatus.IMAGE
        assert "has no Entrypoint or Cmd" in run.stderr
    finally:
        client.images.remove("minify-test/empty:e2e", force=True)


def test_image_for_another_cpu(client, tmp_path):
    layer = tmp_path / "layer.tar"
    layer.write_bytes(_tar([_m("/hello", data=b"hi\n", mode=0o755)]))
    digest = hashlib.sha256(layer.read_bytes()).hexdigest()
    config = {"architecture": "arm64", "os": "linux", "config": {"Cmd": ["/hello"]}}
    load_image(client, config, LayerInfo(str(layer), layer.stat().st_size, digest, 1),
               "minify-test/arm64:e2e")
    try:
        run = minify("build", "minify-test/arm64:e2e")
        assert run.code == ExitStatus.IMAGE
        assert "is for linux/arm64 but this machine is linux/amd64" in run.stderr
    finally:
        client.images.remove("minify-test/arm64:e2e", force=True)


def test_app_crashing_while_probed(client):
    # It dies on the page its root links to: readiness never asks for that page (however
    # many requests readiness sends), the crawl does.
    server = ("import http.server as h, os; "
              "get = lambda s: os._exit(4) if s.path == '/boom' else (s.send_response(200), "
              "s.send_header('Content-Type', 'text/html'), s.end_headers(), "
              "s.wfile.write(b'<a href=/boom>boom</a>')); "
              "h.HTTPServer(('', 8080), type('H', (h.BaseHTTPRequestHandler,), "
              "{'do_GET': get})).serve_forever()")
    run = minify("build", SANDBOX["python"], "--entrypoint", f'python3 -c "{server}"',
                 "--cmd", "")
    assert run.code == ExitStatus.PROBE, run.stderr
    assert "the app exited by itself during probing (exit status 4)" in run.stderr


def test_app_ignoring_sigterm_is_stopped_within_bound(client):
    tag = "minify-test/ignore-term.min:e2e"
    run = minify("build", SANDBOX["busybox"], "--tag", tag, "--entrypoint",
                 "/bin/sh -c 'trap \"\" TERM INT; /bin/httpd -f -p 8080 -h /www; sleep 1000'")
    try:
        assert run.code == 0, run.stderr
        assert run.seconds < 120
    finally:
        client.images.remove(tag, force=True)


def test_missing_capability_is_named(client):
    proc = subprocess.run(["setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin",
                           "--", *MINIFY, "build", SANDBOX["busybox"]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitStatus.CAPABILITY, proc.stderr
    assert "CAP_SYS_ADMIN" in proc.stderr


def test_two_builds_at_once_do_not_interfere(client):
    jobs = [(SANDBOX["busybox"], "minify-test/concurrent-a.min:e2e"),
            (SANDBOX["busybox"], "minify-test/concurrent-b.min:e2e"),
            (SANDBOX["nginx"], "minify-test/concurrent-c.min:e2e")]
    results = {}

    def work(image, tag):
        results[tag] = minify("build", image, "--tag", tag)

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for _, tag in jobs:
            assert results[tag].code == 0, results[tag].stderr
            assert client.images.get(tag).labels["minify.source.id"]
    finally:
        for _, tag in jobs:
            client.images.remove(tag, force=True)

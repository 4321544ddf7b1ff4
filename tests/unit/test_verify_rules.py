"""Verification's pure rules: how answers compare, which log lines fail, which paths to hint,
and which ports get probed."""

import pytest

from minifier.errors import UsageError
from minifier.image.imagefs import scan
from minifier.observe.probing import http_probe_ports
from minifier.options import ProbeSetup
from minifier.output.hints import find_loader_errors, include_hints
from minifier.output.verify import compare
from probes import HttpProbeOptions, RequestResult
from tests.unit.fixtures import image_info, make_tar, member


def _r(path, status, sha):
    return RequestResult(method="GET", url=f"http://127.0.0.1:1{path}", path=path, port=80,
                         protocol="http", status=status, content_type="text/plain", length=1,
                         sha256=sha, elapsed=0.0, error=None, discovered_by="default")


def test_compare_detects_nondeterminism_and_mismatches():
    recorded = [_r("/", 200, "a"), _r("/time", 200, "t1"), _r("/data", 200, "d")]
    again = [_r("/", 200, "a"), _r("/time", 200, "t2"), _r("/data", 200, "d")]
    after_restart = [_r("/", 200, "a"), _r("/time", 200, "t4"), _r("/data", 200, "d")]
    minified = [_r("/", 200, "a"), _r("/time", 200, "t3"), _r("/data", 500, "e")]
    rows = compare(recorded, [again, after_restart], [minified, recorded])
    assert [(r.round, r.path, r.compared, r.ok) for r in rows] == [
        (1, "/", "status+body", True), (1, "/time", "status", True),
        (1, "/data", "status+body", False),
        (2, "/", "status+body", True), (2, "/time", "status", True),
        (2, "/data", "status+body", True)]
    bad = [r for r in rows if not r.ok]
    assert [(r.path, r.original_status, r.minified_status) for r in bad] == [("/data", 200, 500)]


def test_a_different_body_is_a_mismatch():
    rows = compare([_r("/", 200, "a")], [[_r("/", 200, "a")]], [[_r("/", 200, "b")]])
    assert [r.ok for r in rows] == [False]


def test_the_status_is_the_originals_in_the_same_round():
    """A request that changes state (a second POST) answers differently after the
    restart in the original too: the minified is held to the original's same round."""
    recorded = [_r("/make", 201, "x")]
    rows = compare(recorded, [[_r("/make", 201, "x")], [_r("/make", 409, "y")]],
                   [[_r("/make", 201, "x")], [_r("/make", 409, "y")]])
    assert [(r.round, r.compared, r.original_status, r.ok) for r in rows] == [
        (1, "status", 201, True), (2, "status", 409, True)]


def test_loader_errors_only_when_the_original_did_not_print_them():
    original = "2026/11/28 10:00:01 open() \"/favicon.ico\" failed (2: No such file or directory)"
    minified = "\n".join([
        "2026/11/28 10:05:09 open() \"/favicon.ico\" failed (2: No such file or directory)",
        "python3: error while loading shared libraries: libssl.so.3: cannot open shared "
        "object file: No such file or directory",
        "ModuleNotFoundError: No module named 'yaml'",
        "all good"])
    assert find_loader_errors(minified, original) == minified.splitlines()[1:3]


def test_include_hints_name_image_paths_that_were_not_kept(tmp_path):
    fs = scan(open(make_tar(tmp_path / "i.tar", [
        member("app", "dir"), member("app/data", "dir"),
        member("app/data/items.json", data=b"[]"), member("app/app.py", data=b"x")]), "rb"))
    lines = ["FileNotFoundError: [Errno 2] No such file: '/app/data/items.json'",
             "opened /app/app.py fine", "no such /not/in/image"]
    assert include_hints(lines, fs, {"/app/app.py"}) == ["/app/data/items.json"]


def _image(ports):
    return image_info(cmd=("x",), exposed_ports=ports)


def test_probe_ports():
    http = ProbeSetup(http=HttpProbeOptions())
    assert http_probe_ports(_image(("8080/tcp", "53/udp", "80/tcp")), http, ()) == (80, 8080)
    assert http_probe_ports(_image(()), http, ("9000",)) == (9000,)
    assert http_probe_ports(_image(("80/tcp",)), ProbeSetup(http=HttpProbeOptions(ports=(81,))),
                       ()) == (81,)
    assert http_probe_ports(_image(()), ProbeSetup(http=None), ()) == ()
    # No TCP port: HTTP probing is skipped (with a note), unless it was asked for by name.
    assert http_probe_ports(_image(("53/udp",)), http, ()) == ()
    asked = ProbeSetup(http=HttpProbeOptions(), http_asked=True)
    with pytest.raises(UsageError, match="--expose PORT or --http-probe-ports PORT"):
        http_probe_ports(_image(("53/udp",)), asked, ())


def test_a_command_the_shell_did_not_find_is_hinted_by_its_path(tmp_path):
    fs = scan(open(make_tar(tmp_path / "i.tar", [
        member("usr", "dir"), member("usr/bin", "dir"), member("bin", "symlink", "usr/bin"),
        member("usr/bin/curl", data=b"binary"), member("usr/bin/sh", data=b"x")]), "rb"))
    lines = ["/bin/sh: 1: curl: not found", "sh: wget: not found"]
    assert include_hints(lines, fs, {"/usr/bin/sh"}) == ["/usr/bin/curl"]


def test_the_minified_is_not_blamed_for_the_originals_own_failure():
    """qa/lemp-health: nginx in front of php-fpm; the untraced original answered 502 after
    its restart (php-fpm not up yet), the minified 200 like the traced run."""
    recorded = [_r("/", 200, "page")]
    original = [[_r("/", 200, "page")], [_r("/", 502, "bad-gateway")]]
    rows = compare(recorded, original, [[_r("/", 200, "page")], [_r("/", 200, "page")]])
    assert [(r.round, r.compared, r.original_status, r.minified_status, r.ok)
            for r in rows] == [(1, "status", 200, 200, True), (2, "status", 502, 200, True)]


def test_a_minified_failure_passes_only_where_the_original_failed_the_same_way():
    recorded = [_r("/", 200, "page")]
    original = [[_r("/", 200, "page")], [_r("/", 502, "bad-gateway")]]
    rows = compare(recorded, original, [[_r("/", 502, "bad-gateway")], [_r("/", 500, "e")]])
    assert [(r.round, r.ok) for r in rows] == [(1, False), (2, False)]
    rows = compare(recorded, original, [[_r("/", 200, "page")], [_r("/", 502, "bad")]])
    assert [(r.round, r.ok) for r in rows] == [(1, True), (2, True)]


def test_a_success_the_original_gave_in_another_run_passes():
    """A POST that creates: 201 first, 409 after the restart in the original. A minified
    201 where the original said 409 is one of the original's answers; a 409 where the
    original created is not."""
    recorded = [_r("/make", 201, "x")]
    original = [[_r("/make", 201, "x")], [_r("/make", 409, "y")]]
    rows = compare(recorded, original, [[_r("/make", 201, "x")], [_r("/make", 201, "x")]])
    assert [r.ok for r in rows] == [True, True]
    rows = compare(recorded, original, [[_r("/make", 409, "y")], [_r("/make", 409, "y")]])
    assert [r.ok for r in rows] == [False, True]

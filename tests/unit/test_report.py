"""The report's JSON rendering from its records, and its human rendering."""

import json
from collections import Counter

from minifier.image.indexing import Indexed
from minifier.output.report import SCHEMA, dir_sizes, make_report
from minifier.output.summary import index_text, render_markdown, render_text
from minifier.records import (
    AccessRecord,
    BuildPlan,
    BuildResult,
    ComparedRequest,
    Finding,
    HealthVerdict,
    KeptFile,
    LivenessVerdict,
    Mismatch,
    Observation,
    RestartTrace,
    SelfCheck,
    VerifyResult,
)
from probes import ProbeSummary
from tests.unit.fixtures import image_info

IMAGE = image_info(ref="app:1", repo_tags=("app:1",), size=10_000_000, cmd=("app",),
                   exposed_ports=("80/tcp",))


ROW = ComparedRequest(round=1, method="GET", path="/", port=80, compared="status+body",
                      original_status=200, minified_status=200, nondeterministic=False,
                      ok=True)
VERDICT = VerifyResult(
    status="passed", requests=(ROW,),
    health=HealthVerdict(status="passed", test=("/bin/sh", "-c", "curl -f localhost"),
                         seconds=1.2),
    liveness=LivenessVerdict(shape="service", ok=True, required_seconds=4.5, ports=(80,),
                             minified_ports=(80,), restarted=True))


def _report(verdict=VERDICT, selfcheck=None, restart=None, placeholders=()):
    plan = BuildPlan(kept=(KeptFile("/usr/bin/app", 400_000, "file", ("accessed",)),
                           KeptFile("/usr/bin", 0, "dir", ("parent",)),
                           *(KeptFile(p, 0, "file", ("runtime",)) for p in placeholders)),
                     total_files=1000, total_size=9_000_000, excluded=("/etc/secret",),
                     placeholders=placeholders)
    result = BuildResult(image_id="sha256:" + "b" * 64, tag="app.min:1", size=500_000,
                         layer_path="/tmp/x/layer.tar")
    probes_ = ProbeSummary(requests=(), discovered=(), counts={"2xx": 3}, failure=None)
    return make_report(IMAGE, result, plan, AccessRecord(accesses={}),
                       Observation(http=probes_, execs=(), target=None, restart=restart),
                       verdict,
                       Counter({"/usr/share/doc": 2_000_000}), "/tmp/art",
                       selfcheck=selfcheck, index=INDEX)


INDEX = Indexed(reader="storage", why="the image's overlay2 layer directories, read in place",
                cache="hit", cache_file="/root/.cache/minify/" + "a" * 64 + ".index",
                entries=1001)


def test_report_keys_are_pinned():
    doc = _report().document
    assert doc["schema"] == SCHEMA == "minify.report/v2"
    assert list(doc) == ["schema", "source", "output", "ratio", "files", "kept", "excluded",
                         "probe", "observation", "access", "verify", "selfcheck",
                         "biggest_kept_dirs",
                         "biggest_removed_dirs", "dirs", "warnings", "artifacts_dir",
                         "timings", "index"]
    assert doc["index"] == {"reader": "storage", "why": INDEX.why, "cache": "hit",
                            "cache_file": INDEX.cache_file, "entries": 1001}
    assert json.loads(json.dumps(doc)) == doc  # plain JSON values only: no tuples
    assert set(doc["source"]) == {"image", "id", "size"}
    assert set(doc["output"]) == {"image", "id", "size"}
    assert set(doc["files"]) == {"kept", "total", "kept_size", "total_size", "placeholders"}
    assert doc["kept"][0] == {"path": "/usr/bin/app", "size": 400_000, "kind": "file",
                              "reasons": ["accessed"]}
    assert doc["ratio"] == 20.0
    assert doc["verify"]["status"] == "passed"
    assert doc["selfcheck"] == {"status": "passed", "findings": []}
    assert doc["dirs"] == [{"path": "/usr/bin", "kept": 400_000, "removed": 0},
                           {"path": "/usr/share/doc", "kept": 0, "removed": 2_000_000}]
    assert set(doc["verify"]) == {"status", "reason", "mismatches", "requests", "execs",
                                  "health", "liveness", "minified_output",
                                  "include_path_hints", "original_run"}
    assert doc["verify"]["health"]["test"] == ["/bin/sh", "-c", "curl -f localhost"]
    assert doc["verify"]["requests"] == [{
        "round": 1, "method": "GET", "path": "/", "port": 80, "compared": "status+body",
        "original_status": 200, "minified_status": 200, "nondeterministic": False, "ok": True,
        "minified_error": None}]
    assert set(doc["verify"]["liveness"]) == {
        "shape", "ok", "required_seconds", "ports", "minified_ports", "original_exit_code",
        "minified_exit_code", "compared", "restarted"}
    assert set(doc["verify"]["health"]) == {"status", "reason", "test", "seconds", "output"}


def test_selfcheck_findings_in_the_report():
    finding = Finding("library", "/usr/bin/curl", "libbrotlicommon.so.1",
                      "/usr/lib/x86_64-linux-gnu/libbrotlicommon.so.1.0.9", excluded=True)
    report = _report(selfcheck=SelfCheck((finding,)))
    doc = report.document
    text = ("/usr/bin/curl: library libbrotlicommon.so.1 is "
            "/usr/lib/x86_64-linux-gnu/libbrotlicommon.so.1.0.9 in the original image but "
            "missing from the minified one (removed by --exclude-pattern)")
    assert doc["selfcheck"] == {"status": "incomplete", "findings": [{
        "kind": "library", "path": "/usr/bin/curl", "missing": "libbrotlicommon.so.1",
        "original": "/usr/lib/x86_64-linux-gnu/libbrotlicommon.so.1.0.9", "excluded": True,
        "text": text}]}
    assert doc["warnings"] == [f"incomplete (--allow-incomplete): {text}"]
    assert "check   incomplete: 1 finding(s), built with --allow-incomplete" in render_text(
        report)


def test_a_mismatch_is_its_kind_its_text_and_the_compared_fields():
    bad = ComparedRequest(round=2, method="GET", path="/x", port=80, compared="status",
                          original_status=200, minified_status=500, nondeterministic=True,
                          ok=False, minified_error=None)
    verdict = VerifyResult(status="failed", reason="GET /x (port 80): original 200",
                           requests=(bad,), mismatches=(
                               Mismatch("request", "GET /x (port 80): original 200, minified "
                                        "500 (after docker restart)", request=bad),
                               Mismatch("log", "libfoo.so: cannot open shared object file")))
    doc = _report(verdict).document["verify"]
    assert doc["mismatches"][0]["kind"] == "request"
    assert doc["mismatches"][0]["request"] == {
        "round": 2, "method": "GET", "path": "/x", "port": 80, "compared": "status",
        "original_status": 200, "minified_status": 500, "nondeterministic": True, "ok": False,
        "minified_error": None}
    assert doc["mismatches"][0]["exec"] is None
    assert doc["mismatches"][1] == {"kind": "log",
                                    "text": "libfoo.so: cannot open shared object file",
                                    "request": None, "exec": None}
    assert "verify  failed" in render_text(_report(verdict))
    assert render_markdown(_report(verdict)).endswith(
        "Verification mismatches:\n\n- GET /x (port 80): original 200, minified 500 (after "
        "docker restart)\n- libfoo.so: cannot open shared object file\n")


def test_render_text_shows_sizes_ratio_and_dirs():
    text = render_text(_report())
    assert "20.0x smaller" in text
    assert "2 kept of 1000" in text
    assert "/usr/share/doc" in text
    assert "2xx: 3" in text
    assert "check   passed (every kept interpreter, library and link target resolves)" in text
    assert ("index   storage reader (the image's overlay2 layer directories, read in place); "
            "cache hit") in text
    assert "verify  passed (ran 4.5 s, ports 80; restarted; health passed)" in text


def test_placeholders_are_not_counted_as_kept_files_of_the_image():
    report = _report(placeholders=("/etc/hosts", "/etc/resolv.conf"))
    assert report.document["files"]["kept"] == 2
    assert report.document["files"]["placeholders"] == ["/etc/hosts", "/etc/resolv.conf"]
    assert ("files   2 kept of 1000 (400.0 kB of 9.0 MB); made empty: /etc/hosts, "
            "/etc/resolv.conf") in render_text(report)
    # The table counts the output image's files: placeholders are in it.
    assert "| files | 1000 | 4 |" in render_markdown(report)


def test_the_traced_restart_in_the_report_and_its_summary():
    traced = _report(restart=RestartTrace("traced", "", 2.46, 12, 1))
    assert traced.document["observation"] == {
        "restarts": 1,
        "restart": {"status": "traced", "note": "", "seconds": 2.46, "requests": 12, "execs": 1}}
    assert ("restart traced once (12 HTTP request(s) and 1 exec probe(s) sent again; 2.5 s)"
            in render_text(traced).splitlines())
    note = "the traced restart did not go as the first start: it could not start again: x"
    failed = _report(restart=RestartTrace("traced", note, 0.5))
    assert failed.document["warnings"] == [note]
    assert render_text(failed).splitlines()[-2:] == [f"warning: {note}", "artifacts: /tmp/art"]
    skipped = _report(restart=RestartTrace("skipped", "--no-restart-trace"))
    assert skipped.document["observation"]["restarts"] == 0
    assert skipped.document["warnings"] == []
    assert "restart skipped (--no-restart-trace)" in render_text(skipped).splitlines()
    assert _report().document["observation"] == {"restarts": 0, "restart": None}


def test_index_line_names_the_export_fallback_and_why():
    why = "rebuilt: the cached index was corrupt (file is not a database)"
    index = Indexed(reader="export", cache=why, cache_file="", entries=1,
                    why="--image-source export")
    assert index_text(index) == f"index   docker export stream (--image-source export); cache {why}"


def test_dir_sizes_groups_by_prefix():
    sizes = dir_sizes([("/usr/lib/x/a.so", 10), ("/usr/lib/x/y/b.so", 5), ("/etc/a", 1)],
                      depth=3)
    assert sizes == Counter({"/usr/lib/x": 15, "/etc": 1})


def test_names_that_are_not_utf8_in_the_document_and_the_html_page():
    """A kept file and a directory whose names are latin-1 bytes: the document is valid
    UTF-8 JSON with the exact bytes alongside, and the HTML page renders it."""
    import base64

    from minifier.output.html_report import render_html

    raw = "/srv/caf\udce9/menu".encode("utf-8", "surrogateescape")
    plan = BuildPlan(kept=(KeptFile("/srv/caf\udce9/menu", 4, "file", ("accessed",)),),
                     total_files=2, total_size=8, excluded=("/srv/caf\udce9/old",))
    result = BuildResult(image_id="sha256:" + "b" * 64, tag="app.min:1", size=100,
                         layer_path="/tmp/x/layer.tar")
    doc = make_report(IMAGE, result, plan, AccessRecord(accesses={}),
                      Observation(http=None, execs=(), target=None), VERDICT,
                      Counter({"/srv/caf\udce9": 4}), "", index=INDEX).document
    text = json.dumps(doc)
    text.encode("utf-8")  # no lone surrogate left
    assert "\\udc" not in text
    assert doc["kept"] == [{"path": "/srv/caf\\xe9/menu", "path_b64": base64.b64encode(
        raw).decode(), "size": 4, "kind": "file", "reasons": ["accessed"]}]
    assert doc["excluded"] == ["/srv/caf\\xe9/old"]
    assert {d["path"] for d in doc["dirs"]} == {"/srv/caf\\xe9"}
    assert "/srv/caf\\xe9" in render_html(doc)

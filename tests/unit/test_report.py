"""The report's JSON contract (keys pinned) and its human rendering."""

from collections import Counter

from minifier.output.report import SCHEMA, dir_sizes, index_text, make_report, render_text
from minifier.records import (
    AccessRecord,
    BuildPlan,
    BuildResult,
    ComparedRequest,
    Finding,
    HealthVerdict,
    ImageInfo,
    KeptFile,
    LivenessVerdict,
    Mismatch,
    SelfCheck,
    VerifyResult,
)

IMAGE = ImageInfo(ref="app:1", id="sha256:" + "a" * 64, repo_tags=("app:1",), size=10_000_000,
                  architecture="amd64", os="linux", entrypoint=(), cmd=("app",), env=(),
                  workdir="", user="", exposed_ports=("80/tcp",), volumes=(), labels={},
                  stop_signal="", healthcheck=None, config={})


ROW = ComparedRequest(round=1, method="GET", path="/", port=80, compared="status+body",
                      original_status=200, minified_status=200, nondeterministic=False,
                      ok=True)
VERDICT = VerifyResult(
    status="passed", requests=(ROW,),
    health=HealthVerdict(status="passed", test=("/bin/sh", "-c", "curl -f localhost"),
                         seconds=1.2),
    liveness=LivenessVerdict(shape="service", ok=True, required_seconds=4.5, ports=(80,),
                             minified_ports=(80,), restarted=True))


def _report(verdict=VERDICT, selfcheck=None):
    plan = BuildPlan(kept=(KeptFile("/usr/bin/app", 400_000, "file", ("accessed",)),
                           KeptFile("/usr/bin", 0, "dir", ("parent",))),
                     total_files=1000, total_size=9_000_000, excluded=("/etc/secret",))
    result = BuildResult(image_id="sha256:" + "b" * 64, tag="app.min:1", size=500_000,
                         layer_path="/tmp/x/layer.tar")
    return make_report(IMAGE, result, plan, AccessRecord(accesses={}),
                       {"requests": [], "counts": {"2xx": 3}, "discovered": [], "execs": []},
                       verdict,
                       Counter({"/usr/share/doc": 2_000_000}), "/tmp/art",
                       selfcheck=selfcheck, index=INDEX)


INDEX = {"reader": "storage", "why": "the image's overlay2 layer directories, read in place",
         "cache": "hit", "cache_file": "/root/.cache/minify/" + "a" * 64 + ".index",
         "entries": 1001}


def test_report_keys_are_pinned():
    doc = _report().to_json()
    assert doc["schema"] == SCHEMA
    assert set(doc) == {"schema", "source", "output", "ratio", "files", "kept", "excluded",
                        "probe", "access", "verify", "selfcheck", "biggest_kept_dirs",
                        "biggest_removed_dirs", "dirs", "warnings", "artifacts_dir",
                        "timings", "index"}
    assert doc["index"] == INDEX
    assert set(doc["source"]) == {"image", "id", "size"}
    assert set(doc["output"]) == {"image", "id", "size"}
    assert set(doc["files"]) == {"kept", "total", "kept_size", "total_size"}
    assert doc["kept"][0] == {"path": "/usr/bin/app", "size": 400_000, "kind": "file",
                              "reasons": ["accessed"]}
    assert doc["ratio"] == 20.0
    assert doc["verify"]["status"] == "passed"
    assert doc["selfcheck"] == {"status": "passed", "findings": []}
    assert doc["dirs"] == [{"path": "/usr/bin", "kept": 400_000, "removed": 0},
                           {"path": "/usr/share/doc", "kept": 0, "removed": 2_000_000}]
    assert set(doc["verify"]) == {"status", "reason", "mismatches", "requests", "execs",
                                  "health", "liveness", "minified_output",
                                  "include_path_hints"}
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
    doc = report.to_json()
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
    doc = _report(verdict).to_json()["verify"]
    assert doc["mismatches"][0]["kind"] == "request"
    assert doc["mismatches"][0]["round"] == 2 and doc["mismatches"][0]["path"] == "/x"
    assert doc["mismatches"][1] == {"kind": "log",
                                    "text": "libfoo.so: cannot open shared object file"}
    assert "verify  failed" in render_text(_report(verdict))


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


def test_index_line_names_the_export_fallback_and_why():
    assert index_text({"reader": "export", "why": "--image-source export",
                       "cache": "rebuilt: the cached index was corrupt (file is not a database)"}
                      ) == ("index   docker export stream (--image-source export); cache "
                            "rebuilt: the cached index was corrupt (file is not a database)")


def test_dir_sizes_groups_by_prefix():
    sizes = dir_sizes([("/usr/lib/x/a.so", 10), ("/usr/lib/x/y/b.so", 5), ("/etc/a", 1)],
                      depth=3)
    assert sizes == Counter({"/usr/lib/x": 15, "/etc": 1})

"""`minify build` end to end on the sandbox images: the minified image runs with a plain
`docker run` and answers the probed requests exactly like the original."""

from __future__ import annotations

import json

import pytest

from minifier.cli import main

from .conftest import SANDBOX
from .helpers import answers, exported

NONDETERMINISTIC = {"/api/time"}


def _build(tmp_path_factory, name, *extra):
    art = tmp_path_factory.mktemp(f"art-{name}")
    tag = f"minify-test/build-{name}.min:e2e"  # unique to this module: run in parallel
    code = main(["build", SANDBOX[name], "--tag", tag, "--artifacts-dir", str(art),
                 "--report-file", str(art / "report-copy.json"), *extra])
    report = json.loads((art / "report-copy.json").read_text()) if code == 0 else None
    return code, tag, report, art


@pytest.fixture(scope="module")
def built(client, tmp_path_factory):
    results = {}
    yield lambda name, *extra: results.get(name) or results.setdefault(
        name, _build(tmp_path_factory, name, *extra))
    for _, tag, _, _ in results.values():
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001
            pass


def _probed_paths(report):
    return sorted({r["path"] for r in report["probe"]["requests"]
                   if r["method"] == "GET" and r["status"] is not None})


@pytest.mark.parametrize("name,port,min_ratio", [
    ("nginx", 80, 15), ("python", 8080, 6), ("busybox", 8080, 1), ("quirks", 8080, 1),
    ("java", 8080, 3), ("node", 3000, 3), ("musl", 8080, 1)])
def test_minified_answers_like_the_original(client, built, name, port, min_ratio):
    code, tag, report, _ = built(name)
    assert code == 0
    assert report["verify"]["status"] == "passed"
    assert report["ratio"] >= min_ratio, report["ratio"]
    paths = _probed_paths(report)
    assert "/" in paths
    original = answers(client, SANDBOX[name], port, paths)
    minified = answers(client, tag, port, paths)
    for path in paths:
        if path in NONDETERMINISTIC:
            assert minified[path][0] == original[path][0]
        else:
            assert minified[path] == original[path], path
    img = client.images.get(tag)
    assert len(img.attrs["RootFS"]["Layers"]) == 1
    src = client.images.get(SANDBOX[name]).attrs["Config"]
    out = img.attrs["Config"]
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts"):
        assert out.get(key) == src.get(key), key
    assert out["Labels"]["minify.source.id"] == client.images.get(SANDBOX[name]).id


def test_jvm_through_the_alternatives_chain(built):
    code, _, report, _ = built("java")
    assert code == 0
    kept = {k["path"]: k["reasons"] for k in report["kept"]}
    assert "/usr/bin/java" in kept and "/etc/alternatives/java" in kept  # the chain's links
    assert any(p.endswith("/lib/server/libjvm.so") for p in kept)  # dlopen'ed, not DT_NEEDED
    assert any(p.endswith("/lib/modules") for p in kept)  # the JDK's class image
    assert not any("libjvm.so not found" in w for w in report["warnings"])


def test_current_time_endpoint_is_nondeterministic_not_a_failure(built):
    code, _, report, _ = built("python")
    assert code == 0
    rows = {r["path"]: r for r in report["verify"]["requests"] if r["method"] == "GET"}
    assert rows["/api/time"]["nondeterministic"] is True
    assert rows["/api/time"]["compared"] == "status"
    assert rows["/api/items"]["compared"] == "status+body"
    assert report["verify"]["status"] == "passed"


def test_removed_list_and_report_contents(built):
    code, _, report, art = built("nginx")
    assert code == 0
    kept = {k["path"] for k in report["kept"]}
    assert "/usr/sbin/nginx" in kept and "/etc/nginx/nginx.conf" in kept
    assert report["files"]["kept"] + len(report["files"]["placeholders"]) == len(report["kept"])
    assert (art / "access.json").exists() and (art / "layer.tar").exists()


def test_nginx_crawl_reaches_every_page(built):
    _, _, report, _ = built("nginx")
    paths = _probed_paths(report)
    for path in ("/about.html", "/docs/", "/docs/page2.html", "/css/site.css",
                 "/img/logo.png", "/img/bg.png", "/js/app.js"):
        assert path in paths, path


def test_quirks_survive(client, built):
    code, tag, report, _ = built("quirks")
    assert code == 0
    tar = exported(client, tag)
    suid = tar.getmember("usr/local/bin/suid-tool")
    assert suid.mode & 0o4000
    start = tar.getmember("usr/local/bin/start")
    assert start.issym() and start.linkname == "/opt/quirks/start.sh"
    os_release = tar.extractfile(tar.getmember("usr/lib/os-release")).read()
    assert b"MINIFY_QUIRKS=image-copy" in os_release  # the image's file, never the host's
    assert client.images.get(tag).attrs["Config"]["User"] == client.images.get(
        SANDBOX["quirks"]).attrs["Config"]["User"]
    kept = {k["path"]: k["reasons"] for k in report["kept"]}
    assert "/usr/bin/dash" in kept and "/usr/bin/sh" in kept  # the script's #!/bin/sh
    assert "/opt/quirks/start.sh" in kept
    assert not any(p.startswith("/.minify") or p == "/.dockerenv" for p in kept)


JQ_ARGS = ("--no-http-probe", "--exec", "jq .name /data/sample.json")


def test_cli_tool_with_exec_probe(client, built):
    code, tag, report, art = built("jq", *JQ_ARGS)
    assert code == 0
    assert report["probe"]["execs"] == [{"argv": ["jq", ".name", "/data/sample.json"],
                                         "exit_code": 0}]
    out = client.containers.run(tag, entrypoint=["jq"], command=[".name", "/data/sample.json"],
                                remove=True)
    assert out.strip() == b'"minify"'
    access = json.loads((art / "access.json").read_text())
    assert "/data/sample.json" in {p["path"] for p in access["paths"]}
    # The access record's own contract: its schema, every key of every object.
    assert list(access) == ["schema", "paths", "syscall_counts", "warnings"]
    assert access["schema"] == "minify.access/v1"
    assert {tuple(p) for p in access["paths"]} == {
        ("path", "ops", "exes", "sources", "exists")}
    sample = next(p for p in access["paths"] if p["path"] == "/data/sample.json")
    assert sample["exists"] is True and "ptrace" in sample["sources"]


@pytest.mark.parametrize("name", ["nginx", "python", "busybox", "quirks", "java", "node",
                                  "musl", "jq"])
def test_self_check_finds_nothing_on_any_sample(built, name):
    """The builds above, walked before they were written: every kept interpreter,
    library and link target that the original resolves, the minified image resolves."""
    code, _, report, _ = built(name, *(JQ_ARGS if name == "jq" else ()))
    assert code == 0
    assert report["selfcheck"] == {"status": "passed", "findings": []}
    assert not any("not found in the image" in w for w in report["warnings"]), \
        report["warnings"]

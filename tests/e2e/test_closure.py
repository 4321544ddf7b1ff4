"""Closure completeness end to end on the `tools` sample: programs kept only through
--include-bin, --include-path and --include-shell run in the minified image exactly as in
the original (deep library chains, RUNPATH $ORIGIN, the image's LD_LIBRARY_PATH,
glibc-hwcaps copies, a #! script, an alternatives link, usrmerge), and the self-check
refuses an image it knows to be incomplete."""

from __future__ import annotations

import json

import docker
import pytest

from minifier.errors import ExitStatus

from .builds import TOOLS_INCOMPLETE
from .conftest import SANDBOX
from .helpers import minify

pytestmark = pytest.mark.e2e

TOOLS = SANDBOX["tools"]
LIBS = "/usr/lib/x86_64-linux-gnu"
# Each included program, run the same way in the original and the minified image.
PROGRAMS = {
    "curl": (["curl", "--version"], b"curl 7.88.1"),  # libcurl -> librtmp -> libgnutls ...
    "wget": (["wget", "--version"], b"GNU Wget 1.21.3"),  # libgnutls directly, libpcre2
    "openssl": (["openssl", "version"], b"OpenSSL 3."),
    "awk": (["awk", "-W", "version"], b"mawk 1.3.4"),  # /usr/bin/awk -> /etc/alternatives
    "zcat": (["zcat", "--version"], b"zcat (gzip) 1.12"),  # a #!/bin/sh script
    # Under --include-path /opt/tool/bin: RUNPATH $ORIGIN/../lib, then LD_LIBRARY_PATH
    # (image Env) with a glibc-hwcaps/x86-64-v2 copy, then ld.so.cache for libz.
    "tool": (["/opt/tool/bin/tool"], b"tool 1.0: core 1.0, zlib 1.2.13, extra "),
    "ls": (["ls", "/opt/tool/bin"], b"tool\n"),  # --include-shell
}
INCLUDES = ("--include-bin", "/usr/bin/curl", "--include-bin", "wget", "--include-bin", "openssl",
            "--include-bin", "awk", "--include-bin", "zcat", "--include-path", "/opt/tool/bin",
            "--include-shell")


def _run(client, image, argv) -> bytes:
    """The program's stdout (docker run fails with its stderr when it exits non-zero)."""
    return client.containers.run(image, argv, remove=True, labels={"minify.run": "test"})


@pytest.fixture(scope="module")
def tools_min(client, tmp_path_factory):
    tag = "minify-test/closure-tools.min:e2e"
    report_file = tmp_path_factory.mktemp("tools") / "report.json"
    run = minify("build", TOOLS, "--tag", tag, "--no-http-probe", *INCLUDES,
                 "--report-file", str(report_file))
    assert run.code == 0, run.stderr
    yield tag, json.loads(report_file.read_text())
    client.images.remove(tag, force=True)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_included_program_runs_like_the_original(client, tools_min, name):
    tag, _ = tools_min
    argv, start = PROGRAMS[name]
    original = _run(client, TOOLS, argv)
    assert original.startswith(start), original  # the original does run it
    assert _run(client, tag, argv) == original


def test_docker_shell_form_on_a_usrmerged_image(client, tools_min):
    tag, report = tools_min
    assert _run(client, tag, ["/bin/sh", "-c", "echo ok"]) == b"ok\n"
    kept = {k["path"]: k for k in report["kept"]}
    assert kept["/bin"]["kind"] == "symlink"


def test_report_shows_the_closure(tools_min):
    _, report = tools_min
    assert report["selfcheck"] == {"status": "passed", "findings": []}
    assert not any("not found" in w for w in report["warnings"]), report["warnings"]
    kept = {k["path"]: k["reasons"] for k in report["kept"]}
    assert kept[f"{LIBS}/libbrotlicommon.so.1.0.9"] == ["elf-dep"]  # behind libbrotlidec
    for lib in ("libp11-kit.so.0.3.0", "libtasn1.so.6.6.3", "libffi.so.8.1.2"):
        assert kept[f"{LIBS}/{lib}"] == ["elf-dep"], lib  # behind libgnutls
    assert kept["/opt/tool/lib/libtoolcore.so.1"] == ["elf-dep"]
    assert kept["/opt/extra/lib/libtoolextra.so.1"] == ["elf-dep"]
    assert kept["/opt/extra/lib/glibc-hwcaps/x86-64-v2/libtoolextra.so.1"] == ["elf-dep"]
    assert kept["/usr/bin/mawk"] == ["include-bin"]
    assert kept["/etc/alternatives/awk"] == ["symlink"]
    assert kept["/usr/bin/zcat"] == ["include-bin"] and "shebang" in kept["/usr/bin/dash"]


INCOMPLETE = TOOLS_INCOMPLETE  # curl kept, a library it needs excluded
FINDING = (f"{LIBS}/libbrotlidec.so.1.0.9: library libbrotlicommon.so.1 is "
           f"{LIBS}/libbrotlicommon.so.1.0.9 in the original image but missing from the "
           "minified one (removed by --exclude-pattern)")


def test_an_incomplete_image_is_refused(client):
    tag = "minify-test/tools-refused.min:e2e"
    run = minify("build", TOOLS, "--tag", tag, "--no-http-probe", *INCOMPLETE)
    assert run.code == ExitStatus.INCOMPLETE == 10, run.stderr
    lines = run.stderr.strip().splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("minify: error:"))
    assert lines[error:] == [
        f"minify: error: the minified image would be incomplete: {FINDING}; nothing was "
        "built (--allow-incomplete builds it anyway)",
        f"  {FINDING}"]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(tag)


def test_allow_incomplete_builds_and_reports_the_truth(client, build):
    b = build("tools-incomplete")  # the same, --allow-incomplete, head as the entrypoint
    tag, report = b.tag, b.report
    assert b.run.code == 0, b.run.stderr
    assert report["selfcheck"]["status"] == "incomplete"
    assert [f["text"] for f in report["selfcheck"]["findings"]] == [FINDING]
    assert f"incomplete (--allow-incomplete): {FINDING}" in report["warnings"]
    # What the self-check said is what the loader says.
    with pytest.raises(docker.errors.ContainerError) as failed:
        _run(client, tag, ["curl", "--version"])
    assert (b"error while loading shared libraries: libbrotlicommon.so.1"
            in failed.value.stderr)
    # `sh` was found on PATH as /usr/bin/sh; /bin/sh resolves too.
    assert _run(client, tag, ["/bin/sh", "-c", "echo ok"]) == b"ok\n"
    # The closure was seeded from the app as run (--entrypoint), not the image's Cmd.
    kept = {k["path"]: k["reasons"] for k in report["kept"]}
    assert "entrypoint" in kept["/usr/bin/head"] and "/usr/bin/cat" not in kept

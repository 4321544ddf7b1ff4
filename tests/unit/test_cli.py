"""The CLI in-process: option parsing, one-line errors and documented exit codes."""

import json

import pytest

from minifier.cli import main
from minifier.errors import ExitStatus


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_build(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "build" in out


def test_build_help_documents_every_exit_code(capsys):
    code, out, _ = run(capsys, "build", "--help")
    assert code == 0
    for status in ExitStatus:
        assert f"{status.value}  {status.name.lower()}" in out


def test_bogus_continue_after_is_a_usage_error(capsys):
    code, _, err = run(capsys, "build", "img:1", "--continue-after", "bogus")
    assert code == ExitStatus.USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minify: error:")
    assert "bogus" in lines[0] and "timeout:SECONDS" in lines[0]


def test_malformed_probe_file_names_file_and_field(capsys, tmp_path):
    bad = tmp_path / "probes.json"
    bad.write_text(json.dumps({"commands": [{"resource": "/", "method": "FETCH"}]}))
    code, _, err = run(capsys, "build", "img:1", "--http-probe-cmd-file", str(bad))
    assert code == ExitStatus.USAGE
    assert "probes.json" in err and "commands[0].method" in err


def test_missing_probe_file_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "build", "--http-probe-cmd-file", str(tmp_path / "nope.json"),
                       "img:1")
    assert code == ExitStatus.USAGE
    assert "nope.json" in err


def test_unreachable_engine(capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    code, _, err = run(capsys, "build", "img:1")
    assert code == ExitStatus.ENGINE
    assert "cannot reach the Docker engine at tcp://127.0.0.1:9" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option", ["--http-crawl-max-depth", "--http-probe-start-wait"])
def test_non_numeric_values_are_usage_errors(capsys, option):
    code, _, err = run(capsys, "build", "img:1", option, "lots")
    assert code == ExitStatus.USAGE
    assert option in err


def test_keep_options_follow_the_run_overrides():
    from minifier.cli import build, build_options

    args = ["img:1", "--env", "LD_LIBRARY_PATH=/opt/lib", "--env", "PATH=/opt/bin",
            "--workdir", "/srv", "--allow-incomplete", "--include-bin", "tool"]
    opts = build_options("img:1", build.make_context("build", args).params)
    assert opts.keep.env == ("LD_LIBRARY_PATH=/opt/lib", "PATH=/opt/bin") == opts.run.env
    assert opts.keep.workdir == "/srv" and opts.keep.allow_incomplete
    assert opts.keep.argv is None  # set by the pipeline once the image is inspected
    opts = build_options("img:1", build.make_context("build", ["img:1"]).params)
    assert not opts.keep.allow_incomplete and opts.keep.env == () and opts.keep.workdir is None


def test_xray_help_documents_every_exit_code(capsys):
    code, out, _ = run(capsys, "xray", "--help")
    assert code == 0
    for status in ExitStatus:
        assert f"{status.value}  {status.name.lower()}" in out
    for option in ("--json", "--summary-md", "--dockerfile", "--build-report", "--max-waste",
                   "--min-efficiency", "--max-finding-bytes"):
        assert option in out


@pytest.mark.parametrize("args, message", [
    (["--max-waste", "lots"], "--max-waste: 'lots' is not a size"),
    (["--min-efficiency", "1.5"], "--min-efficiency"),
    (["--max-finding-bytes", "bogus=1MB"], "--max-finding-bytes: unknown finding 'bogus'"),
    (["--max-finding-bytes", "apt-lists=huge"], "--max-finding-bytes: 'huge' is not a size"),
    (["--dockerfile", "/nonexistent/Dockerfile"], "cannot read /nonexistent/Dockerfile"),
])
def test_xray_bad_options_are_usage_errors_before_the_engine(capsys, monkeypatch, args, message):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # never reached
    code, out, err = run(capsys, "xray", "img:1", *args)
    assert code == ExitStatus.USAGE, err
    assert message in err and out == ""


def test_xray_build_report_must_be_a_build_report(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "xray", "img:1", "--build-report", str(bad))
    assert code == ExitStatus.USAGE and "not JSON" in err


def _one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minify: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0].removeprefix("minify: error: ")


# Issue 14: output paths that cannot be written are usage errors before anything starts
# (no engine is reached: DOCKER_HOST points nowhere, and the exit is still 2).
@pytest.mark.parametrize("option", ["--report-file", "--removed-list", "--summary-md",
                                    "--seccomp-profile"])
def test_unwritable_output_files(capsys, monkeypatch, tmp_path, option):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    missing = tmp_path / "no" / "such" / "out.json"
    code, _, err = run(capsys, "build", "img:1", option, str(missing))
    assert code == ExitStatus.USAGE
    assert _one_error(err) == f"{option} {missing}: no such directory {missing.parent}"
    code, _, err = run(capsys, "build", "img:1", option, str(tmp_path))
    assert code == ExitStatus.USAGE
    assert _one_error(err) == f"{option} {tmp_path}: is a directory"


def test_output_file_on_a_read_only_mount(capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    code, _, err = run(capsys, "build", "img:1", "--report-file", "/proc/report.json")
    assert code == ExitStatus.USAGE
    assert _one_error(err).startswith("--report-file /proc/report.json: cannot write in /proc:")


def test_artifacts_dir_under_a_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    afile = tmp_path / "file"
    afile.write_text("x")
    code, _, err = run(capsys, "build", "img:1", "--artifacts-dir", str(afile / "sub"))
    assert code == ExitStatus.USAGE
    assert _one_error(err) == f"--artifacts-dir {afile / 'sub'}: {afile} is not a directory"
    code, _, err = run(capsys, "build", "img:1", "--artifacts-dir", str(afile))
    assert _one_error(err) == f"--artifacts-dir {afile}: exists and is not a directory"
    # a directory still to be made under a writable one is fine: the engine is reached
    code, _, err = run(capsys, "build", "img:1", "--artifacts-dir", str(tmp_path / "a" / "b"))
    assert code == ExitStatus.ENGINE


def test_apispec_file_errors_are_usage_errors(capsys, tmp_path):
    code, _, err = run(capsys, "build", "img:1", "--http-probe-apispec-file",
                       str(tmp_path / "none.yaml"))
    assert code == ExitStatus.USAGE
    assert _one_error(err) == f"{tmp_path / 'none.yaml'}: cannot read: No such file or directory"
    html = tmp_path / "page.html"
    html.write_text("<html></html>")
    code, _, err = run(capsys, "build", "img:1", "--http-probe-apispec-file", str(html))
    assert code == ExitStatus.USAGE
    assert "not an OpenAPI or Swagger document" in _one_error(err)
    code, _, err = run(capsys, "build", "img:1", "--http-probe-apispec", "openapi.json")
    assert _one_error(err) == "apispec path 'openapi.json' does not start with '/'"
    code, _, err = run(capsys, "build", "img:1", "--http-probe-apispec-methods", "some")
    assert code == ExitStatus.USAGE and "'some' is not one of 'get', 'all'" in err


def test_probe_option_values_the_probes_package_refuses_are_usage_errors(capsys):
    # These were raised by probes.HttpProbeOptions outside the CLI's mapping (exit 1).
    code, _, err = run(capsys, "build", "img:1", "--http-probe-start-wait", "-1")
    assert code == ExitStatus.USAGE
    assert _one_error(err) == "start_wait: -1.0 is not a positive number of seconds"
    code, _, err = run(capsys, "build", "img:1", "--http-crawl-max-depth", "-2")
    assert _one_error(err) == "max_depth: -2 is not a non-negative integer"



def test_a_signal_handled_inside_a_finalizer_is_not_lost():
    """Python ignores an exception raised in a weakref callback: a Ctrl-C whose handler
    runs there must still interrupt the build (it is raised again, in the main code)."""
    import os
    import signal
    import sys
    import time
    import weakref

    from minifier.cli import _handle_signals
    from minifier.errors import Interrupted

    class Thing:
        pass

    def callback():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs here, inside the finalizer
            pass

    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook
    try:
        _handle_signals()
        thing = Thing()
        weakref.finalize(thing, callback)
        with pytest.raises(Interrupted) as info:
            del thing  # the finalizer runs, its Interrupted is ignored ...
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # ... and raised again here
                time.sleep(0.01)
        assert info.value.signum == signal.SIGINT
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        sys.unraisablehook = saved[2]


# -- docker-slim's spellings -----------------------------------------------------------


def _options(*args):
    from minifier.cli import bool_values, build, build_options

    params = build.make_context("build", bool_values(["build", *args])[1:]).params
    return build_options("img:1", params)


def test_http_probe_takes_true_and_false_like_docker_slim():
    default = _options()
    assert default.probe.http is not None and not default.probe.http_asked
    assert default.probe.continue_after is None  # decided once the image is known
    assert _options("--http-probe=false").probe.http is None
    assert _options("--http-probe=FALSE").probe.http is None
    assert _options("--no-http-probe").probe.http is None
    assert _options("--no-http-probe=false").probe.http_asked  # not "no": on, by name
    assert _options("--http-probe=true").probe.http_asked
    assert _options("--http-probe=1").probe.http_asked
    assert _options("--http-probe").probe.http_asked
    # Probe commands, ports and API documents ask for HTTP probing by name too.
    assert _options("--http-probe-cmd", "/health").probe.http_asked
    assert _options("--http-probe-ports", "8080").probe.http_asked
    assert _options("--http-probe-apispec", "/openapi.json").probe.http_asked
    assert _options("--include-shell=true").keep.include_shell
    assert not _options("--include-shell=false").keep.include_shell
    # A value of the option before it is not a flag.
    assert _options("--cmd", "--http-probe=false").run.cmd == ("--http-probe=false",)
    assert _options("--continue-after", "exec").probe.continue_after.mode == "exec"


def test_a_flag_value_that_is_not_a_boolean(capsys):
    code, out, err = run(capsys, "build", "img:1", "--http-probe=maybe")
    assert code == ExitStatus.USAGE and out == ""
    assert err.strip() == "minify: error: --http-probe=maybe: not true or false"


def test_target_is_the_image_argument(capsys):
    from minifier.cli import target_image
    from minifier.errors import UsageError

    assert target_image(None, "app:1") == target_image("app:1", None) == "app:1"
    assert target_image("app:1", "app:1") == "app:1"
    with pytest.raises(UsageError, match="two images named: app:1 and --target app:2"):
        target_image("app:1", "app:2")
    code, _, err = run(capsys, "build", "--json")
    assert code == ExitStatus.USAGE
    assert err.strip() == "minify: error: no image named: minify build IMAGE (or --target IMAGE)"
    code, _, err = run(capsys, "xray", "--target", "a:1", "b:1")
    assert (code, err.strip()) == (ExitStatus.USAGE,
                                   "minify: error: two images named: b:1 and --target a:1")


def test_preserve_path_env_file_zoneinfo_and_mounts(tmp_path):
    keep_file = tmp_path / "keep.txt"
    keep_file.write_text("/srv/b\n# comment\n")
    env_file = tmp_path / "app.env"
    env_file.write_text("MODE=file\nTZ=Europe/Paris\n")
    opts = _options("--include-path", "/a", "--preserve-path", "/srv/a",
                    "--preserve-path-file", str(keep_file), "--env-file", str(env_file),
                    "--env", "MODE=flag", "--include-zoneinfo",
                    "-v", "/host/conf:/etc/app:ro", "--volume", "data:/var/lib/app",
                    "--mount", "type=volume,target=/cache,volume-nocopy",
                    "--tmpfs", "/run/app/", "--network", "appnet", "--link", "db:database")
    # docker-slim's --preserve-path: minify's files always come from the original image.
    assert opts.keep.include_paths == ("/a", "/srv/a", "/srv/b")
    assert opts.run.env == opts.keep.env == ("MODE=file", "TZ=Europe/Paris", "MODE=flag")
    assert opts.keep.include_zoneinfo
    assert opts.keep.mountpoints == ("/etc/app", "/var/lib/app", "/cache", "/run/app")
    # A named volume gets the image's files; a bind mount, nocopy and a tmpfs hide them.
    assert opts.keep.hidden == ("/etc/app", "/cache", "/run/app")
    assert (opts.run.container.network, opts.run.container.links) == (
        "appnet", (("db", "database"),))


# -- --json when a command fails -------------------------------------------------------


def _failure(out):
    doc = json.loads(out)
    assert list(doc) == ["schema", "command", "error", "report"]
    assert list(doc["error"]) == ["exit_code", "exit_name", "message", "detail"]
    return doc


def test_json_failure_document_for_a_usage_error(capsys):
    code, out, err = run(capsys, "build", "img:1", "--json", "--continue-after", "bogus")
    assert code == ExitStatus.USAGE
    doc = _failure(out)
    assert doc["schema"] == "minify.error/v1" and doc["command"] == "build"
    assert (doc["error"]["exit_code"], doc["error"]["exit_name"]) == (2, "usage")
    assert f"minify: error: {doc['error']['message']}" == err.strip()
    assert doc["report"] is None
    # click's own refusals too, and xray's
    code, out, _ = run(capsys, "build", "img:1", "--json", "--no-such-option")
    assert code == ExitStatus.USAGE
    assert _failure(out)["error"]["message"] == "No such option '--no-such-option'."
    code, out, _ = run(capsys, "xray", "img:1", "--json", "--max-waste", "lots")
    doc = _failure(out)
    assert (doc["command"], doc["error"]["exit_name"]) == ("xray", "usage")
    # Without --json nothing is printed on stdout
    assert run(capsys, "build", "img:1", "--continue-after", "bogus")[1] == ""


def test_json_failure_document_for_an_unreachable_engine(capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    code, out, _ = run(capsys, "build", "--json", "img:1")
    doc = _failure(out)
    assert (code, doc["error"]["exit_code"], doc["error"]["exit_name"]) == (4, 4, "engine")
    assert doc["error"]["message"].startswith("cannot reach the Docker engine at tcp://")


def test_failure_document_carries_the_report():
    from minifier.errors import VerifyError, failure_document

    exc = VerifyError("verification failed: x", detail="  GET / differs")
    exc.report = {"schema": "minify.report/v2"}
    assert failure_document("build", exc.exit_status, exc.message, exc.detail,
                            exc.report) == {
        "schema": "minify.error/v1", "command": "build",
        "error": {"exit_code": 7, "exit_name": "verify", "message": "verification failed: x",
                  "detail": "  GET / differs"},
        "report": {"schema": "minify.report/v2"}}
    assert failure_document("build", 130, "interrupted")["error"]["exit_name"] == "interrupted"

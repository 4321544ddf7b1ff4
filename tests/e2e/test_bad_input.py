"""Bad input: a clear one-line error, its documented exit code, nothing left behind, and
the source image unchanged (same id, same tags)."""

from __future__ import annotations

import json
import os
import re

import pytest

from minifier.errors import ExitStatus

from .conftest import SANDBOX
from .helpers import minify, temp_dirs, tracer_processes


def _one_line_error(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("minify: error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


@pytest.fixture
def unchanged(client):
    """Snapshot every sandbox image's id and tags, the engine's networks and volumes, and
    our temp dirs; assert they are the same afterwards."""
    def snapshot():
        return {ref: (client.images.get(ref).id, tuple(sorted(client.images.get(ref).tags)))
                for ref in SANDBOX.values()}
    def engine_objects():
        # Other tests may run at the same time (make test runs workers in parallel): their
        # own networks (minify-test-*) and the volumes their running containers use are
        # not ours. A volume minify leaked belongs to no container: dangling.
        networks = {n["Id"] for n in client.api.networks()
                    if not n["Name"].startswith("minify-test-")}
        volumes = client.api.volumes(filters={"dangling": True}).get("Volumes") or []
        return networks, {v["Name"] for v in volumes}
    before, dirs, objects = snapshot(), temp_dirs(), engine_objects()
    yield
    assert snapshot() == before
    assert temp_dirs() <= dirs
    after = engine_objects()
    assert after[0] - objects[0] == set()  # no network left behind
    assert after[1] - objects[1] == set()  # nor a volume
    assert not tracer_processes()


CASES = [
    # (args, exit status, text in the error line)
    (["build", "minify-test/does-not-exist:1"], ExitStatus.IMAGE,
     "image minify-test/does-not-exist:1 not found"),
    (["build", "Bad::Reference"], ExitStatus.IMAGE, "invalid image reference 'Bad::Reference'"),
    (["build", SANDBOX["busybox"], "--tag", SANDBOX["busybox"]], ExitStatus.IMAGE,
     "that is the source image's tag"),
    (["build", SANDBOX["busybox"], "--continue-after", "bogus"], ExitStatus.USAGE, "bogus"),
    # HTTP probing asked for by name of an image without a port (without: skipped)
    (["build", SANDBOX["jq"], "--http-probe=true"], ExitStatus.USAGE,
     "exposes no TCP port to probe: pass --expose PORT or --http-probe-ports PORT"),
    (["build", SANDBOX["crash"], "--http-probe-start-wait", "20"], ExitStatus.APP,
     "the app exited before it was ready"),
    (["build", SANDBOX["busybox"], "--max-size", "lots"], ExitStatus.USAGE, "--max-size"),
    # A program that is not there: what `docker run` says, with the PATH searched.
    (["build", SANDBOX["oneshot"], "--no-http-probe", "--entrypoint", "gunicorn"],
     ExitStatus.APP, "minify: error: cannot start gunicorn: executable file not found in $PATH "
     "(/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"),
    (["build", SANDBOX["oneshot"], "--no-http-probe", "--entrypoint", "/app/run"],
     ExitStatus.APP, "minify: error: cannot start /app/run: no such file or directory"),
    # docker run's options: what the engine refuses is said in its words, exit 2.
    (["build", SANDBOX["busybox"], "--memory", "1m"], ExitStatus.USAGE,
     "the engine refused the container's options: Minimum memory limit allowed is 6MB"),
    (["build", SANDBOX["busybox"], "--cap-add", "FOO"], ExitStatus.USAGE,
     "the engine refused the container's options: invalid CapAdd: unknown capability: "
     '"CAP_FOO"'),
    (["build", SANDBOX["busybox"], "--security-opt", "apparmor"], ExitStatus.USAGE,
     "--security-opt: invalid value 'apparmor'"),
]


@pytest.mark.parametrize("args,status,text", CASES, ids=[c[2][:30] for c in CASES])
def test_bad_input(client, unchanged, args, status, text):
    run = minify(*args)
    assert run.code == status, run.stderr
    assert text in _one_line_error(run.stderr)


def test_crashing_app_shows_its_last_output(client, unchanged):
    run = minify("build", SANDBOX["crash"])
    assert run.code == ExitStatus.APP
    assert "fatal: config missing" in run.stderr


def test_engine_not_reachable(client, unchanged):
    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:9"}
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "minifier.cli", "build", SANDBOX["busybox"]],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == ExitStatus.ENGINE
    assert "cannot reach the Docker engine at tcp://127.0.0.1:9" in _one_line_error(proc.stderr)


@pytest.mark.parametrize("content,field", [
    ("{not json", "line 1"),
    (json.dumps({"commands": [{"resource": "api"}]}), "commands[0].resource"),
])
def test_malformed_probe_file(client, unchanged, tmp_path, content, field):
    bad = tmp_path / "cmds.json"
    bad.write_text(content)
    run = minify("build", SANDBOX["busybox"], "--http-probe-cmd-file", str(bad))
    assert run.code == ExitStatus.USAGE
    line = _one_line_error(run.stderr)
    assert "cmds.json" in line and field in line


def test_missing_probe_file(client, unchanged, tmp_path):
    run = minify("build", SANDBOX["busybox"], "--http-probe-cmd-file", str(tmp_path / "no.json"))
    assert run.code == ExitStatus.USAGE
    assert "no.json" in _one_line_error(run.stderr)


def test_not_root_is_told_which_capabilities(client, unchanged):
    import subprocess

    from .helpers import ENV, MINIFY
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                           *MINIFY, "build", SANDBOX["busybox"]], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == ExitStatus.CAPABILITY, proc.stderr
    line = _one_line_error(proc.stderr)
    assert "CAP_SYS_PTRACE" in line and "CAP_SYS_ADMIN" in line


def test_image_with_volumes_leaves_no_volume(client, unchanged, tmp_path):
    """VOLUME makes every container get anonymous volumes: they go with the containers."""
    import subprocess

    (tmp_path / "Dockerfile").write_text(f"FROM {SANDBOX['busybox']}\nVOLUME /srv/data\n")
    src, out = "minify-test/with-volume:e2e", "minify-test/with-volume.min:e2e"
    subprocess.run(["docker", "build", "-q", "-t", src, str(tmp_path)], check=True,
                   capture_output=True, timeout=120, env={"DOCKER_BUILDKIT": "0",
                                                          "PATH": "/usr/bin:/bin"})
    try:
        run = minify("build", src, "--tag", out)
        assert run.code == 0, run.stderr
        assert client.images.get(out).attrs["Config"]["Volumes"] == {"/srv/data": {}}
    finally:
        for tag in (out, src):
            client.images.remove(tag, force=True)


# Issue 14: user errors are exit 2 before anything starts (no app runs: the progress
# never reaches "starting ... under trace").
@pytest.mark.parametrize("make_args,text", [
    (lambda tmp: ["--report-file", str(tmp / "no-such-dir" / "r.json")],
     "--report-file {tmp}/no-such-dir/r.json: no such directory {tmp}/no-such-dir"),
    (lambda tmp: ["--summary-md", str(tmp)], "--summary-md {tmp}: is a directory"),
    (lambda tmp: ["--include-path", "/srv/www/missing.html"],
     "--include-path /srv/www/missing.html: no such path in the image"),
    (lambda tmp: ["--http-probe-cmd-file", str(_probe_file(tmp, 9000))],
     "probe command GET /x names port 9000, which the container does not publish "
     "(published: 8080): add --expose 9000"),
], ids=["report-file", "summary-md", "include-path", "unpublished-port"])
def test_usage_errors_before_anything_starts(client, unchanged, tmp_path, make_args, text):
    run = minify("build", SANDBOX["busybox"], *make_args(tmp_path))
    assert run.code == ExitStatus.USAGE, run.stderr
    assert _one_line_error(run.stderr) == "minify: error: " + text.format(tmp=tmp_path)
    assert "under trace" not in run.stderr


def _probe_file(tmp, port: int):
    path = tmp / "probes.json"
    path.write_text(json.dumps({"commands": [{"resource": "/x", "port": port}]}))
    return path



def test_an_app_that_refuses_every_request_is_told_what_to_do(client, unchanged):
    """busybox httpd serving a directory with no page: every request gets 404, as an HTTP
    proxy answers 400 to each (squid): exit 6, and what to do about it."""
    run = minify("build", SANDBOX["busybox"], "--entrypoint", "/bin/httpd",
                 "--cmd", "-f -p 8080 -h /bin")
    assert run.code == ExitStatus.PROBE, run.stderr
    assert re.fullmatch(r"minify: error: HTTP probing failed: no request succeeded "
                        r"\(\d+ 4xx\)", _one_line_error(run.stderr))
    assert run.stderr.endswith(
        "every request was answered with a 4xx: name a path the app serves with "
        "--http-probe-cmd (with a header it needs: --http-probe-cmd-file), or probe it "
        "another way with --exec '<client command>' and --no-http-probe\n")

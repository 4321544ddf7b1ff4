"""Confinement parity: the traced app is exactly as confined as under `docker run`.

minify-sandbox/confine prints what confines it (`/report`: capability sets, no_new_privs,
seccomp mode and filter count, cgroups, limits, mounts, and whether unshare -U/-m, chroot,
mkdir and a write to / are permitted) and runs a fork loop (`/forkloop N`). Each build
below keeps its artifacts, where app.log is the traced app's own output; the same image
run by the docker CLI with the same options must print the same lines, modulo the
container's own id, except what the README's Security section says differs:
Seccomp_filters counts the tracer's own filter on top of the engine's. (minify's stand-in
PID 1 is bind-mounted on this engine, and that mount is taken out of the container's
mount table before the app starts, also with --read-only.)
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import SANDBOX
from .helpers import minify

pytestmark = pytest.mark.e2e

IMAGE = SANDBOX["confine"]
TAG = "minify-test/confine.min:{}"
CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
FILTERS_PLAIN, FILTERS_TRACED = "Seccomp_filters:\t1", "Seccomp_filters:\t2"
OPTIONS = ["--pids-limit", "20", "--memory", "64m", "--cpus", "0.5", "--cap-drop", "NET_RAW",
           "--cap-add", "SYS_ADMIN", "--security-opt", "no-new-privileges", "--read-only",
           "--tmpfs", "/scratch:size=1m"]
REPORT_THEN_FORKS = ["--entrypoint", "/bin/sh"], ["-c", "/report && /forkloop 40"]


def _plain(args: list[str], command: list[str] = (), code: int = 0) -> str:
    """`docker run --rm ARGS IMAGE COMMAND` with the docker CLI itself: its own reading of
    the options (a seccomp profile file, --tmpfs) is part of what is compared."""
    done = subprocess.run(["docker", "run", "--rm", *args, IMAGE, *command],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    return done.stdout


def _traced(client, tmp: Path, args: list[str], cmd: list[str] = (),
            code: int = 0) -> tuple[str, dict]:
    """A full `minify build` with these options (its image removed again); the traced
    app's output (its exit status `code`) and the report."""
    extra = ["--cmd", " ".join(f"'{c}'" for c in cmd)] if cmd else []
    tmp.mkdir(exist_ok=True)  # the report file's directory must exist
    tag = TAG.format(tmp.name.lower())
    try:
        run = minify("build", IMAGE, "--no-http-probe", "--tag", tag, "--artifacts-dir", str(tmp),
                     "--report-file", str(tmp / "report.json"), *args, *extra)
    finally:
        if any(tag in i.tags for i in client.images.list("minify-test/confine.min")):
            client.images.remove(tag, force=True)
    assert run.code == 0, run.stderr
    assert json.loads((tmp / "app.trace.json").read_text())["exit_status"] == code
    return (tmp / "app.log").read_text(), json.loads((tmp / "report.json").read_text())


def _normalised(output: str) -> list[str]:
    """The lines with the container's own id replaced: one id per output, as cgroup paths
    name it (/docker/ID with the cgroupfs driver, docker-ID.scope with systemd's)."""
    ids = set(CONTAINER_ID.findall(output))
    assert len(ids) == 1, ids
    return CONTAINER_ID.sub("<container id>", output).splitlines()


def _compare(plain: str, traced: str) -> tuple[list[str], list[str]]:
    """(lines only the plain run printed, lines only the traced run printed), in order;
    the two runs are distinct containers."""
    assert CONTAINER_ID.findall(plain)[0] != CONTAINER_ID.findall(traced)[0]
    a, b = _normalised(plain), _normalised(traced)
    return [x for x in a if x not in b], [x for x in b if x not in a]


@pytest.fixture(scope="module")
def default_run(client, tmp_path_factory):
    traced, report = _traced(client, tmp_path_factory.mktemp("default"), [])
    return _plain([]), traced, report


@pytest.fixture(scope="module")
def options_run(client, tmp_path_factory):
    # The fork loop exits with the number of processes it started: 18 (below).
    entry, cmd = REPORT_THEN_FORKS
    traced, report = _traced(client, tmp_path_factory.mktemp("options"), [*OPTIONS, *entry], cmd,
                             code=18)
    return _plain([*OPTIONS, *entry], cmd, code=18), traced, report


def test_traced_app_is_confined_like_docker_run(default_run):
    plain, traced, report = default_run
    only_plain, only_traced = _compare(plain, traced)
    assert (only_plain, only_traced) == ([FILTERS_PLAIN], [FILTERS_TRACED])
    lines = _normalised(traced)
    # What the issue found missing, now as docker run has it: Docker's default profile
    # (user namespaces denied), and the container's cgroup in every hierarchy.
    assert "unshare -U true: denied: Operation not permitted" in lines
    assert "unshare -m true: denied: Operation not permitted" in lines
    cgroups = [x for x in lines if x.startswith("cgroup: ")]
    assert cgroups and all("<container id>" in x for x in cgroups), cgroups
    assert "CapBnd:\t00000000a80425fb" in lines  # Docker's 14 default capabilities
    assert "NoNewPrivs:\t0" in lines
    assert report["verify"]["status"] == "passed"


def test_run_options_are_honoured_like_docker_run(options_run):
    plain, traced, report = options_run
    only_plain, only_traced = _compare(plain, traced)
    assert only_plain == [FILTERS_PLAIN]
    assert only_traced == [FILTERS_TRACED]
    lines = _normalised(traced)
    # --cap-add SYS_ADMIN: the engine's profile for that set allows unshare; the traced
    # app has exactly the engine's profile, so it is allowed there too.
    assert "CapBnd:\t00000000a82405fb" in lines  # + SYS_ADMIN, - NET_RAW
    assert "unshare -m true: permitted" in lines
    assert "NoNewPrivs:\t1" in lines  # --security-opt no-new-privileges
    assert "touch /confine-probe: denied: Read-only file system" in lines
    assert any(x.startswith("mount: /scratch rw,") for x in lines)
    assert ({"memory/memory.limit_in_bytes: 67108864", "cpu/cpu.cfs_quota_us: 50000"}
            <= set(lines)) or ({"memory.max: 67108864", "cpu.max: 50000 100000"} <= set(lines))
    # Verification ran the minified image under the same options: its fork loop also
    # stopped at 18 (without --pids-limit it would start all 40 and exit 40).
    verdict = report["verify"]
    assert verdict["status"] == "passed"
    assert (verdict["liveness"]["original_exit_code"],
            verdict["liveness"]["minified_exit_code"]) == (18, 18)


def test_pids_limit_stops_a_fork_loop_inside_the_container(options_run):
    plain, traced, _ = options_run
    # --pids-limit 20: the shell and the loop, then 18 sleeps; the next fork fails with
    # EAGAIN inside the container, traced or not (minify's stand-in PID 1 does not
    # take one of the app's 20); both exited with 18 (the fixture checks).
    for output in (plain, traced):
        assert output.splitlines()[-2:] == ["started: 18 of 40",
                                            "fork failed: Resource temporarily unavailable"]
    # The limit is the container's cgroup's, not the host's: here 30 more processes start.
    procs = [subprocess.Popen(["sleep", "0.2"]) for _ in range(30)]
    assert [p.wait(10) for p in procs] == [0] * 30


def test_a_users_seccomp_profile_and_user(client, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]}))
    args = ["--security-opt", f"seccomp={profile}", "--user", "1000:2000"]
    traced, report = _traced(client, tmp_path / "custom", args)
    only_plain, only_traced = _compare(_plain(args), traced)
    assert (only_plain, only_traced) == ([FILTERS_PLAIN], [FILTERS_TRACED])
    lines = _normalised(traced)
    # The profile's errno 95, before the permission check that says EACCES without it;
    # mkdir is also a syscall the tracer stops at: the profile's denial wins.
    assert "mkdir /confine-dir: denied: Operation not supported" in lines
    assert "unshare -U true: permitted" in lines  # Docker's default profile is not applied
    assert "id: uid=1000 gid=2000 groups=2000" in lines
    assert "CapEff:\t0000000000000000" in lines
    assert report["verify"]["status"] == "passed"

"""`minify doctor` for real: on this host (every check passes), with an engine that does
not answer (exit 4, the rest of the engine's checks skipped), and inside the minify
container image with the documented flags (passes) and with one flag left out (the
failing line names that flag). Podman and a rootless engine: tests/e2e/test_podman.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from minifier.errors import ExitStatus

from . import helpers
from .test_ci import ADMIN, FLAGS, NETWORK, PID, PTRACE, SECCOMP, _drop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["engine", "storage", "cgroups", "capabilities", "ptrace_scope", "seccomp",
         "container", "containers", "pid", "network", "cgroup join", "fanotify"]


def _lines(out: str) -> dict[str, tuple[str, str]]:
    """{check name: (status, text)} from doctor's output lines."""
    found = {}
    for line in out.splitlines():
        if line.startswith("minify:"):
            continue
        status, rest = line[:4].strip(), line[6:]
        found[rest[:12].strip()] = (status, rest[14:])
    return found


def test_doctor_on_this_host_passes_every_check(client):
    proc = helpers.minify("doctor", timeout=120)
    assert proc.code == 0, proc.stdout + proc.stderr
    checks = _lines(proc.stdout)
    assert list(checks) == NAMES
    assert {s for s, _ in checks.values()} == {"ok"}, proc.stdout
    version = client.version()
    assert checks["engine"][1] == (f"Docker Engine {version['Version']} (API "
                                   f"{version['ApiVersion']}) at unix:///var/run/docker.sock, "
                                   "rootful")
    assert checks["storage"][1] == (f"{client.info()['Driver']} on extfs: builds index the "
                                    "image's overlay2 layer directories, read in place")
    assert checks["container"][1] == "minify runs on the host, not in a container"
    assert checks["network"][1].startswith("minify shares the network namespace of the "
                                           "engine's containerd-shim")
    assert proc.stdout.splitlines()[-1] == ("minify: doctor: every check passed: a build can "
                                            "work here")
    assert proc.stderr == ""
    # The test image and container of this doctor (its pid: other tests may run a doctor
    # at the same time) are gone again.
    (pid,) = helpers.STARTED
    assert client.api.images(filters={"label": f"minify.pid={pid}"}) == []
    assert client.api.containers(all=True, filters={"label": f"minify.pid={pid}"}) == []


def test_doctor_with_an_engine_that_does_not_answer():
    proc = helpers.minify("doctor", env={"DOCKER_HOST": "tcp://127.0.0.1:9"}, timeout=120)
    assert proc.code == ExitStatus.ENGINE == 4
    checks = _lines(proc.stdout)
    assert list(checks) == NAMES
    assert checks["engine"] == ("FAIL", "cannot reach the Docker engine at tcp://127.0.0.1:9: "
                                        "start it (make engine) or set DOCKER_HOST")
    assert [checks[n][0] for n in ("storage", "containers", "pid", "network", "cgroup join",
                                   "fanotify")] == ["skip"] * 6
    assert checks["capabilities"][0] == "ok"  # host checks still run
    assert proc.stderr == ("minify: error: doctor: 1 check(s) failed (engine): a build "
                           "cannot work here\n")


@pytest.fixture(scope="module")
def image(client):
    """minify:latest, as test_ci builds it (`make image`, cached)."""
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "image"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return "minify:latest"


def _doctor_in_container(flags):
    proc = subprocess.run(["docker", "run", "--rm", "--label", "minify.ci-test", *flags,
                           "minify:latest", "doctor"], capture_output=True, text=True,
                          timeout=180)
    return proc.returncode, _lines(proc.stdout), proc


def test_doctor_in_the_minify_image_with_the_documented_flags(image):
    code, checks, proc = _doctor_in_container(FLAGS)
    assert code == 0, proc.stdout + proc.stderr
    assert {s for s, _ in checks.values()} == {"ok"}, proc.stdout
    assert checks["container"][1].startswith("minify runs in a container (its cgroup is /")


@pytest.mark.parametrize("removed,name,code,ending", [
    (PID, "pid", ExitStatus.CAPABILITY, "is not visible here: give minify's container "
                                        "--pid=host"),
    (NETWORK, "network", ExitStatus.CAPABILITY, "where ports are published on 127.0.0.1: give "
                                                "minify's container --network=host"),
    (PTRACE, "capabilities", ExitStatus.CAPABILITY, "run as root, or in a container with "
                                                    "--cap-add SYS_PTRACE --cap-add SYS_ADMIN"),
    (ADMIN, "capabilities", ExitStatus.CAPABILITY, "run as root, or in a container with "
                                                   "--cap-add SYS_PTRACE --cap-add SYS_ADMIN"),
    (SECCOMP, "seccomp", ExitStatus.CAPABILITY, "give it --security-opt seccomp=unconfined"),
])
def test_doctor_in_the_minify_image_names_the_missing_flag(image, removed, name, code,
                                                           ending):
    rc, checks, proc = _doctor_in_container(_drop(FLAGS, [removed]))
    assert rc == code, proc.stdout + proc.stderr
    failed = [n for n, (s, _) in checks.items() if s == "FAIL"]
    assert failed[0] == name, proc.stdout
    assert checks[name][1].endswith(ending), checks[name]
    assert proc.stderr.startswith(f"minify: error: doctor: {len(failed)} check(s) failed "
                                  f"({', '.join(failed)})")

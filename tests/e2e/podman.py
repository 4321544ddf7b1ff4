"""Podman services under a test's control: `podman system service` on a socket in the
test's temporary directory, with its own storage there, stopped and wiped afterwards.

Rootful: run as root with `--root`/`--runroot` in the directory. On a host whose root
lacks CAP_SYS_RESOURCE (this project's machines), Podman's default container limits
(RLIMIT_NOFILE and RLIMIT_NPROC raised to 1048576) cannot be set and every container
fails to start ("error setting rlimit type 7"); the service then gets a containers.conf
with limits it can give: minify's own hard NOFILE limit and NPROC at most 32768, the
limit Podman sets on itself. README "Podman" says the same to users.

Rootless: the same service run as `nobody`, its XDG directories in the test's directory.
It only has to answer the API (minify refuses it before running anything); its user
namespace's pause process is ended with it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import docker

CAP_SYS_RESOURCE = 24


def podman_path() -> str:
    path = shutil.which("podman") or ""
    assert path, "podman is not installed: run `make test-tools` (make test does)"
    return path


def _has_cap(bit: int) -> bool:
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff & (1 << bit))


def containers_conf(path: Path) -> dict:
    """CONTAINERS_CONF for the service: default limits it can give (see module doc)."""
    if _has_cap(CAP_SYS_RESOURCE):
        return {}
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    path.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", '
                    f'"nproc={nproc}:{nproc}"]\n')
    return {"CONTAINERS_CONF": str(path)}


def _wait_for(sock: Path, proc: subprocess.Popen, log: Path) -> docker.DockerClient:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"podman service ended: {log.read_text()[-2000:]}"
        if sock.exists():
            # The socket file comes before the service accepts on it, and the client asks
            # for the API version as it is made: a refused connect here means "not yet".
            with contextlib.suppress(Exception):
                client = docker.DockerClient(base_url=f"unix://{sock}", timeout=300)
                try:
                    client.ping()
                    return client
                except Exception:
                    client.close()
                    raise
        time.sleep(0.1)
    raise AssertionError(f"podman service did not answer: {log.read_text()[-2000:]}")


def _uid(pid: int) -> int:
    """The real uid of a live process; -1 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
    except (OSError, StopIteration, ValueError):
        return -1


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _mounts_under(top: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(top) or p.startswith(f"{top}/")]


@contextlib.contextmanager
def rootful(top: Path) -> Iterator[tuple[str, docker.DockerClient]]:
    """(DOCKER_HOST, client) of a rootful Podman service whose everything lives in `top`."""
    podman = podman_path()
    root, runroot, sock, log = top / "root", top / "run", top / "podman.sock", top / "log"
    storage = ["--root", str(root), "--runroot", str(runroot)]
    env = {**os.environ, **containers_conf(top / "containers.conf")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([podman, *storage, "system", "service", "--time=0",
                                 f"unix://{sock}"], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, env=env, start_new_session=True)
    client = None
    try:
        client = _wait_for(sock, proc, log)
        yield f"unix://{sock}", client
    finally:
        if client is not None:
            client.close()
        _stop(proc)
        # Containers and images gone, and the storage's own mounts with them.
        subprocess.run([podman, *storage, "system", "reset", "--force"], env=env,
                       capture_output=True, timeout=120)
        for point in reversed(_mounts_under(top)):
            subprocess.run(["umount", point], capture_output=True, timeout=60)
        assert not _mounts_under(top), _mounts_under(top)


@contextlib.contextmanager
def rootless(top: Path) -> Iterator[str]:
    """DOCKER_HOST of a rootless Podman service run as nobody, everything in `top` (an
    existing directory that nobody can reach; removed afterwards)."""
    podman = podman_path()
    home, run = top / "home", top / "run"
    for d in (home, run):
        d.mkdir(mode=0o700)
        os.chown(d, 65534, 65534)
    os.chmod(top, 0o755)
    sock, log = run / "podman.sock", top / "log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_RUNTIME_DIR": str(run), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local" / "share")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([podman, "system", "service", "--time=0", f"unix://{sock}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                user=65534, group=65534, extra_groups=[], cwd=str(home),
                                start_new_session=True)
    try:
        _wait_for(sock, proc, log).close()
        yield f"unix://{sock}"
    finally:
        _stop(proc)
        pause = run / "libpod" / "tmp" / "pause.pid"  # the user namespace's keeper
        if pause.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                pid = int(pause.read_text().strip())
                # Only while it is still the service user's: a pid of a keeper that has
                # ended is soon another process's (pid_max is 32768 here, and a test
                # run starts tens of thousands), e.g. a spare tracer of another test.
                if _uid(pid) == 65534:
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(top, ignore_errors=True)

"""A test container started the way a build starts its traced one, and what it shows
(for `minify doctor`): a one-file image (minify's 226-byte stand-in PID 1, see pause.py)
loaded into the engine, a container created and started from it, its PID 1 looked for in
/proc, the network namespace of its parent (the engine's shim or conmon, in the engine
host's network) read, its cgroups joined by a child process as the tracer joins them,
and its root filesystem marked with fanotify. Everything made is removed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Optional

from minifier.errors import MinifyError
from minifier.observe.pause import pause_binary

__all__ = ["ProbeFacts", "probe_engine", "read_text", "status_field"]

_PAUSE = "/.minify-pause"
_EXEC_BOUND = 10.0  # seconds for runc's init to exec the stand-in
_EXEC_POLL = 0.01


@dataclass(frozen=True)
class ProbeFacts:
    """What the test container showed; `error` when it could not be started."""

    error: str = ""
    pid: int = 0
    pid_visible: bool = False
    parent: str = ""  # the container's PID 1's parent: the engine's shim or conmon
    parent_netns: str = ""
    cgroups: Mapping[str, object] = field(default_factory=dict)  # {"files": n, "error": text}
    fanotify: str = ""  # "" when marking the root filesystem worked, else why not
    root_fstype: str = ""
    reader: str = ""  # how a build would read the test image: "storage" or "export"
    reader_why: str = ""


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def status_field(status: str, name: str) -> str:
    """One field of a /proc/PID/status text ("" when absent)."""
    return next((ln.split(":", 1)[1].strip() for ln in status.splitlines()
                 if ln.startswith(name + ":")), "")


@contextlib.contextmanager
def _test_image(client) -> Iterator[str]:
    """A one-file image (the stand-in PID 1) loaded into the engine, removed afterwards."""
    from minifier.image.rebuild import LayerInfo, load_image

    data = pause_binary()
    with tempfile.TemporaryDirectory(prefix="minify-doctor-") as tmp:
        path = os.path.join(tmp, "layer.tar")
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(_PAUSE.lstrip("/"))
            info.size, info.mode = len(data), 0o555
            tar.addfile(info, io.BytesIO(data))
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        layer = LayerInfo(path=path, size=os.path.getsize(path), sha256=digest, files=1)
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Entrypoint": [_PAUSE], "Labels": {
                      # The pid makes the image (and its id) this run's own: two doctors
                      # in the same second would otherwise load one image, and the first
                      # to finish would remove it under the other.
                      "minify.doctor": "test", "minify.pid": str(os.getpid())}}}
        image_id = load_image(client, config, layer,
                              f"minify-doctor:{secrets.token_hex(6)}").image_id
    try:
        yield image_id
    finally:
        with contextlib.suppress(Exception):
            client.api.remove_image(image_id, force=True)


@contextlib.contextmanager
def _started(client, image_id: str) -> Iterator[int]:
    from minifier.engine import container_labels, owned_container

    def create(name: str) -> str:
        return client.api.create_container(image_id, name=name,
                                           labels=container_labels("doctor"))["Id"]

    with owned_container(client, "doctor", create) as cid:
        client.api.start(cid)
        yield int(client.api.inspect_container(cid)["State"]["Pid"])


def _is_pause(pid: int) -> bool:
    """The process is our stand-in, not one that merely has the same number here.

    The engine says the container runs once runc has started its init in the container's
    PID namespace; the init becomes the stand-in at its exec a moment later (longer on a
    busy host), which is waited for, bounded."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/pid").st_ino if pid > 0 else None
        if theirs is None or theirs == os.stat("/proc/self/ns/pid").st_ino:
            return False  # not visible here, or a process of our own namespace
    except OSError:
        return False
    deadline = time.monotonic() + _EXEC_BOUND
    while True:
        cmdline = read_text(f"/proc/{pid}/cmdline")
        if cmdline is not None and cmdline.split("\0")[0] == _PAUSE:
            return True
        if cmdline is None or time.monotonic() > deadline:
            return False
        time.sleep(_EXEC_POLL)


def _parent(pid: int) -> tuple[str, str]:
    ppid = status_field(read_text(f"/proc/{pid}/status") or "", "PPid")
    if not ppid.isdigit() or ppid == "0":
        return "", ""
    comm = (read_text(f"/proc/{ppid}/comm") or "").strip()
    try:
        return comm, os.readlink(f"/proc/{ppid}/ns/net")
    except OSError:
        return comm, ""


def _root_fstype(pid: int) -> str:
    for line in (read_text(f"/proc/{pid}/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        if len(left.split()) > 4 and left.split()[4] == "/" and right:
            return right.split()[0]
    return ""


def _join_cgroups(pid: int) -> dict:
    """In a child process, as the tracer does: find and join the container's cgroups."""
    argv = [sys.executable, "-m", "minifier.observe.hostprobe", "join-cgroups", str(pid)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {"error": f"the cgroup check failed: {proc.stderr.strip()[-300:]}"}


def _fanotify(pid: int) -> str:
    from minifier.observe.watcher import Watcher

    watcher = Watcher(f"/proc/{pid}/root")
    try:
        watcher.open()
    except MinifyError as exc:
        return exc.message
    watcher.stop()
    return ""


def probe_engine(client) -> ProbeFacts:
    """Start the test container and read what a build relies on."""
    from docker.errors import DockerException

    from minifier.image.source import choose_source

    try:
        with _test_image(client) as image_id:
            chosen = choose_source(client, image_id)
            read = {"reader": chosen.source.name, "reader_why": chosen.why}
            with _started(client, image_id) as pid:
                if not _is_pause(pid):
                    return ProbeFacts(pid=pid, **read)
                parent, netns = _parent(pid)
                return ProbeFacts(pid=pid, pid_visible=True, parent=parent,
                                  parent_netns=netns, cgroups=_join_cgroups(pid),
                                  fanotify=_fanotify(pid), root_fstype=_root_fstype(pid),
                                  **read)
    except MinifyError as exc:
        return ProbeFacts(error=exc.message)
    except DockerException as exc:
        why = getattr(exc, "explanation", None) or exc
        return ProbeFacts(error=f"the engine could not start a test container: {why}")


def _join_main(pid: int) -> None:
    """`python -m minifier.observe.hostprobe join-cgroups PID`: move this process into
    the cgroups of PID as the tracer moves the app; print {"files": n} or {"error": why}."""
    from minifier.sensor.cgroups import CgroupError, container_procs

    try:
        files = container_procs(pid)
        for path in files:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
    except CgroupError as exc:
        print(json.dumps({"error": str(exc)}))
        return
    except OSError as exc:
        print(json.dumps({"error": f"joining the container's cgroup failed: "
                                   f"{exc.filename}: {exc.strerror}"}))
        return
    print(json.dumps({"files": len(files)}))


if __name__ == "__main__" and sys.argv[1:2] == ["join-cgroups"]:
    _join_main(int(sys.argv[2]))

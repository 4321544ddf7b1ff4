"""Helpers shared by e2e tests: run the real `minify` command and look for leftovers."""

from __future__ import annotations

import glob
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import requests

from minifier.engine import published_ports, running_check
from probes import Target, wait_ready

MINIFY = [sys.executable, "-m", "minifier.cli"]
# Marks the processes this test session starts (tracers inherit it), so that another
# minify running on the same machine is not mistaken for a leftover of ours.
MARK = f"MINIFY_TEST_MARK={uuid.uuid4().hex}"
TMP = tempfile.mkdtemp(prefix="minify-tests-")  # TMPDIR of the runs: our temp dirs only
# The index cache (~/.cache/minify by default) of this session's runs: its own directory
# (not under TMP, whose contents tests compare), removed at the end like TMP.
CACHE = tempfile.mkdtemp(prefix="minify-tests-cache-")
ENV = {**os.environ, MARK.split("=")[0]: MARK.split("=")[1], "TMPDIR": TMP,
       "XDG_CACHE_HOME": CACHE}


def cache_leftovers() -> list[str]:
    """Half-written index cache entries (an interrupted index pass must leave none)."""
    return glob.glob(os.path.join(CACHE, "minify", "*.tmp"))
STARTED: list[int] = []  # pids of minify processes started by the current test


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float


def minify(*args: str, timeout: float = 600, env: Optional[dict] = None) -> Run:
    """Run minify as a subprocess; `env` adds to its environment (e.g. DOCKER_HOST)."""
    start = time.monotonic()
    proc = subprocess.Popen([*MINIFY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**ENV, **(env or {})})
    STARTED.append(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(proc.returncode, out, err, time.monotonic() - start)


def interrupt_at(stage_text: str, sig: int, *args: str, timeout: float = 300) -> Run:
    """Start `minify`, send `sig` as soon as a progress line contains `stage_text`."""
    start = time.monotonic()
    proc = subprocess.Popen([*MINIFY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    STARTED.append(proc.pid)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if stage_text in line:
                proc.send_signal(sig)
                break
        rest_out, rest_err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(proc.returncode, rest_out, "".join(lines) + rest_err, time.monotonic() - start)


def tracer_processes() -> list[int]:
    """Tracer processes started by this test session that are still alive."""
    out = subprocess.run(["pgrep", "-f", "minifier.sensor.tracer"], capture_output=True, text=True)
    mine = []
    for pid in (int(p) for p in out.stdout.split()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if MARK.encode() in f.read().split(b"\0"):
                    mine.append(pid)
        except OSError:
            pass  # exited meanwhile
    return mine


def temp_dirs() -> set[str]:
    """What the runs of this session left in their TMPDIR."""
    return set(glob.glob(os.path.join(TMP, "*")))


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def answers(client, image_ref: str, port: int, paths, seccomp_file: Optional[str] = None,
            **run):
    """Run `image_ref` with a plain `docker run` (optionally under a seccomp profile file;
    `run`: more of docker-py's run arguments, e.g. volumes, network) and GET each path:
    {path: (status, sha256 of the body)}."""
    extra = ({"security_opt": [f"seccomp={Path(seccomp_file).read_text()}"]}
             if seccomp_file else {})
    extra.update(run)
    container = client.containers.run(image_ref, detach=True, labels={"minify.run": "test"},
                                      ports={f"{port}/tcp": ("127.0.0.1", None)}, **extra)
    try:
        container.reload()
        host_port = published_ports(container.attrs)[port]
        wait_ready(Target(ports={port: host_port}), (port,), 60, running_check(container))
        session = requests.Session()
        session.trust_env = False  # only 127.0.0.1, never through a proxy
        out = {}
        for path in paths:
            r = session.get(f"http://127.0.0.1:{host_port}{path}", timeout=10,
                            allow_redirects=False)
            out[path] = (r.status_code, hashlib.sha256(r.content).hexdigest())
        return out
    finally:
        container.remove(force=True, v=True)


def exported(client, tag: str) -> tarfile.TarFile:
    """The filesystem of `tag` as `docker export` gives it (a created, never-run container)."""
    container = client.containers.create(tag, command=["/none"], labels={"minify.run": "test"})
    try:
        data = b"".join(container.export())
    finally:
        container.remove(force=True, v=True)
    return tarfile.open(fileobj=io.BytesIO(data))

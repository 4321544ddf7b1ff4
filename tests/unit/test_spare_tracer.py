"""A tracer started ahead of need (SpareTracer): once given its files it traces like a
tracer started with them, with the same stdio; one not used is ended; one that died while
waiting is replaced by a fresh tracer."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from minifier.observe.tracerprocess import SpareTracer, TracerProcess
from minifier.records import LaunchSpec

ENV = ("PATH=/usr/local/bin:/usr/bin:/bin",)


def _spares() -> list[int]:
    """Pids of this process's children started as spare tracers."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"--spare" in argv:
            found.append(int(name))
    return found


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def _blocked_program(tmp_path: Path) -> tuple[LaunchSpec, Path]:
    """A program that reads /etc/hostname, then waits on a FIFO until the test writes."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    script = f"cat /etc/hostname > /dev/null; read line < {fifo}; echo traced $line"
    spec = LaunchSpec(argv=("/bin/sh", "-c", script), env=ENV,
                      output_path=str(tmp_path / "out.log"))
    return spec, fifo


def test_a_spare_traces_like_a_tracer_started_with_its_files(tmp_path):
    spare = SpareTracer(str(tmp_path), "app")
    [pid] = _spares()
    spec, fifo = _blocked_program(tmp_path)
    tracer = TracerProcess(spec, str(tmp_path), "app", 10, spare=spare)
    tracer.start()
    try:
        assert tracer.tracer_pid == pid  # the spare is the tracer now
        # Its stdio as a tracer started with its files has it: no pipe left as stdin.
        assert os.readlink(f"/proc/{tracer.tracer_pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{tracer.tracer_pid}/fd/2") == str(tmp_path / "tracer-app.log")
        fifo.write_text("now\n")
        assert tracer.wait(30)
    finally:
        tracer.stop()
    result = tracer.result()
    assert result.exit_status == 0
    assert (tmp_path / "out.log").read_text() == "traced now\n"
    assert "/etc/hostname" in {e.path for e in result.events}


def test_a_spare_not_used_is_ended(tmp_path):
    spare = SpareTracer(str(tmp_path), "app-2")
    [pid] = _spares()
    spare.discard()
    assert _spares() == []
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not left a zombie
    spare.discard()  # twice is nothing


def test_a_spare_that_died_waiting_is_replaced_by_a_fresh_tracer(tmp_path):
    spare = SpareTracer(str(tmp_path), "app")
    [pid] = _spares()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _state(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)  # the kill is sent; the test waits until it has landed
    spec, fifo = _blocked_program(tmp_path)
    tracer = TracerProcess(spec, str(tmp_path), "app", 10, spare=spare)
    tracer.start()
    try:
        assert tracer.tracer_pid != pid
        fifo.write_text("anyway\n")
        assert tracer.wait(30)
    finally:
        tracer.stop()
    assert tracer.result().exit_status == 0
    assert (tmp_path / "out.log").read_text() == "traced anyway\n"

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


def _waiting(spare: SpareTracer, tmp_path: Path, label: str) -> int:
    """The spare's pid, once it is seen alive as our child. (Not by its command line: a
    process may be read in the middle of its exec, before the kernel has set it up.)"""
    pid = spare.pid
    assert pid is not None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        state, ppid = fields[0], int(fields[1])
    except OSError:
        state, ppid = "gone", 0
    log = tmp_path / f"tracer-spare-{label}.log"
    assert (ppid, state not in ("Z", "X", "gone")) == (os.getpid(), True), (
        f"spare {pid} is not waiting: {log.read_text() if log.exists() else 'no log'}")
    return pid


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
    pid = _waiting(spare, tmp_path, "app")
    spec, fifo = _blocked_program(tmp_path)
    tracer = TracerProcess(spec, str(tmp_path), "app", 10, spare=spare)
    tracer.start()
    try:
        assert tracer.tracer_pid == pid  # the spare is the tracer now
        assert spare.pid is None
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
    pid = _waiting(spare, tmp_path, "app-2")
    spare.discard()
    assert spare.pid is None
    assert not os.path.exists(f"/proc/{pid}")  # ended and reaped, not left a zombie
    spare.discard()  # twice is nothing


def test_a_spare_that_died_waiting_is_replaced_by_a_fresh_tracer(tmp_path):
    spare = SpareTracer(str(tmp_path), "app")
    pid = _waiting(spare, tmp_path, "app")
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

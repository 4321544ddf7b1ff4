"""The generated PID-1 program runs, reaps orphans and exits on SIGTERM."""

import os
import signal
import subprocess
import time

from elftools.elf.elffile import ELFFile

from minifier.observe.pause import pause_binary


def write_pause(directory: str) -> str:
    """The program as a file in `directory` (mode 0555), to run it on the host."""
    path = os.path.join(directory, "minify-pause")
    with open(path, "wb") as f:
        f.write(pause_binary())
    os.chmod(path, 0o555)
    return path


def test_is_a_static_x86_64_executable(tmp_path):
    path = write_pause(str(tmp_path))
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_X86_64"
        assert elf["e_type"] == "ET_EXEC"
        assert [s["p_type"] for s in elf.iter_segments()] == ["PT_LOAD"]
    assert len(pause_binary()) < 300


def _wait_blocked(pid: int) -> None:
    """Until the program sleeps in rt_sigtimedwait (syscall 128): its signals are set up."""
    for _ in range(100000):
        with open(f"/proc/{pid}/syscall") as f:
            if f.read().split(" ", 1)[0] == "128":
                return
        os.sched_yield()
    raise AssertionError("the pause program never reached its wait")


def test_waits_until_sigterm_then_exits_zero(tmp_path):
    proc = subprocess.Popen([write_pause(str(tmp_path))])
    try:
        _wait_blocked(proc.pid)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()


def test_reaps_a_child_that_exits(tmp_path):
    # Run the pause program as a subreaper's stand-in: it becomes the parent of a
    # short-lived child via exec in a forked process, and must reap it (no zombie).
    pause = write_pause(str(tmp_path))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        child = os.fork()
        if child == 0:
            os.close(r)
            os.read(os.open("/dev/null", os.O_RDONLY), 1)
            os.write(w, b"x")
            os._exit(0)
        os.close(w)
        os.execv(pause, [pause])
    os.close(w)
    try:
        assert os.read(r, 1) == b"x"
        deadline_ok = False
        deadline = time.monotonic() + 10  # bounded in time: the host may be busy
        while time.monotonic() < deadline:
            children = open(f"/proc/{pid}/task/{pid}/children").read().split()
            if not children:
                deadline_ok = True
                break
            os.sched_yield()
            subprocess.run(["true"])
        assert deadline_ok, "the exited child was not reaped"
        os.kill(pid, signal.SIGTERM)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

"""How a traced program is started, compared with runc: its stdout and stderr are a pipe
its user may reopen, it leads its own session, a stop signal from it is not minify's
stop, and a program that cannot start says why in Docker's words.

Real launches on this host (fork, setuid, ptrace; the tracer process where signals
matter); needs root and gcc, no Docker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from minifier.observe.tracerprocess import TracerProcess
from minifier.records import LaunchSpec, TraceResult
from minifier.sensor.tracer import trace

ENV = ("PATH=/usr/local/bin:/usr/bin:/bin",)
NOBODY = 65534


def run(argv: tuple[str, ...], tmp_path: Path, **kw) -> tuple[TraceResult, str]:
    out = tmp_path / "out.log"
    result = trace(LaunchSpec(argv=argv, env=kw.pop("env", ENV), output_path=str(out), **kw))
    return result, out.read_text()


def run_process(argv: tuple[str, ...], tmp_path: Path) -> tuple[TraceResult, str, str]:
    """In the tracer process, as minify runs it: (result, output, the tracer's log)."""
    spec = LaunchSpec(argv=argv, env=ENV, output_path=str(tmp_path / "out.log"))
    tracer = TracerProcess(spec, str(tmp_path), "app", 10)
    tracer.start()
    assert tracer.wait(30)
    return (tracer.result(), (tmp_path / "out.log").read_text(),
            (tmp_path / "tracer-app.log").read_text())


# -- stdout and stderr ---------------------------------------------------------------

REOPEN = ("echo one; echo two > /dev/stdout; echo three > /dev/stderr; "
          "echo four > /proc/self/fd/1; echo five >&2; stat -L -c %u:%F /proc/self/fd/2")


def test_a_non_root_program_reopens_its_stdout_and_stderr(tmp_path):
    """nginx-unprivileged's logs are symlinks to /dev/stdout and /dev/stderr: its user
    must be able to open them, as under runc, which makes it their owner."""
    result, out = run(("/bin/sh", "-c", REOPEN), tmp_path, uid=NOBODY, gid=NOBODY)
    assert result.exit_status == 0, out
    assert out == f"one\ntwo\nthree\nfour\nfive\n{NOBODY}:fifo\n"


def test_writing_to_dev_stdout_truncates_nothing(tmp_path):
    """`> /dev/stdout` opens with O_TRUNC: on a pipe that is nothing, and every line
    before it stays in the log, in order."""
    script = "echo first; echo second > /dev/stdout; echo third >&2; echo fourth"
    result, out = run(("/bin/sh", "-c", script), tmp_path)
    assert result.exit_status == 0
    assert out == "first\nsecond\nthird\nfourth\n"


def test_the_log_is_appended_to_and_has_all_of_a_large_output(tmp_path):
    (tmp_path / "out.log").write_text("before\n")
    result, out = run(("/bin/sh", "-c", "seq 1 200000; echo end >&2"), tmp_path)
    assert result.exit_status == 0
    lines = out.splitlines()
    assert lines[0] == "before" and lines[-1] == "end"
    assert lines[1:-1] == [str(i) for i in range(1, 200001)]


# -- the session, and stop signals ----------------------------------------------------


def test_the_program_leads_its_own_session_and_process_group(tmp_path):
    script = "read -r pid comm state ppid pgrp sid rest < /proc/self/stat; echo $pid $pgrp $sid"
    result, out = run(("/bin/bash", "-c", script), tmp_path)
    pid, pgrp, sid = out.split()
    assert result.exit_status == 0
    assert pid == pgrp == sid


def test_kill_0_from_the_app_reaches_its_own_processes_only(tmp_path):
    """The classic `kill 0` of an entrypoint stops the app's helpers; it must not stop
    the trace (it used to reach the tracer, whose process group the app shared)."""
    script = ("trap 'echo caught TERM' TERM; sleep 30 & kill -TERM 0; wait; "
              "echo summary: $(printf 'a\\nb\\nc\\n' | sort -r | tr '\\n' ' ')")
    result, out, _ = run_process(("/bin/bash", "-c", script), tmp_path)
    assert result.exit_status == 0
    assert out == "caught TERM\nsummary: c b a\n"
    assert result.warnings == ()
    assert any(e.path in ("/usr/bin/sort", "/bin/sort") and e.op == "exec"
               for e in result.events)


def test_a_stop_signal_from_a_traced_process_is_not_minify_s_stop(tmp_path):
    """On this host the app can name the tracer's pid (its parent): still no stop."""
    script = "kill -TERM $PPID; sleep 0.2; echo still traced; cat /etc/hostname"
    result, out, log = run_process(("/bin/sh", "-c", script), tmp_path)
    assert result.exit_status == 0
    assert out == "still traced\n" + Path("/etc/hostname").read_text()
    assert result.warnings == ()
    assert any(e.path == "/etc/hostname" for e in result.events)
    assert "tracer: ignored SIGTERM from pid" in log


# -- a program that cannot start -------------------------------------------------------


def test_a_program_not_in_path_is_said_so_with_the_path_searched(tmp_path):
    result, out = run(("no-such-program-xyz", "--version"), tmp_path)
    text = "executable file not found in $PATH (/usr/local/bin:/usr/bin:/bin)"
    assert (result.exit_status, result.launch_error) == (127, text)
    assert out == f"minify: cannot start no-such-program-xyz: {text}\n"


def test_a_missing_path_and_a_refused_one(tmp_path):
    result, _ = run(("/no/such/program",), tmp_path)
    assert (result.exit_status, result.launch_error) == \
        (127, "no such file or directory")
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result, _ = run((str(script),), tmp_path)
    assert (result.exit_status, result.launch_error) == (126, "permission denied")
    # Found in PATH but not executable: execvpe's EACCES, said with where it was found.
    result, _ = run(("script.sh",), tmp_path, env=(f"PATH=/usr/bin:{tmp_path}",))
    assert (result.exit_status, result.launch_error) == \
        (126, f"{script}: permission denied (found in $PATH)")


def test_an_existing_file_whose_interpreter_is_missing(tmp_path):
    """execve says ENOENT for a file that is there: the message says what is missing."""
    script = tmp_path / "script"
    script.write_text("#!/no/such/interpreter -x\necho hi\n")
    script.chmod(0o755)
    result, _ = run((str(script),), tmp_path)
    assert result.launch_error == ("no such file or directory (the file exists: its "
                                   "interpreter /no/such/interpreter is missing)")
    src = tmp_path / "hello.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "hello"
    subprocess.run(["gcc", "-o", str(exe), str(src), "-Wl,--dynamic-linker=/no/such/ld.so"],
                   check=True)
    result, _ = run((str(exe),), tmp_path)
    assert result.launch_error == ("no such file or directory (the file exists: its "
                                   "interpreter /no/such/ld.so is missing)")
    # A script whose interpreter is there but cannot run itself: said as such.
    script.write_text(f"#!{exe}\n")
    result, _ = run((str(script),), tmp_path)
    assert result.launch_error == (f"no such file or directory (the file exists, and so does "
                                   f"its interpreter {exe}: what that one needs to run is "
                                   "missing)")


def test_a_working_directory_that_is_not_there(tmp_path):
    result, out = run(("/bin/true",), tmp_path, workdir="/no/such/dir")
    assert (result.exit_status, result.launch_error) == \
        (127, "chdir /no/such/dir: no such file or directory")
    assert out == "minify: cannot start /bin/true: chdir /no/such/dir: no such file or directory\n"


def test_a_program_that_starts_has_no_launch_error(tmp_path):
    result, out = run(("/bin/sh", "-c", "exit 127"), tmp_path)
    assert (result.exit_status, result.launch_error, out) == (127, "", "")


# -- signalling the launched program -------------------------------------------------


def test_the_stop_signal_reaches_the_program_and_never_a_process_that_took_its_pid(tmp_path):
    """minify signals the app through a pidfd taken at its launch: once the app has
    ended (what it left running still traced), a process given its pid (here: the pid
    file pointed at another one) is not hit."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    spec = LaunchSpec(argv=("/bin/sh", "-c", f"sleep 60 & read line < {fifo}"), env=ENV,
                      output_path=str(tmp_path / "out.log"))
    tracer = TracerProcess(spec, str(tmp_path), "app", 10)
    tracer.start()
    other = subprocess.Popen(["sleep", "60"])
    try:
        assert tracer.signal_program(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while tracer.signal_program(0):  # until its tracer has reaped it
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert tracer.alive()  # the background sleep is still traced
        (tmp_path / "app.trace.json.pid").write_text(f"{other.pid}\n")  # its pid, reused
        assert not tracer.signal_program(signal.SIGTERM)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
        tracer.stop()
    assert tracer.result().exit_status == -signal.SIGTERM


# -- the launch pipe and the waits on the tracer -------------------------------------


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_the_traced_program_inherits_nothing_of_the_tracer_and_minify_keeps_nothing(tmp_path):
    """The tracer tells of the launch on a pipe and is waited on through a pidfd: neither
    reaches the program (it sees stdin, stdout, stderr and the fd `ls` opens), and minify
    holds none of them once the trace has ended."""
    before = _fds()
    result, out, _ = run_process(("/bin/sh", "-c", "ls /proc/self/fd"), tmp_path)
    assert result.exit_status == 0
    assert sorted(out.split()) == ["0", "1", "2", "3"]
    assert _fds() == before


def test_start_returns_with_the_program_running_and_its_pid_known(tmp_path):
    """start() wakes on the launch pipe: the pid it reads is the program's, already
    exec'd (its command line is the program's, not the tracer's)."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    spec = LaunchSpec(argv=("/bin/sh", "-c", f"read line < {fifo}"), env=ENV,
                      output_path=str(tmp_path / "out.log"))
    before = _fds()
    tracer = TracerProcess(spec, str(tmp_path), "app", 10)
    tracer.start()
    try:
        with open(f"/proc/{tracer.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:2] == [b"/bin/sh", b"-c"]
        assert not tracer.wait(0.05)  # still running: the wait ends at its bound
        fifo.write_text("go\n")
        assert tracer.wait(30)
    finally:
        tracer.stop()
    assert tracer.result().exit_status == 0
    assert _fds() == before


def test_a_launch_that_fails_ends_the_wait_at_once(tmp_path):
    """A program that cannot be launched: the tracer exits, which wakes start() (the
    launch pipe ends with it) long before its bound."""
    spec = LaunchSpec(argv=("/nonexistent/program",), env=ENV,
                      output_path=str(tmp_path / "out.log"))
    tracer = TracerProcess(spec, str(tmp_path), "app", 600)
    tracer.start()  # a bound of 600 s: this test would time out, not pass, if it waited
    try:
        assert tracer.launch_error() == "no such file or directory"
    finally:
        tracer.stop()

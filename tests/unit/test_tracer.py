"""The ptrace tracer on real programs: shell pipelines, threads, exec, dirfds, namespaces.

Needs root (ptrace, setns, setuid) and gcc; no Docker.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minifier.records import FileEvent, LaunchSpec, TraceResult
from minifier.sensor.tracejson import result_from_json, result_to_json, spec_from_json, spec_to_json
from minifier.sensor.tracer import trace
from tests.unit.fixtures import unshared

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).parent / "programs"
ENV = ("PATH=/usr/local/bin:/usr/bin:/bin",)
LOADERS = {"/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2",
           "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
           "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}
LIBCS = {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"}
SHELLS = {"/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash", "/bin/bash", "/usr/bin/bash"}


@pytest.fixture(scope="session")
def bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("bin")
    built = {}
    for src in sorted(PROGRAMS.glob("*.c")):
        exe = out / src.stem
        subprocess.run(["gcc", "-O1", "-pthread", "-o", str(exe), str(src)], check=True)
        built[src.stem] = str(exe)
    return built


def run(argv: tuple[str, ...], tmp_path: Path, **kw) -> tuple[TraceResult, str]:
    out = tmp_path / "out.txt"
    result = trace(LaunchSpec(argv=argv, env=ENV, output_path=str(out), **kw))
    return result, out.read_text() if out.exists() else ""


def find(result: TraceResult, path: str | set[str], op: str | None = None,
         **fields) -> list[FileEvent]:
    paths = {path} if isinstance(path, str) else path
    return [e for e in result.events
            if e.path in paths and (op is None or e.op == op)
            and all(getattr(e, k) == v for k, v in fields.items())]


def test_shell_with_forked_children(tmp_path):
    result, out = run(("/bin/sh", "-c", "cat /etc/hostname; (ls /usr/share > /dev/null) & wait"),
                      tmp_path)
    assert result.exit_status == 0
    assert out == Path("/etc/hostname").read_text()
    root_pid = find(result, "/bin/sh", "execve")[0].pid
    shell_execs = [e for e in result.events if e.op == "exec" and e.path in SHELLS]
    assert shell_execs and shell_execs[0].ok
    assert find(result, LOADERS, "map") or find(result, LOADERS, "openat")
    assert find(result, LIBCS, "openat", ok=True)
    assert find(result, "/etc/hostname", "openat", ok=True, exe="/usr/bin/cat")
    listing = find(result, "/usr/share", "getdents64", ok=True, exe="/usr/bin/ls")
    assert listing and listing[0].pid != root_pid
    assert find(result, "/usr/bin/ls", "exec")
    assert not find(result, "/etc/never-touched-by-anyone")
    assert result.processes >= 3
    assert result.syscall_counts["openat"] > 0


def test_events_are_deduplicated(tmp_path):
    result, _ = run(("/bin/sh", "-c", "cat /etc/hostname /etc/hostname /etc/hostname"),
                    tmp_path)
    assert len(find(result, "/etc/hostname", "openat")) == 1
    keys = [(e.path, e.op, e.ok, e.exe) for e in result.events]
    assert len(keys) == len(set(keys))


def test_second_thread_open(bins, tmp_path):
    target = tmp_path / "opened-by-thread"
    target.write_text("x")
    result, _ = run((bins["threads"], "open", str(target)), tmp_path)
    assert result.exit_status == 0
    events = find(result, str(target), "openat", ok=True, exe=bins["threads"])
    assert events
    assert result.processes == 2  # the main thread and the worker


def test_exec_from_a_non_leader_thread(bins, tmp_path):
    result, _ = run((bins["threads"], "exec", "/usr/bin/true"), tmp_path)
    assert result.exit_status == 0
    assert find(result, "/usr/bin/true", "execve", ok=True, exe=bins["threads"])
    assert find(result, "/usr/bin/true", "exec", exe="/usr/bin/true")
    assert find(result, LIBCS, "openat", exe="/usr/bin/true")


def test_exec_records_both_programs(bins, tmp_path):
    result, out = run((bins["execer"], "/usr/bin/echo", "hi"), tmp_path)
    assert result.exit_status == 0
    assert out == "hi\n"
    assert find(result, bins["execer"], "execve", ok=True)
    assert find(result, bins["execer"], "exec", exe=bins["execer"])
    assert find(result, "/usr/bin/echo", "execve", ok=True, exe=bins["execer"])
    assert find(result, "/usr/bin/echo", "exec", exe="/usr/bin/echo")
    assert find(result, LOADERS, "map", exe="/usr/bin/echo")


def test_relative_paths_through_dirfd_and_cwd(bins, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("x")
    result, out = run((bins["dirfd"], str(work), "data.txt"), tmp_path)
    assert result.exit_status == 0, out
    assert find(result, "/etc", "openat", ok=True)
    assert find(result, "/etc/passwd", "openat", ok=True)
    assert find(result, str(work / "data.txt"), "openat", ok=True)
    assert find(result, str(work), "chdir", ok=True)
    assert not find(result, "passwd") and not find(result, "data.txt")


def test_failed_open_has_errno(bins, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("x")
    result, _ = run((bins["dirfd"], str(work), "data.txt"), tmp_path)
    missing = find(result, str(work / "missing-file"), "openat")
    assert len(missing) == 1
    assert missing[0].ok is False and missing[0].errno == errno.ENOENT


def test_stat_readlink_access_and_mutations(bins, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "f").write_text("x")
    (work / "l").symlink_to("f")
    result, out = run((bins["fileops"], str(work)), tmp_path)
    assert result.exit_status == 7, out
    f, ok = str(work / "f"), {"ok": True}
    assert find(result, f, "newfstatat", **ok)  # stat()
    assert find(result, str(work / "l"), "newfstatat", **ok)  # lstat()
    assert find(result, str(work / "l"), "readlink", **ok)
    assert find(result, f, "access", **ok)
    assert find(result, f, "statx", **ok)
    assert find(result, str(work / "newdir"), "mkdir", **ok)
    assert find(result, f, "rename", **ok) and find(result, str(work / "g"), "rename", **ok)
    assert find(result, str(work / "g"), "unlink", **ok)
    assert (work / "newdir").is_dir() and not (work / "f").exists()


def test_seccomp_mode_traps_only_path_syscalls(bins, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to("f")
    result, _ = run((bins["fileops"], str(tmp_path)), tmp_path)
    assert result.syscall_counts["openat"] > 0
    assert "getpid" not in result.syscall_counts
    assert "write" not in result.syscall_counts
    assert "mmap" not in result.syscall_counts


def test_all_syscalls_mode_counts_everything(bins, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to("f")
    result, out = run((bins["fileops"], str(tmp_path)), tmp_path, all_syscalls=True)
    assert result.exit_status == 7
    assert out == "done\n"
    assert result.syscall_counts["getpid"] == 3
    assert result.syscall_counts["write"] == 1
    assert result.syscall_counts["exit_group"] == 1
    assert result.syscall_counts["openat"] > 0
    assert find(result, str(tmp_path / "f"), "statx", ok=True)


def test_exit_status_code_and_signal(tmp_path):
    assert run(("/bin/sh", "-c", "exit 3"), tmp_path)[0].exit_status == 3
    assert run(("/bin/sh", "-c", "kill -9 $$"), tmp_path)[0].exit_status == -signal.SIGKILL


def test_the_main_process_ending_ends_what_it_left_behind(tmp_path):
    """Like a container whose PID 1 exits: the daemon the app started is killed, the
    trace ends at once, and nothing says the run was interrupted."""
    child = tmp_path / "child.pid"
    start = time.monotonic()
    script = (f"sleep 60 & until [ $(cat /proc/$!/comm) = sleep ]; do :; done; "
              f"echo $! > {child}; exit 7")
    result, _ = run(("/bin/sh", "-c", script), tmp_path, container_main=True)
    assert time.monotonic() - start < 30
    assert result.exit_status == 7
    assert result.warnings == ()
    assert _gone(int(child.read_text()))
    assert find(result, {"/bin/sleep", "/usr/bin/sleep"}, "exec")


def test_an_exec_probe_s_children_are_traced_to_their_end(tmp_path):
    """Not the container's main process (an exec probe): what it started is still
    followed after it exits, so its accesses are recorded."""
    result, _ = run(("/bin/sh", "-c", "(sleep 0.3; cat /etc/hostname > /dev/null) & exit 0"),
                    tmp_path)
    assert result.exit_status == 0
    assert find(result, "/etc/hostname", "openat", ok=True)


def test_signals_are_delivered_to_the_app(tmp_path):
    script = "trap 'echo got-usr1' USR1; kill -USR1 $$; kill -STOP $$; echo after-stop"
    result, out = run(("/bin/sh", "-c", script), tmp_path)
    assert result.exit_status == 0
    assert out == "got-usr1\nafter-stop\n"


def test_path_lookup_like_docker(tmp_path):
    result, out = run(("echo", "found"), tmp_path)
    assert out == "found\n"
    assert find(result, "/usr/local/bin/echo", "execve", ok=False, errno=errno.ENOENT)
    assert find(result, "/usr/bin/echo", "execve", ok=True)
    assert find(result, "/usr/bin/echo", "exec")


def test_launch_failure(tmp_path):
    result, out = run(("no-such-program-xyz",), tmp_path)
    assert result.exit_status == 127
    assert "minify: cannot start no-such-program-xyz" in out
    assert find(result, "/usr/bin/no-such-program-xyz", "execve", ok=False)


def test_workdir_user_groups_and_caps(tmp_path):
    script = "pwd; id -u; id -g; id -G; grep CapBnd /proc/self/status"
    result, out = run(("/bin/sh", "-c", script), tmp_path, workdir="/usr/share",
                      uid=65534, gid=65533, groups=(65532,), keep_caps=("CHOWN", "CAP_KILL"))
    assert result.exit_status == 0, out
    lines = out.splitlines()
    assert lines[:4] == ["/usr/share", "65534", "65533", "65533 65532"]
    assert lines[4].split() == ["CapBnd:", f"{(1 << 0) | (1 << 5):016x}"]
    assert find(result, "/usr/share", "chdir", ok=True)


def test_stdin_comes_from_stdin_path(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("from stdin\n")
    result, out = run(("/bin/cat",), tmp_path, stdin_path=str(src))
    assert out == "from stdin\n"


def test_json_round_trip():
    spec = LaunchSpec(argv=("a", "b"), env=("X=1",), workdir="/w", uid=1, gid=2,
                      groups=(3, 4), target_pid=99, output_path="/o", keep_caps=("CHOWN",),
                      all_syscalls=True)
    data = spec_to_json(spec)
    assert data["argv"] == ["a", "b"] and data["keep_caps"] == ["CHOWN"]
    assert spec_from_json(json.loads(json.dumps(data))) == spec
    assert spec_from_json(spec_to_json(LaunchSpec(argv=("x",)))) == LaunchSpec(argv=("x",))
    result = TraceResult(
        events=(FileEvent("/etc/passwd", "openat", True, "/bin/cat", 5),
                FileEvent("/nope", "stat", False, "/bin/cat", 5, errno=2)),
        syscall_counts={"openat": 2}, exit_status=-9, processes=3, warnings=("w",))
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


def _tracer_cli(tmp_path: Path, argv: tuple[str, ...]) -> tuple[subprocess.Popen, int, Path]:
    spec_path, result_path = tmp_path / "spec.json", tmp_path / "result.json"
    spec_path.write_text(json.dumps(spec_to_json(
        LaunchSpec(argv=argv, env=ENV, output_path=str(tmp_path / "out.txt")))))
    cmd = [sys.executable, "-m", "minifier.sensor.tracer", str(spec_path), str(result_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    pid_file = Path(f"{result_path}.pid")
    deadline = time.monotonic() + 20
    while not pid_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no pid file"
        time.sleep(0.02)
    return proc, int(pid_file.read_text()), result_path


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def test_killing_the_tracer_kills_the_app(tmp_path):
    proc, pid, _ = _tracer_cli(tmp_path, ("sleep", "60"))
    try:
        deadline = time.monotonic() + 10  # the pid file comes before the exec of sleep
        while Path(f"/proc/{pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.kill()
        proc.wait(10)
        assert _gone(pid)
    finally:
        proc.kill()
        with_suppressed_kill(pid)


def test_sigterm_writes_the_result(tmp_path):
    proc, pid, result_path = _tracer_cli(tmp_path, ("sleep", "60"))
    try:
        time.sleep(0.2)
        proc.terminate()
        assert proc.wait(10) == 0
        result = result_from_json(json.loads(result_path.read_text()))
        assert result.exit_status == -signal.SIGKILL
        assert result.warnings and "killed" in result.warnings[0]
        assert _gone(pid)
    finally:
        proc.kill()
        with_suppressed_kill(pid)


def with_suppressed_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_joins_the_target_namespaces(tmp_path):
    with unshared("--mount", "--pid", "--uts", "--mount-proc") as target:
        own_pidns = os.stat("/proc/self/ns/pid").st_ino
        script = "echo $$; readlink /proc/self/ns/mnt /proc/self/ns/uts; cat /etc/hostname"
        result, out = run(("/bin/sh", "-c", script), tmp_path, target_pid=target)
        assert result.exit_status == 0, out
        lines = out.splitlines()
        assert int(lines[0]) < 10  # born in the new pid namespace, where sleep is pid 1
        assert lines[1:3] == [os.readlink(f"/proc/{target}/ns/{ns}") for ns in ("mnt", "uts")]
        assert lines[1] != os.readlink("/proc/self/ns/mnt")
        assert find(result, "/etc/hostname", "openat", ok=True)
        # Our own later children are born in our pid namespace again.
        assert os.stat("/proc/self/ns/pid_for_children").st_ino == own_pidns


def test_cli_reports_a_launch_it_could_not_do(tmp_path):
    spec_path, result_path = tmp_path / "spec.json", tmp_path / "result.json"
    spec = LaunchSpec(argv=("/bin/true",), output_path=str(tmp_path / "no" / "such" / "dir"))
    spec_path.write_text(json.dumps(spec_to_json(spec)))
    cmd = [sys.executable, "-m", "minifier.sensor.tracer", str(spec_path), str(result_path)]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=30)
    assert done.returncode == 1
    result = result_from_json(json.loads(result_path.read_text()))
    assert result.exit_status is None and "cannot launch" in result.warnings[0]

"""Trace a program and all its descendants with ptrace and record every path it touches.

`trace()` forks the program (launch.py), and from its first instruction follows every
fork, clone, vfork and exec. By default a seccomp filter (seccomp.py) makes only the
path-bearing syscalls of syscalls.py stop, so untraced syscalls run at native speed;
`LaunchSpec.all_syscalls` stops at every syscall instead, for exact syscall counts.
The loop is one `waitpid(-1, __WALL)` per stop on python-ptrace's low-level bindings.

`python -m minifier.sensor.tracer SPEC_JSON RESULT_JSON` runs one trace in its own process
(the way the pipeline uses it), since trace() reaps every child of the calling process
and joining a pid namespace changes the caller's pid_for_children while it forks. There
SIGTERM and SIGINT from anyone but a traced process stop the trace (interrupt.py).
The program's stdout and stderr are a pipe copied into `LaunchSpec.output_path`
(stdio.py).

Linux x86_64 only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import posixpath
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

from ptrace.binding import ptrace_cont, ptrace_getsiginfo, ptrace_setoptions, ptrace_syscall
from ptrace.binding.func import ptrace
from ptrace.error import PtraceError

from minifier.records import FileEvent, LaunchSpec, TraceResult
from minifier.sensor import confine, interrupt, launch
from minifier.sensor.seccomp import AUDIT_ARCH_X86_64
from minifier.sensor.stdio import OutputCopy
from minifier.sensor.syscalls import AT_FDCWD, PATH_SYSCALLS_BY_NR, PathSyscall, syscall_name
from minifier.sensor.tracejson import (
    CONFINEMENT_FAILED,
    LAUNCH_FD,
    SPARE,
    result_to_json,
    spec_from_json,
    write_atomic,
)

__all__ = ["CONFINEMENT_FAILED", "Tracer", "trace", "main"]


_WALL = 0x40000000
_PTRACE_GETEVENTMSG = 0x4201
_PTRACE_GET_SYSCALL_INFO = 0x420E
# TRACESYSGOOD (syscall stops report SIGTRAP|0x80), TRACEFORK, TRACEVFORK, TRACECLONE,
# TRACEEXEC, TRACESECCOMP, and EXITKILL: if the tracer dies, so does the app.
_OPTIONS = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x80 | 0x100000
_EVENT_FORK, _EVENT_VFORK, _EVENT_CLONE, _EVENT_EXEC, _EVENT_SECCOMP = 1, 2, 3, 4, 7
_OP_ENTRY, _OP_EXIT, _OP_SECCOMP = 1, 2, 3
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
# A syscall interrupted by a signal that the kernel will restart: it is trapped again.
_RESTARTING = frozenset({512, 513, 514, 516})
_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MAX_PATH = 8192
# Seconds for the output copy to reach the pipe's end once every traced task has ended.
OUTPUT_DRAIN = 5.0


class _SyscallInfo(ctypes.Structure):
    """struct ptrace_syscall_info; `data` is the union: entry/seccomp {nr, args[6]},
    exit {rval, is_error}."""

    _fields_ = [("op", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3), ("arch", ctypes.c_uint32),
                ("ip", ctypes.c_uint64), ("sp", ctypes.c_uint64), ("data", ctypes.c_uint64 * 7),
                ("ret_data", ctypes.c_uint32), ("pad2", ctypes.c_uint32)]


@dataclass
class _Pending:
    """A path syscall seen at entry, waiting for its result at exit."""

    name: str
    paths: list[tuple[str, bool]]  # (path, named by an empty string: the dirfd itself)
    exe: str


@dataclass
class _Task:
    exe: Optional[str] = None  # read lazily from /proc/PID/exe
    fresh: bool = False  # its auto-attach SIGSTOP is still to come
    launching: bool = False  # the launched process before its first exec
    pending: Optional[_Pending] = None
    mem_fd: Optional[int] = None


def _c_int(value: int) -> int:
    """An argument register read as a C int: AT_FDCWD arrives as 0xffffff9c."""
    return ctypes.c_int32(value & 0xFFFFFFFF).value


def _norm(path: str) -> str:
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _readlink(path: str) -> Optional[str]:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _mapped_files(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    paths = (parts[5] for parts in (ln.split(None, 5) for ln in lines) if len(parts) == 6)
    return list(dict.fromkeys(p for p in paths if p.startswith("/")))


class Tracer:
    """One trace run. Not thread-safe: all calls but kill_all and stop_request come from
    one thread. `stop_signals`: take SIGTERM/SIGINT as requests to stop (the tracer
    process; interrupt.block() must have been called before)."""

    def __init__(self, spec: LaunchSpec, stop_signals: bool = False) -> None:
        self.spec = spec
        self.stop_signals = stop_signals
        self.tasks: dict[int, _Task] = {}
        self.seen: set[int] = set()  # every pid ever traced (a signal's sender may be gone)
        self.root = 0
        self.killing = False  # interrupted: every task is killed
        self.interrupted_by = "an error in the tracer"  # what made it kill, once killing
        self.launch_error = ""  # why the program could not start
        self.ending = False  # the container's main process exited: the rest is killed
        self.exit_status: Optional[int] = None
        self.processes = 0
        self.counts: Counter[str] = Counter()
        self.events: dict[tuple[str, str, bool, str], FileEvent] = {}
        self.warnings: list[str] = []
        self._info = _SyscallInfo()
        self._msg = ctypes.c_ulong()
        self._on_start: Optional[Callable[[int], None]] = None
        self._output: Optional[OutputCopy] = None
        self._failure_fd = -1

    def kill_all(self) -> None:
        """SIGKILL every traced task, and any task seen from now on (signal-handler safe)."""
        self.killing = True
        for pid in list(self.tasks):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def stop_request(self, request: interrupt.StopRequest) -> bool:
        """A stop signal: taken (every task is killed) unless a traced process sent it,
        which is the app signalling, never minify's stop; whether it was taken."""
        if request.pid in self.seen:
            return False
        self.interrupted_by = request.text()
        self.kill_all()
        return True

    def _end_left_behind(self) -> None:
        """The main process has exited: under `docker run` the container ends with it and
        the kernel kills every other process in it, so the app's leftovers (a daemon it
        started, an orphaned child) get SIGKILL here too instead of keeping the run alive.

        A task may have exec'd a program whose exec stop was not waited for yet; the kill
        discards that stop, so what each task runs now is recorded first."""
        self.ending = True
        for pid, task in list(self.tasks.items()):
            exe = _readlink(f"/proc/{pid}/exe")
            if exe and exe != task.exe:
                self._record(exe, "exec", True, exe, pid)
                for path in _mapped_files(pid):
                    self._record(path, "map", True, exe, pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def run(self, on_start: Optional[Callable[[int], None]] = None) -> TraceResult:
        """Launch the program, trace until every task has exited, return what was seen.
        `on_start(pid)` is called once the program runs: after its exec."""
        self._on_start = on_start
        try:
            if self._start():
                self._trace()
        finally:
            self._end_output()
            if self._failure_fd >= 0:
                self.launch_error = launch.failure(self._failure_fd) or self.launch_error
                self._failure_fd = -1
        if self.killing:
            self.warnings.append(f"trace interrupted by {self.interrupted_by}: the traced "
                                 "processes were killed")
        return self._result()

    def _trace(self) -> None:
        try:
            self._loop()
        except BaseException:
            self.kill_all()
            self._loop()
            raise
        finally:
            for task in self.tasks.values():
                self._close_mem(task)

    def _start(self) -> bool:
        conf = None
        if self.spec.target_pid is not None:
            conf = confine.read(self.spec.target_pid)
            self.warnings.extend(conf.warnings)
        if self.spec.output_path is not None:
            self._output = OutputCopy(self.spec.output_path)
        spawned = launch.spawn(self.spec, conf,
                               self._output.write_fd if self._output is not None else None)
        self.root, self._failure_fd = spawned.pid, spawned.failure_fd
        # Threads only after the fork: the child of a threaded process inherits no lock.
        if self._output is not None:
            self._output.start()
        if self.stop_signals:
            interrupt.listen(self.stop_request)
        _, status = os.waitpid(self.root, _WALL)
        if not os.WIFSTOPPED(status):
            self.exit_status = os.waitstatus_to_exitcode(status)
            self.launch_error = launch.failure(self._failure_fd)
            self._failure_fd = -1
            return False
        ptrace_setoptions(self.root, _OPTIONS)
        task = self._new_task(self.root, exe="")
        task.launching = True
        self._resume(self.root, task)
        return True

    def _end_output(self) -> None:
        if self._output is not None and not self._output.finish(OUTPUT_DRAIN):
            self.warnings.append(
                f"{self.spec.argv[0]}: its output pipe was still open {OUTPUT_DRAIN:g} s "
                "after every traced process had ended: the log may lack its end")
        self._output = None

    def _started(self) -> None:
        """The launched program's first exec succeeded: it runs."""
        if self._failure_fd >= 0:
            launch.failure(self._failure_fd)  # closed by the exec: nothing to read
            self._failure_fd = -1
        if self._on_start is not None:
            self._on_start(self.root)

    def _result(self) -> TraceResult:
        return TraceResult(
            events=tuple(self.events.values()),
            syscall_counts=dict(self.counts),
            exit_status=self.exit_status,
            processes=self.processes,
            warnings=tuple(self.warnings),
            launch_error=self.launch_error,
        )

    def _loop(self) -> None:
        while self.tasks:
            try:
                pid, status = os.waitpid(-1, _WALL)
            except ChildProcessError:
                break
            try:
                self._handle(pid, status)
            except PtraceError as exc:
                if exc.errno != errno.ESRCH:
                    raise
                # Killed while we looked at it. The launched process is our own child:
                # keep waiting for its exit status, which will come.
                if pid != self.root:
                    self._drop(pid)

    def _handle(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            task = self.tasks.get(pid)
            self._drop(pid)
            if pid == self.root:
                self.exit_status = os.waitstatus_to_exitcode(status)
                if task is not None and task.launching and self._failure_fd >= 0:
                    self.launch_error = launch.failure(self._failure_fd)
                    self._failure_fd = -1
                if self.spec.container_main:
                    self._end_left_behind()
            return
        if not os.WIFSTOPPED(status):
            return
        task = self.tasks.get(pid)
        if task is None:  # a new child whose stop came before its parent's event
            task = self._new_task(pid, fresh=True)
        sig, event = os.WSTOPSIG(status), status >> 16
        if sig == _SYSCALL_TRAP:
            self._syscall_stop(pid, task)
        elif sig == signal.SIGTRAP and event:
            self._event(pid, task, event)
        elif sig == signal.SIGSTOP and task.fresh:
            task.fresh = False
            self._resume(pid, task)
        else:
            self._signal(pid, task, sig)

    def _new_task(self, pid: int, fresh: bool = False, exe: Optional[str] = None) -> _Task:
        task = self.tasks[pid] = _Task(exe=exe, fresh=fresh)
        self.seen.add(pid)
        self.processes += 1
        return task

    def _drop(self, pid: int) -> None:
        task = self.tasks.pop(pid, None)
        if task is not None:
            self._close_mem(task)

    def _resume(self, pid: int, task: _Task, sig: int = 0) -> None:
        if self.killing or self.ending:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        elif self.spec.all_syscalls or task.pending is not None:
            ptrace_syscall(pid, sig)  # stop again at this syscall's exit
        else:
            ptrace_cont(pid, sig)

    def _signal(self, pid: int, task: _Task, sig: int) -> None:
        if sig in _STOP_SIGNALS and self._is_group_stop(pid):
            sig = 0  # not a signal to deliver: the task stopped; let it run on
        self._resume(pid, task, sig)

    @staticmethod
    def _is_group_stop(pid: int) -> bool:
        try:
            ptrace_getsiginfo(pid)
        except PtraceError as exc:
            return exc.errno == errno.EINVAL
        return False

    def _event_msg(self, pid: int) -> int:
        ptrace(_PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(self._msg))
        return self._msg.value

    def _event(self, pid: int, task: _Task, event: int) -> None:
        if event in (_EVENT_FORK, _EVENT_VFORK, _EVENT_CLONE):
            child = self._event_msg(pid)
            known = self.tasks.get(child)
            if known is None:
                self._new_task(child, fresh=True, exe=task.exe)
            elif known.exe is None:
                known.exe = task.exe
        elif event == _EVENT_EXEC:
            task = self._exec(pid, task)
        elif event == _EVENT_SECCOMP:
            self._entry(pid, task, self._syscall_info(pid))
        self._resume(pid, task)

    def _exec(self, pid: int, task: _Task) -> _Task:
        former = self._event_msg(pid)
        if former != pid and former in self.tasks:
            # A non-leader thread exec'd: it takes over the leader's pid; the leader's
            # own exit is never reported.
            self._drop(pid)
            task = self.tasks[pid] = self.tasks.pop(former)
        self._close_mem(task)
        started = task.launching and pid == self.root
        task.launching = False
        task.exe = _readlink(f"/proc/{pid}/exe") or ""
        self._record(task.exe, "exec", True, task.exe, pid)
        # The ELF interpreter is mapped by the kernel, never opened by the program.
        for path in _mapped_files(pid):
            self._record(path, "map", True, task.exe, pid)
        if started:
            self._started()
        return task

    def _syscall_info(self, pid: int) -> _SyscallInfo:
        ptrace(_PTRACE_GET_SYSCALL_INFO, pid, ctypes.sizeof(self._info),
               ctypes.addressof(self._info))
        return self._info

    def _syscall_stop(self, pid: int, task: _Task) -> None:
        info = self._syscall_info(pid)
        if info.op == _OP_ENTRY:
            self._entry(pid, task, info)
        elif info.op == _OP_EXIT:
            self._exit(pid, task, info)
        self._resume(pid, task)

    def _entry(self, pid: int, task: _Task, info: _SyscallInfo) -> None:
        task.pending = None
        if info.op not in (_OP_ENTRY, _OP_SECCOMP):
            return
        nr = info.data[0]
        if info.arch != AUDIT_ARCH_X86_64:  # an i386 syscall (int 0x80): other numbering
            self.counts[f"i386:{nr}"] += 1
            return
        name = syscall_name(nr)
        if not task.launching:  # the launcher's own syscalls are not the app's
            self.counts[name] += 1
        entry = PATH_SYSCALLS_BY_NR.get(nr)
        if entry is not None:
            paths = self._paths(pid, task, entry, list(info.data[1:7]))
            exe = self._exe(pid, task)
            if paths and all((p, name, True, exe) in self.events for p, _ in paths):
                # Seen succeeding before: its result adds nothing, so spare the second
                # stop at the exit (a server opening the same file on every request).
                return
            task.pending = _Pending(name, paths, exe)

    def _exit(self, pid: int, task: _Task, info: _SyscallInfo) -> None:
        pending, task.pending = task.pending, None
        if pending is None:
            return
        rval = ctypes.c_int64(info.data[0]).value
        if -rval in _RESTARTING:
            return
        for path, empty in pending.paths:
            # An empty name without AT_EMPTY_PATH fails without touching the dirfd's file.
            if rval >= 0 or not empty:
                self._record(path, pending.name, rval >= 0, pending.exe, pid, max(0, -rval))

    def _record(self, path: str, op: str, ok: bool, exe: str, pid: int, err: int = 0) -> None:
        key = (path, op, ok, exe)
        if key not in self.events:
            self.events[key] = FileEvent(path, op, ok, exe, pid, "ptrace", err)

    def _exe(self, pid: int, task: _Task) -> str:
        if task.exe is None:
            task.exe = _readlink(f"/proc/{pid}/exe") or ""
        return task.exe

    def _paths(
        self, pid: int, task: _Task, entry: PathSyscall, args: list[int]
    ) -> list[tuple[str, bool]]:
        if entry.fd_arg is not None:
            path = _readlink(f"/proc/{pid}/fd/{_c_int(args[entry.fd_arg])}")
            return [(path, False)] if path and path.startswith("/") else []
        out = []
        for dir_arg, path_arg in entry.paths:
            if not args[path_arg]:  # NULL: e.g. utimensat on the dirfd itself
                continue
            raw = self._read_string(pid, task, args[path_arg])
            dirfd = AT_FDCWD if dir_arg is None else _c_int(args[dir_arg])
            path = None if raw is None else self._resolve(pid, dirfd, raw)
            if path is not None:
                out.append((path, not raw))
        return out

    @staticmethod
    def _resolve(pid: int, dirfd: int, raw: str) -> Optional[str]:
        if raw.startswith("/"):
            return _norm(raw)
        where = "cwd" if dirfd == AT_FDCWD else f"fd/{dirfd}"
        base = _readlink(f"/proc/{pid}/{where}")
        if base is None or not base.startswith("/"):  # a pipe, socket or closed fd
            return None
        # An empty path is the dirfd itself (AT_EMPTY_PATH).
        return _norm(posixpath.join(base, raw)) if raw else base

    def _read_string(self, pid: int, task: _Task, addr: int) -> Optional[str]:
        fd = self._mem_fd(pid, task)
        if fd is None:
            return None
        chunks: list[bytes] = []
        size = 0
        while size < _MAX_PATH:
            try:  # one read up to the page end: the next page may be unmapped
                data = os.pread(fd, _PAGE - addr % _PAGE, addr)
            except OSError:
                return None
            end = data.find(b"\0")
            if end >= 0:
                chunks.append(data[:end])
                return os.fsdecode(b"".join(chunks))
            if not data:
                return None
            chunks.append(data)
            size += len(data)
            addr += len(data)
        return None

    def _mem_fd(self, pid: int, task: _Task) -> Optional[int]:
        if task.mem_fd is None:
            try:
                task.mem_fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.EMFILE:
                    # Paths of this task's syscalls cannot be read: never silently.
                    warning = (f"cannot read the memory of traced processes "
                               f"({exc.strerror}): their paths are missing from the trace")
                    if warning not in self.warnings:
                        self.warnings.append(warning)
                    return None
                for other in self.tasks.values():  # too many threads: drop the cache
                    self._close_mem(other)
                return self._mem_fd(pid, task) if self.tasks else None
        return task.mem_fd

    @staticmethod
    def _close_mem(task: _Task) -> None:
        if task.mem_fd is not None:
            with contextlib.suppress(OSError):
                os.close(task.mem_fd)
            task.mem_fd = None


def trace(spec: LaunchSpec, on_start: Optional[Callable[[int], None]] = None) -> TraceResult:
    """Run `spec` under ptrace until it and every descendant has exited.

    `on_start(pid)` gets the launched program's host pid once it runs. Call from the
    thread that is to make every ptrace call. trace() reaps any child of the calling
    process that exits meanwhile; run it in a process of its own (`python -m
    minifier.sensor.tracer`) when the caller has other children.
    """
    return Tracer(spec).run(on_start)


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m minifier.sensor.tracer [--launch-fd FD] SPEC_JSON RESULT_JSON`; 0 once
    traced, 1 if the program could not be launched, 3 if it could not be confined like the
    container's own processes (the result then holds the reason as its one warning).
    The launched program's pid goes to RESULT_JSON.pid, then to FD (a pipe the caller
    waits on: closed once the pid is written, or with this process when the launch fails).

    `python -m minifier.sensor.tracer [--launch-fd FD] --spare`: the same, started ahead of
    need (its interpreter and imports ready while the container starts): its arguments
    come later as one JSON line on stdin, [SPEC_JSON, RESULT_JSON, LOG], LOG taking its
    stdout and stderr; at end of file it exits with 0, having traced nothing."""
    args = sys.argv[1:] if argv is None else argv
    # Die with the parent; EXITKILL then takes the app down with us.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    launch_fd = -1
    if args[:1] == [LAUNCH_FD] and len(args) > 1 and args[1].isdigit():
        launch_fd, args = int(args[1]), args[2:]
        os.set_inheritable(launch_fd, False)  # never the traced program's
    if args == [SPARE]:
        args = _await_arguments()
        if args is None:
            return 0
    if len(args) != 2:
        print("usage: python -m minifier.sensor.tracer [--launch-fd FD] SPEC_JSON RESULT_JSON",
              file=sys.stderr)
        return 2
    interrupt.block()  # before any thread: SIGTERM/SIGINT are taken by one (interrupt.py)
    spec_path, result_path = args
    with open(spec_path) as f:
        spec = spec_from_json(json.load(f))
    tracer = Tracer(spec, stop_signals=True)
    status = 0

    def launched(pid: int) -> None:
        nonlocal launch_fd
        write_atomic(f"{result_path}.pid", f"{pid}\n")
        _tell(launch_fd, pid)
        launch_fd = -1

    try:
        result = tracer.run(launched)
    except confine.ConfinementError as exc:
        result = TraceResult((), {}, None, warnings=(str(exc),))
        status = CONFINEMENT_FAILED
    except (OSError, ValueError) as exc:  # could not launch (bad path, uid, capability)
        result = TraceResult((), {}, None, warnings=(f"cannot launch {spec.argv!r}: {exc}",))
        status = 1
    write_atomic(result_path, json.dumps(result_to_json(result)))
    return status


def _tell(fd: int, pid: int) -> None:
    """The launched program's pid on the launch pipe, which is then closed."""
    if fd < 0:
        return
    try:
        os.write(fd, f"{pid}\n".encode())
    except OSError:
        pass  # the caller is gone: PDEATHSIG ends this process too
    finally:
        os.close(fd)


def _await_arguments() -> Optional[list[str]]:
    """A spare's arguments, once they come; its stdio then as a tracer started with them
    has it (stdin /dev/null, stdout and stderr the log)."""
    line = sys.stdin.buffer.readline()
    if not line:
        return None
    spec_path, result_path, log_path = json.loads(line)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (log, 1), (log, 2)):
        os.dup2(fd, target)
    os.close(null)
    os.close(log)
    return [spec_path, result_path]


if __name__ == "__main__":
    sys.exit(main())

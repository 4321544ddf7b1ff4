"""Fork the program to trace and do everything between fork and exec.

The child starts a session of its own, as runc's first process does (so `kill 0` from
the app reaches the app's processes only, never the tracer). Launched into a container
(`LaunchSpec.target_pid`), it is confined exactly like the container's own PID 1
(confine.py): it joins the container's cgroups first, sets its oom score and the LSM
label for its exec, enters the container's namespaces and root (like `nsenter -r`),
makes the container user the owner of its stdout/stderr pipe (as runc does), asks to be
traced and stops so the tracer can set its options, then takes the container's rlimits,
umask and signal dispositions, installs the tracer's seccomp filter under the
container's own (the engine's profile: a syscall it denies stays denied, with its
errno), sets no_new_privs only where the container has it, takes the container's
capability sets, drops privileges and execs. Everything it needs (fds, byte strings,
ctypes functions) is prepared before fork, so the child imports nothing and opens only
its own /proc attributes. A child that cannot start says why in Docker's words
(`executable file not found in $PATH`) on a close-on-exec pipe: `failure()` reads it.
Linux x86_64 only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from ptrace.binding import ptrace_traceme

from minifier.records import DEFAULT_PATH, LaunchSpec
from minifier.sensor import privileges, seccomp
from minifier.sensor.confine import Confinement
from minifier.sensor.privileges import Privileges
from minifier.sensor.privileges import check as privs_check

__all__ = ["Spawned", "spawn", "failure", "resolve_candidates", "search_path"]

_CLONE_NEWPID = 0x20000000
_MNT_DETACH = 2
# Joined by the child in this order: user first (the others belong to it when the
# engine remaps users), mnt last, because after it the host's /proc is gone (the fds
# were opened before, so only the order of setns calls matters).
_NAMESPACES = (
    ("user", 0x10000000),
    ("ipc", 0x08000000),
    ("uts", 0x04000000),
    ("net", 0x40000000),
    ("cgroup", 0x02000000),
    ("mnt", 0x00020000),
)


@dataclass
class _Launch:
    """What the child needs, ready to use without allocating resources."""

    argv: list[bytes]
    candidates: list[bytes]  # executable paths to try, in PATH order
    path: Optional[str]  # the PATH searched; None when argv[0] names a path
    env: dict[bytes, bytes]
    workdir: bytes
    uid: int
    gid: int
    groups: Optional[list[int]]  # None: left as they are (a user namespace denies setgroups)
    privs: Privileges
    fds: list[int] = field(default_factory=list)  # every fd below, closed after fork
    stdin_fd: int = -1
    out_fd: Optional[int] = None  # the stdout/stderr pipe's write end (stdio.py)
    failure_fd: int = -1  # why the child could not start, if it could not
    ns_fds: list[tuple[int, int]] = field(default_factory=list)
    root_fd: Optional[int] = None
    detach: Optional[bytes] = None  # a mount point to detach once in the container

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC, mode)
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        self.privs.close()


@dataclass(frozen=True)
class Spawned:
    """A forked program: its host pid, and the read end of its failure pipe."""

    pid: int
    failure_fd: int


def search_path(argv0: str, env: tuple[str, ...]) -> Optional[str]:
    """The PATH that argv0 is looked up in (the last PATH= of `env`, else Docker's
    default); None when argv0 names a path."""
    if "/" in argv0:
        return None
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    return path


def resolve_candidates(argv0: str, env: tuple[str, ...]) -> list[str]:
    """The paths execvpe would try for argv0, searching the PATH of `env` like Docker."""
    path = search_path(argv0, env)
    if path is None:
        return [argv0]
    return [os.path.join(d, argv0) if d else argv0 for d in path.split(":")]


def _env_dict(env: tuple[str, ...]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for item in env:
        name, sep, value = item.partition("=")
        if sep and name:
            out[os.fsencode(name)] = os.fsencode(value)
    return out


def _prepare(spec: LaunchSpec, conf: Optional[Confinement], out_fd: Optional[int]) -> _Launch:
    if not spec.argv:
        raise ValueError("empty argv")
    trace_filter = None if spec.all_syscalls else seccomp.path_filter()
    launch = _Launch(
        argv=[os.fsencode(a) for a in spec.argv],
        candidates=[os.fsencode(c) for c in resolve_candidates(spec.argv[0], spec.env)],
        path=search_path(spec.argv[0], spec.env),
        env=_env_dict(spec.env),
        workdir=os.fsencode(spec.workdir or "/"),
        uid=spec.uid,
        gid=spec.gid,
        groups=list(spec.groups) if conf is None or conf.setgroups else None,
        privs=privileges.prepare(conf, spec.keep_caps, trace_filter),
        out_fd=out_fd,
        detach=os.fsencode(spec.detach_mount) if spec.detach_mount else None,
    )
    try:
        launch.stdin_fd = launch.open(spec.stdin_path, os.O_RDONLY)
        if spec.target_pid is not None:
            _open_namespaces(launch, spec.target_pid)
    except BaseException:
        launch.close()
        raise
    return launch


def _open_namespaces(launch: _Launch, target: int) -> None:
    for name, nstype in _NAMESPACES:
        theirs = f"/proc/{target}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:  # namespace type not supported by this kernel
            continue
        launch.ns_fds.append((launch.open(theirs, os.O_RDONLY), nstype))
    launch.root_fd = launch.open(f"/proc/{target}/root", os.O_RDONLY | os.O_DIRECTORY)


@contextlib.contextmanager
def _pid_namespace(target: Optional[int], setns: Callable[..., int]) -> Iterator[None]:
    """Make children of this process be born in `target`'s pid namespace, then undo it.

    setns(CLONE_NEWPID) only changes the namespace of later children; returning to our
    own namespace afterwards is allowed because it is the caller's active one.
    """
    if target is None:
        yield
        return
    theirs = f"/proc/{target}/ns/pid"
    if os.stat(theirs).st_ino == os.stat("/proc/self/ns/pid_for_children").st_ino:
        yield
        return
    own = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
        try:
            privs_check(setns(fd, _CLONE_NEWPID), "setns(pid)")
        finally:
            os.close(fd)
        try:
            yield
        finally:
            privs_check(setns(own, _CLONE_NEWPID), "setns(pid) back")
    finally:
        os.close(own)


def spawn(spec: LaunchSpec, conf: Optional[Confinement] = None,
          out_fd: Optional[int] = None) -> Spawned:
    """Fork the program of `spec`, confined by `conf` (read from the container's PID 1
    with confine.read; None for a launch on the host), with `out_fd` as its stdout and
    stderr (None: the caller's); returns its host pid and failure pipe.

    The child calls PTRACE_TRACEME and stops itself with SIGSTOP before installing the
    seccomp filters, so the caller must waitpid for that stop, set ptrace options (with
    PTRACE_O_TRACESECCOMP) and resume it. A child that fails to start writes why on
    its failure pipe (read it with failure() once the child has exec'd or exited) and
    one line to its output, and exits with 127. Raises ConfinementError, before
    anything is forked, when the container's cgroups cannot be written.
    """
    launch = _prepare(spec, conf, out_fd)
    read_fd, launch.failure_fd = os.pipe2(os.O_CLOEXEC)
    launch.fds.append(launch.failure_fd)
    try:
        with _pid_namespace(spec.target_pid, launch.privs.libc.setns):
            pid = os.fork()
            if pid == 0:
                _child(launch)  # never returns
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        launch.close()
    return Spawned(pid, read_fd)


def failure(fd: int) -> str:
    """Why the child could not start ("" once it has exec'd): read once its exec or exit
    has closed the pipe's write end; closes `fd`."""
    chunks = []
    try:
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            chunks.append(data)
    except OSError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _child(launch: _Launch) -> None:
    privs = launch.privs
    step = "start a session"
    try:
        # Like runc's first process: the app leads its own session and process group.
        os.setsid()
        step = "join the container's cgroups"
        privs.join_cgroups()  # first: all the child does counts against the container
        step = "set the oom score and LSM label"
        privs.write_attrs()
        step = "enter namespaces"
        for fd, nstype in launch.ns_fds:
            privs_check(privs.libc.setns(fd, nstype), "setns")
        if launch.root_fd is not None:
            os.fchdir(launch.root_fd)
            os.chroot(".")
        if launch.detach is not None:
            # Lazily: the stand-in still runs from it. Not there (a later launch in the
            # same container) or not allowed: the app then sees one mount more, no less.
            privs.libc.umount2(launch.detach, _MNT_DETACH)
        step = "own stdout and stderr"
        if launch.out_fd is not None:
            _own(launch.out_fd, launch.uid)
        step = "ptrace"
        ptrace_traceme()
        os.kill(os.getpid(), signal.SIGSTOP)
        step = "confine"
        # Limits, filters and the capability sets need privileges: before setuid.
        privs.limit()
        privs.filter()
        privs.capabilities()
        step = "drop privileges"
        if launch.groups is not None:
            os.setgroups(launch.groups)
        os.setgid(launch.gid)
        os.setuid(launch.uid)
        step = f"chdir {launch.workdir.decode(errors='replace')}"
        os.chdir(launch.workdir)
        step = "redirect"
        os.dup2(launch.stdin_fd, 0)
        if launch.out_fd is not None:
            os.dup2(launch.out_fd, 1)
            os.dup2(launch.out_fd, 2)
        step = "exec"
        _exec(launch)
    except BaseException as exc:  # noqa: B036 - nothing may escape the forked child
        _fail(launch, step, exc)
    os._exit(127)


class _CannotExec(Exception):
    """No candidate could be executed: why, in Docker's words, and the shell's status
    (127: not found, 126: found but not executable)."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.status = status


def _exec(launch: _Launch) -> None:
    """Try each PATH candidate like execvpe: keep going on ENOENT/ENOTDIR/EACCES."""
    tried: list[tuple[bytes, int]] = []
    for path in launch.candidates:
        try:
            os.execve(path, launch.argv, launch.env)
        except OSError as exc:
            if launch.path is None or exc.errno not in (errno.ENOENT, errno.ENOTDIR,
                                                        errno.EACCES):
                # argv[0] names the file: the message need not name it again.
                raise _CannotExec(_exec_text(path, exc.errno, named=False),
                                  _status(exc.errno)) from None
            tried.append((path, exc.errno))
    # Like execvpe, a file found but refused outranks the ones not there at all.
    for path, err in sorted(tried, key=lambda t: t[1] != errno.EACCES):
        if err == errno.EACCES or (err == errno.ENOENT and _exists(path)):
            raise _CannotExec(f"{_exec_text(path, err)} (found in $PATH)", _status(err))
    raise _CannotExec(f"executable file not found in $PATH ({launch.path})", 127)


def _status(err: int) -> int:
    return 127 if err in (errno.ENOENT, errno.ENOTDIR) else 126


def _exists(path: bytes) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _exec_text(path: bytes, err: int, named: bool = True) -> str:
    text = os.strerror(err).lower()
    if err == errno.ENOENT and _exists(path):
        # execve's ENOENT for a file that is there: what it names to run it is not.
        interp = _interpreter(path)
        if interp is None:
            text += " (the file exists: its interpreter is missing)"
        elif not _exists(os.fsencode(interp)):
            text += f" (the file exists: its interpreter {interp} is missing)"
        else:
            text += (f" (the file exists, and so does its interpreter {interp}: what that "
                     "one needs to run is missing)")
    return f"{path.decode(errors='replace')}: {text}" if named else text


def _interpreter(path: bytes) -> Optional[str]:
    """The #! interpreter, or the ELF program interpreter (PT_INTERP) of a 64-bit
    little-endian ELF file, when its first 4 kB say."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        return words[0].decode(errors="replace") if words else None
    if not head.startswith(b"\x7fELF\x02\x01"):
        return None

    def word(at: int, size: int) -> int:
        return int.from_bytes(head[at:at + size], "little")
    phoff, phentsize, phnum = word(0x20, 8), word(0x36, 2), word(0x38, 2)
    for at in range(phoff, phoff + phnum * phentsize, phentsize or 1):
        if at + 0x28 <= len(head) and word(at, 4) == 3:  # PT_INTERP
            text = head[word(at + 8, 8):word(at + 8, 8) + word(at + 0x20, 8)]
            return text.rstrip(b"\0").decode(errors="replace") or None
    return None


def _own(fd: int, uid: int) -> None:
    """Make `uid` the owner of the stdout/stderr pipe, as runc does (the uid only; an id
    the user namespace does not map, or an owner it cannot change, leaves it as it is)."""
    try:
        os.fchown(fd, uid, -1)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL):
            raise


def _fail(launch: _Launch, step: str, exc: BaseException) -> None:
    if isinstance(exc, _CannotExec):
        text, status = str(exc), exc.status
    else:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        text, status = f"{step}: {why[:1].lower()}{why[1:]}", 127
    argv0 = launch.argv[0].decode(errors="replace")
    with contextlib.suppress(BaseException):
        os.write(launch.failure_fd, text.encode(errors="replace"))
    fd = launch.out_fd if launch.out_fd is not None else 2
    with contextlib.suppress(BaseException):
        os.write(fd, f"minify: cannot start {argv0}: {text}\n".encode(errors="replace"))
    os._exit(status)

"""Fork the program to trace and do everything between fork and exec.

Launched into a container (`LaunchSpec.target_pid`), the child is confined exactly like
the container's own PID 1 (confine.py): it joins the container's cgroups first, sets
its oom score and the LSM label for its exec, enters the container's namespaces and
root (like `nsenter -r`), asks to be traced and stops so the tracer can set its
options, then takes the container's rlimits, umask and signal dispositions, installs
the tracer's seccomp filter under the container's own (the engine's profile: a syscall
it denies stays denied, with its errno), sets no_new_privs only where the container
has it, takes the container's capability sets, drops privileges and execs. Everything
it needs (fds, byte strings, ctypes functions) is prepared before fork, so the child
imports nothing and opens only its own /proc attributes. Linux x86_64 only.
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

__all__ = ["spawn", "resolve_candidates"]

_CLONE_NEWPID = 0x20000000
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
    env: dict[bytes, bytes]
    workdir: bytes
    uid: int
    gid: int
    groups: Optional[list[int]]  # None: left as they are (a user namespace denies setgroups)
    privs: Privileges
    fds: list[int] = field(default_factory=list)  # every fd below, closed after fork
    stdin_fd: int = -1
    out_fd: Optional[int] = None
    ns_fds: list[tuple[int, int]] = field(default_factory=list)
    root_fd: Optional[int] = None

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


def resolve_candidates(argv0: str, env: tuple[str, ...]) -> list[str]:
    """The paths execvpe would try for argv0, searching the PATH of `env` like Docker."""
    if "/" in argv0:
        return [argv0]
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    return [os.path.join(d, argv0) if d else argv0 for d in path.split(":")]


def _env_dict(env: tuple[str, ...]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for item in env:
        name, sep, value = item.partition("=")
        if sep and name:
            out[os.fsencode(name)] = os.fsencode(value)
    return out


def _prepare(spec: LaunchSpec, conf: Optional[Confinement]) -> _Launch:
    if not spec.argv:
        raise ValueError("empty argv")
    trace_filter = None if spec.all_syscalls else seccomp.path_filter()
    launch = _Launch(
        argv=[os.fsencode(a) for a in spec.argv],
        candidates=[os.fsencode(c) for c in resolve_candidates(spec.argv[0], spec.env)],
        env=_env_dict(spec.env),
        workdir=os.fsencode(spec.workdir or "/"),
        uid=spec.uid,
        gid=spec.gid,
        groups=list(spec.groups) if conf is None or conf.setgroups else None,
        privs=privileges.prepare(conf, spec.keep_caps, trace_filter),
    )
    try:
        launch.stdin_fd = launch.open(spec.stdin_path, os.O_RDONLY)
        if spec.output_path is not None:
            launch.out_fd = launch.open(spec.output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
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


def spawn(spec: LaunchSpec, conf: Optional[Confinement] = None) -> int:
    """Fork the program of `spec`, confined by `conf` (read from the container's PID 1
    with confine.read; None for a launch on the host); returns its host pid.

    The child calls PTRACE_TRACEME and stops itself with SIGSTOP before installing the
    seccomp filters, so the caller must waitpid for that stop, set ptrace options (with
    PTRACE_O_TRACESECCOMP) and resume it. A child that fails to start writes one line
    to its output and exits with 127. Raises ConfinementError, before anything is
    forked, when the container's cgroups cannot be written.
    """
    launch = _prepare(spec, conf)
    try:
        with _pid_namespace(spec.target_pid, launch.privs.libc.setns):
            pid = os.fork()
            if pid == 0:
                _child(launch)  # never returns
    finally:
        launch.close()
    return pid


def _child(launch: _Launch) -> None:
    privs = launch.privs
    step = "join the container's cgroups"
    try:
        privs.join_cgroups()  # first: all the child does counts against the container
        step = "set the oom score and LSM label"
        privs.write_attrs()
        step = "enter namespaces"
        for fd, nstype in launch.ns_fds:
            privs_check(privs.libc.setns(fd, nstype), "setns")
        if launch.root_fd is not None:
            os.fchdir(launch.root_fd)
            os.chroot(".")
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
        step = "chdir"
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


def _exec(launch: _Launch) -> None:
    """Try each PATH candidate like execvpe: keep going on ENOENT/ENOTDIR/EACCES."""
    denied: Optional[OSError] = None
    last: Optional[OSError] = None
    for path in launch.candidates:
        try:
            os.execve(path, launch.argv, launch.env)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                raise
            last = exc
            if exc.errno == errno.EACCES:
                denied = exc
    raise denied or last or FileNotFoundError(errno.ENOENT, "no PATH candidate")


def _fail(launch: _Launch, step: str, exc: BaseException) -> None:
    argv0 = launch.argv[0].decode(errors="replace")
    line = f"minify: cannot start {argv0}: {step}: {exc}\n".encode(errors="replace")
    fd = launch.out_fd if launch.out_fd is not None else 2
    with contextlib.suppress(BaseException):
        os.write(fd, line)
    os._exit(127)

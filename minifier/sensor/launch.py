"""Fork the program to trace and do everything between fork and exec.

The child enters the target container's namespaces and root (like `nsenter -r`), asks
to be traced, stops so the tracer can set its options, installs the seccomp filter,
drops privileges and execs. Everything it needs (fds, byte strings, ctypes functions)
is prepared before fork, so the child opens no file of the host and imports nothing.
Linux x86_64 only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from ptrace.binding import ptrace_traceme

from minifier.records import DEFAULT_PATH, LaunchSpec
from minifier.sensor import seccomp

__all__ = ["CAPABILITIES", "spawn", "resolve_candidates"]

# Capability names in number order (linux/capability.h).
CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
).split()

_PR_CAPBSET_DROP = 24
_CLONE_NEWPID = 0x20000000
# Joined by the child in this order; mnt last, because after it the host's /proc is
# gone (the fds were opened before, so only the order of setns calls matters).
_NAMESPACES = (
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
    groups: list[int]
    drop_caps: list[int]
    setns: Callable[..., int]
    prctl: Callable[..., int]
    program: Optional[seccomp.SeccompProgram]
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


def _caps_to_drop(keep: Optional[tuple[str, ...]]) -> list[int]:
    if keep is None:
        return []
    wanted = set()
    for name in keep:
        short = name.upper().removeprefix("CAP_")
        if short not in CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}")
        wanted.add(CAPABILITIES.index(short))
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    return [cap for cap in range(last + 1) if cap not in wanted]


def _libc_funcs() -> tuple[Callable[..., int], Callable[..., int]]:
    libc = ctypes.CDLL(None, use_errno=True)
    setns, prctl = libc.setns, libc.prctl
    setns.argtypes, setns.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prctl.restype = ctypes.c_int
    return setns, prctl


def _prepare(spec: LaunchSpec) -> _Launch:
    if not spec.argv:
        raise ValueError("empty argv")
    setns, prctl = _libc_funcs()
    launch = _Launch(
        argv=[os.fsencode(a) for a in spec.argv],
        candidates=[os.fsencode(c) for c in resolve_candidates(spec.argv[0], spec.env)],
        env=_env_dict(spec.env),
        workdir=os.fsencode(spec.workdir or "/"),
        uid=spec.uid,
        gid=spec.gid,
        groups=list(spec.groups),
        drop_caps=_caps_to_drop(spec.keep_caps),
        setns=setns,
        prctl=prctl,
        program=None if spec.all_syscalls else seccomp.prepare(seccomp.path_filter()),
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
            _check(setns(fd, _CLONE_NEWPID), "setns(pid)")
        finally:
            os.close(fd)
        try:
            yield
        finally:
            _check(setns(own, _CLONE_NEWPID), "setns(pid) back")
    finally:
        os.close(own)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def spawn(spec: LaunchSpec) -> int:
    """Fork the program of `spec`; returns its host pid.

    The child calls PTRACE_TRACEME and stops itself with SIGSTOP before installing the
    seccomp filter, so the caller must waitpid for that stop, set ptrace options (with
    PTRACE_O_TRACESECCOMP) and resume it. A child that fails to start writes one line
    to its output and exits with 127.
    """
    launch = _prepare(spec)
    try:
        with _pid_namespace(spec.target_pid, launch.setns):
            pid = os.fork()
            if pid == 0:
                _child(launch)  # never returns
    finally:
        launch.close()
    return pid


def _child(launch: _Launch) -> None:
    step = "enter namespaces"
    try:
        for fd, nstype in launch.ns_fds:
            _check(launch.setns(fd, nstype), "setns")
        if launch.root_fd is not None:
            os.fchdir(launch.root_fd)
            os.chroot(".")
        step = "ptrace"
        ptrace_traceme()
        os.kill(os.getpid(), signal.SIGSTOP)
        step = "drop privileges"
        # Filter and bounding set need privileges, so both come before setuid.
        if launch.program is not None:
            seccomp.install(launch.program)
        for cap in launch.drop_caps:
            _check(launch.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "capbset drop")
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

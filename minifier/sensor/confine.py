"""How the container's own processes are confined, read from its PID 1.

The engine set up the container's PID 1 (minify's stand-in) with every confinement
`docker run` gives: its seccomp filter (the default profile or the user's), its cgroups,
capability bounding and inheritable sets, AppArmor/SELinux label, no_new_privs, rlimits,
umask, oom score and ignored signals. A program minify launches into the container
reads all of that here, before it forks, and launch.py gives it exactly the same, so
the traced app is never freer than under `docker run`. Nothing is re-derived from the
options: what the engine applied is what is copied.

The cgroups to join are found by cgroups.py. The parsers are pure functions over the
kernel's text files; `read` does the I/O.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import resource
import time
from dataclasses import dataclass
from typing import Optional

from ptrace.binding.func import ptrace
from ptrace.error import PtraceError

from minifier.sensor.cgroups import CgroupError, container_procs

__all__ = ["Confinement", "ConfinementError", "read", "read_filters", "parse_status",
           "parse_limits", "exec_label"]

_WALL = 0x40000000
_PTRACE_DETACH = 17
_PTRACE_SEIZE = 0x4206
_PTRACE_INTERRUPT = 0x4207
_PTRACE_SECCOMP_GET_FILTER = 0x420C
_SOCK_FILTER_SIZE = 8
_CAP_SYS_RESOURCE = 24

# /proc/PID/limits names -> setrlimit resources (those this Python knows).
_LIMITS = {
    "Max cpu time": "RLIMIT_CPU", "Max file size": "RLIMIT_FSIZE",
    "Max data size": "RLIMIT_DATA", "Max stack size": "RLIMIT_STACK",
    "Max core file size": "RLIMIT_CORE", "Max resident set": "RLIMIT_RSS",
    "Max processes": "RLIMIT_NPROC", "Max open files": "RLIMIT_NOFILE",
    "Max locked memory": "RLIMIT_MEMLOCK", "Max address space": "RLIMIT_AS",
    "Max file locks": "RLIMIT_LOCKS", "Max pending signals": "RLIMIT_SIGPENDING",
    "Max msgqueue size": "RLIMIT_MSGQUEUE", "Max nice priority": "RLIMIT_NICE",
    "Max realtime priority": "RLIMIT_RTPRIO", "Max realtime timeout": "RLIMIT_RTTIME",
}


class ConfinementError(Exception):
    """The container's confinement cannot be read or reproduced: the app is not started."""


@dataclass(frozen=True)
class Confinement:
    """What a program launched into the container gets, copied from the container's PID 1."""

    filters: tuple[bytes, ...] = ()  # seccomp classic BPF programs, oldest first
    cgroup_procs: tuple[str, ...] = ()  # cgroup.procs of the container's cgroups to join
    bounding: Optional[int] = None  # capability bounding set (bits); None: unchanged
    inheritable: int = 0  # inheritable capabilities (bits)
    no_new_privs: bool = False
    exec_label: Optional[tuple[str, bytes]] = None  # (attr file, bytes) for the next exec
    rlimits: tuple[tuple[int, int, int], ...] = ()  # (resource, soft, hard)
    ignored_signals: frozenset[int] = frozenset()
    defaulted_signals: frozenset[int] = frozenset()  # ignored here, not in the container
    umask: Optional[int] = None
    oom_score_adj: Optional[int] = None
    setgroups: bool = True  # False in a user namespace that denies it (runc then skips it)
    warnings: tuple[str, ...] = ()


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as name -> value."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name] = value.strip()
    return out


def _signal_set(mask: str) -> frozenset[int]:
    bits = int(mask or "0", 16)
    return frozenset(n + 1 for n in range(64) if bits >> n & 1)


def parse_limits(text: str) -> dict[str, tuple[int, int]]:
    """/proc/PID/limits as resource name ("RLIMIT_NOFILE") -> (soft, hard)."""
    def value(word: str) -> int:
        return resource.RLIM_INFINITY if word == "unlimited" else int(word)

    out = {}
    for line in text.splitlines()[1:]:
        name = next((n for n in _LIMITS if line.startswith(n + " ")), None)
        words = line[len(name):].split() if name else []
        if name and len(words) >= 2:
            out[_LIMITS[name]] = (value(words[0]), value(words[1]))
    return out


def exec_label(apparmor: Optional[str], own_apparmor: Optional[str],
               selinux: Optional[str], own_selinux: Optional[str],
               apparmor_dir: bool) -> Optional[tuple[str, bytes]]:
    """What to write, and where, so that the next exec enters the container's LSM label.

    AppArmor labels read "docker-default (enforce)": the exec attribute takes
    "exec docker-default" (what aa_change_onexec writes). SELinux takes the context as
    it reads. Nothing when the container is unconfined or already has our label.
    `apparmor_dir`: the kernel has /proc/self/attr/apparmor/ (5.1+), else the shared
    /proc/self/attr/exec belongs to the one major LSM.
    """
    if apparmor is not None:
        profile = apparmor.strip().removesuffix(" (enforce)").removesuffix(" (complain)")
        if profile in ("", "unconfined") or apparmor == own_apparmor:
            return None
        where = "/proc/self/attr/apparmor/exec" if apparmor_dir else "/proc/self/attr/exec"
        return where, f"exec {profile}".encode()
    if selinux is not None:
        context = selinux.strip("\0\n ")
        if not context or selinux == own_selinux:
            return None
        return "/proc/self/attr/exec", context.encode()
    return None


def _lsm_labels(pid: int) -> tuple[Optional[str], Optional[str], Optional[str], Optional[str],
                                   bool]:
    """(AppArmor label of pid, ours, SELinux label of pid, ours, apparmor attr dir)."""
    if os.path.exists(f"/proc/{pid}/attr/apparmor/current"):
        theirs, mine = (_read(f"/proc/{p}/attr/apparmor/current") for p in (pid, "self"))
        return theirs, mine, None, None, True
    if _read("/sys/module/apparmor/parameters/enabled") == "Y\n":
        theirs, mine = (_read(f"/proc/{p}/attr/current") for p in (pid, "self"))
        return theirs, mine, None, None, False
    if os.path.exists("/sys/fs/selinux/enforce"):
        theirs, mine = (_read(f"/proc/{p}/attr/current") for p in (pid, "self"))
        return None, None, theirs, mine, False
    return None, None, None, None, False


def read_filters(pid: int, wait: float = 10.0) -> tuple[bytes, ...]:
    """The seccomp filters of `pid`, oldest first: the order to install them in.

    The kernel hands a filter only to a tracer that holds CAP_SYS_ADMIN and runs under
    no filter itself: the process is seized, interrupted, read and detached (it resumes
    the syscall it slept in). Another launch of this run may hold it for a moment.
    """
    if parse_status(_read(f"/proc/{pid}/status") or "").get("Seccomp") != "2":
        return ()
    if parse_status(_read("/proc/self/status") or "").get("Seccomp") != "0":
        raise ConfinementError(
            "the container's seccomp filter cannot be read because minify itself runs "
            "under seccomp (the kernel shows a filter only to an unconfined tracer): give "
            "minify's own container --security-opt seccomp=unconfined")
    _seize(pid, wait)
    try:
        os.waitpid(pid, _WALL)
        filters = []
        for index in itertools.count():
            try:
                count = ptrace(_PTRACE_SECCOMP_GET_FILTER, pid, index, 0)
            except PtraceError as exc:
                if exc.errno == errno.ENOENT:
                    break
                raise ConfinementError(f"reading the container's seccomp filter: {exc}") from exc
            buf = ctypes.create_string_buffer(count * _SOCK_FILTER_SIZE)
            ptrace(_PTRACE_SECCOMP_GET_FILTER, pid, index, ctypes.addressof(buf))
            filters.append(buf.raw)
        return tuple(filters)
    finally:
        ptrace(_PTRACE_DETACH, pid, 0, 0)


def _seize(pid: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            ptrace(_PTRACE_SEIZE, pid, 0, 0)
            ptrace(_PTRACE_INTERRUPT, pid, 0, 0)
            return
        except PtraceError as exc:
            tracer = parse_status(_read(f"/proc/{pid}/status") or "").get("TracerPid", "0")
            if exc.errno != errno.EPERM or tracer == "0" or time.monotonic() > deadline:
                raise ConfinementError(
                    f"cannot attach to the container's PID 1 to read its seccomp filter: "
                    f"{os.strerror(exc.errno or errno.EPERM)}") from exc
        time.sleep(0.01)  # another tracer of this run is reading it: poll, bounded


def _rlimits(theirs: dict[str, tuple[int, int]], may_raise: bool,
             warnings: list[str]) -> tuple[tuple[int, int, int], ...]:
    """The container's limits; a hard limit above ours is kept at ours (and said) where
    raising it needs CAP_SYS_RESOURCE that minify lacks: tighter, never looser."""
    out = []
    for name, (soft, hard) in sorted(theirs.items()):
        res = getattr(resource, name, None)
        if res is None:
            continue
        _, own_hard = resource.getrlimit(res)
        if not may_raise and _above(hard, own_hard):
            warnings.append(f"{name} is {hard} in the container but at most {own_hard} "
                            "here (raising it needs CAP_SYS_RESOURCE): the app gets the lower")
            hard = own_hard
            soft = soft if not _above(soft, hard) else hard
        out.append((res, soft, hard))
    return tuple(out)


def _above(a: int, b: int) -> bool:
    inf = resource.RLIM_INFINITY
    return a != b and (a == inf or (b != inf and a > b))


def read(pid: int) -> Confinement:
    """Everything that confines `pid` (the container's PID 1), ready for launch.py.

    Where no writable mount reaches the container's cgroups, the calling process (the
    tracer, a process of its own) mounts them in a mount namespace of its own.
    """
    status = parse_status(_read(f"/proc/{pid}/status") or "")
    if not status:
        raise ConfinementError(f"the container's PID 1 (host pid {pid}) is gone")
    own = parse_status(_read("/proc/self/status") or "")
    warnings: list[str] = []
    if own.get("Seccomp", "0") != "0":
        # The container has none (read_filters refuses the other case): what minify runs
        # under is inherited on top, so the app is stricter than under docker run.
        warnings.append("minify itself runs under a seccomp filter, which the traced app "
                        "inherits: syscalls it denies fail for the app too")
    try:
        cgroups = container_procs(pid)
    except CgroupError as exc:
        raise ConfinementError(str(exc)) from exc
    may_raise = bool(int(own.get("CapEff", "0"), 16) >> _CAP_SYS_RESOURCE & 1)
    oom = _read(f"/proc/{pid}/oom_score_adj")
    return Confinement(
        filters=read_filters(pid),
        cgroup_procs=cgroups,
        bounding=int(status["CapBnd"], 16),
        inheritable=int(status.get("CapInh", "0"), 16),
        no_new_privs=status.get("NoNewPrivs") == "1",
        exec_label=exec_label(*_lsm_labels(pid)),
        rlimits=_rlimits(parse_limits(_read(f"/proc/{pid}/limits") or ""), may_raise, warnings),
        ignored_signals=_signal_set(status.get("SigIgn", "0")),
        defaulted_signals=_signal_set(own.get("SigIgn", "0")) - _signal_set(
            status.get("SigIgn", "0")),
        umask=int(status["Umask"], 8) if "Umask" in status else None,
        oom_score_adj=int(oom) if oom and oom.strip().lstrip("-").isdigit() else None,
        setgroups=(_read(f"/proc/{pid}/setgroups") or "allow").strip() != "deny",
        warnings=tuple(warnings),
    )

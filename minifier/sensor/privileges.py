"""The confinement a launched child takes between fork and exec, prepared before fork.

Built from the container's Confinement (confine.py) and the launch's own part (the
tracer's seccomp filter, a bounding set to keep for a launch on the host). Every
ctypes object, fd and byte string exists before fork, so the child only makes system
calls, in the order launch.py gives: join cgroups, write its own /proc attributes,
(enter namespaces, stop for the tracer), limit, filter, capabilities.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from dataclasses import dataclass, field
from typing import Optional

from minifier.sensor import seccomp
from minifier.sensor.confine import Confinement, ConfinementError

__all__ = ["CAPABILITIES", "Libc", "Privileges", "prepare"]

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
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAP_VERSION_3 = 0x20080522
_SYS_RT_SIGACTION, _SYS_RT_SIGPROCMASK, _SIG_SETMASK = 13, 14, 2
_SIG_DFL, _SIG_IGN = 0, 1
# SIGKILL and SIGSTOP cannot be caught or ignored; 32 and 33 are glibc's own but still
# plain signals to the kernel, hence the raw rt_sigaction below.
_UNSETTABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _KernelSigaction(ctypes.Structure):
    """struct kernel_sigaction on x86_64 (what the raw syscall takes)."""

    _fields_ = [("handler", ctypes.c_ulong), ("flags", ctypes.c_ulong),
                ("restorer", ctypes.c_ulong), ("mask", ctypes.c_ulong)]


class Libc:
    """The libc functions the child calls, with their argument types set."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.setns = libc.setns
        self.setns.argtypes, self.setns.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        self.prctl = libc.prctl
        self.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        self.prctl.restype = ctypes.c_int
        self.capget, self.capset = libc.capget, libc.capset
        for f in (self.capget, self.capset):
            f.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
            f.restype = ctypes.c_int
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long
        self.umount2 = libc.umount2
        self.umount2.argtypes, self.umount2.restype = [ctypes.c_char_p, ctypes.c_int], ctypes.c_int


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@dataclass
class Privileges:
    """Everything the child applies; `fds` are closed by the parent after fork."""

    libc: Libc
    drop_caps: list[int]
    programs: list[seccomp.SeccompProgram]  # the tracer's first, then the container's
    confined: bool = False  # launched into a container: take all of the below
    cgroup_fds: list[int] = field(default_factory=list)
    attrs: list[tuple[str, bytes]] = field(default_factory=list)  # own /proc attributes
    rlimits: tuple[tuple[int, int, int], ...] = ()
    umask: Optional[int] = None
    ignore: tuple[int, ...] = ()
    default: tuple[int, ...] = ()
    no_new_privs: bool = False
    inheritable: int = 0
    fds: list[int] = field(default_factory=list)
    _cap_header: _CapHeader = field(default_factory=_CapHeader)
    _cap_data: ctypes.Array = field(default_factory=lambda: (_CapData * 2)())
    _actions: tuple[_KernelSigaction, _KernelSigaction] = field(
        default_factory=lambda: (_KernelSigaction(_SIG_DFL), _KernelSigaction(_SIG_IGN)))
    _empty_mask: ctypes.c_ulong = field(default_factory=ctypes.c_ulong)

    def join_cgroups(self) -> None:
        """Into the container's cgroup of every hierarchy: "0" moves the writer."""
        for fd in self.cgroup_fds:
            os.write(fd, b"0")

    def write_attrs(self) -> None:
        """The oom score and the LSM label of the next exec, through our own /proc
        (so before the container's mount namespace hides the host's). A lower oom
        score than ours needs CAP_SYS_RESOURCE: staying higher is only stricter."""
        for path, data in self.attrs:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            except PermissionError:
                if not path.endswith("/oom_score_adj"):
                    raise
            finally:
                os.close(fd)

    def limit(self) -> None:
        """rlimits, umask, signal dispositions and an empty signal mask."""
        for res, soft, hard in self.rlimits:
            resource.setrlimit(res, (soft, hard))
        if self.umask is not None:
            os.umask(self.umask)
        for action, signals in ((self._actions[0], self.default), (self._actions[1], self.ignore)):
            for sig in signals:
                rc = self.libc.syscall(_SYS_RT_SIGACTION, ctypes.c_long(sig),
                                       ctypes.byref(action), None, ctypes.c_long(8))
                check(rc, f"rt_sigaction({sig})")
        # Always: the tracer process blocks its stop signals (interrupt.py), and a
        # forked child inherits that mask.
        check(self.libc.syscall(_SYS_RT_SIGPROCMASK, ctypes.c_long(_SIG_SETMASK),
                                ctypes.byref(self._empty_mask), None, ctypes.c_long(8)),
              "rt_sigprocmask")

    def filter(self) -> None:
        if self.no_new_privs:
            check(self.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        for program in self.programs:
            seccomp.install(program)

    def capabilities(self) -> None:
        """Bounding set first (needs CAP_SETPCAP), then the inheritable set (capset) and
        no ambient capabilities, like the engine gives the container's processes."""
        for cap in self.drop_caps:
            check(self.libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "capbset drop")
        if not self.confined:
            return
        self._cap_header.version, self._cap_header.pid = _CAP_VERSION_3, 0
        check(self.libc.capget(ctypes.byref(self._cap_header), self._cap_data), "capget")
        self._cap_data[0].inheritable = self.inheritable & 0xFFFFFFFF
        self._cap_data[1].inheritable = self.inheritable >> 32
        check(self.libc.capset(ctypes.byref(self._cap_header), self._cap_data), "capset")
        check(self.libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
              "clear ambient")

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def _cap_numbers(names: tuple[str, ...]) -> set[int]:
    wanted = set()
    for name in names:
        short = name.upper().removeprefix("CAP_")
        if short not in CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}")
        wanted.add(CAPABILITIES.index(short))
    return wanted


def _caps_to_drop(keep: Optional[tuple[str, ...]], bounding: Optional[int]) -> list[int]:
    """Every capability outside both `keep` (names) and `bounding` (bits); [] for neither."""
    if keep is None and bounding is None:
        return []
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    wanted = set(range(last + 1))
    if keep is not None:
        wanted &= _cap_numbers(keep)
    if bounding is not None:
        wanted &= {c for c in range(last + 1) if bounding >> c & 1}
    return [cap for cap in range(last + 1) if cap not in wanted]


def prepare(conf: Optional[Confinement], keep_caps: Optional[tuple[str, ...]],
            trace_filter: Optional[bytes]) -> Privileges:
    """The child's privileges: only the bounding set and the tracer's filter without a
    Confinement (a launch on the host), all of the container's with one."""
    tracer = [seccomp.prepare(trace_filter)] if trace_filter is not None else []
    if conf is None:
        return Privileges(Libc(), _caps_to_drop(keep_caps, None), tracer)
    privs = Privileges(
        Libc(), _caps_to_drop(keep_caps, conf.bounding),
        tracer + [seccomp.prepare(bpf) for bpf in conf.filters], confined=True,
        rlimits=conf.rlimits, umask=conf.umask,
        ignore=tuple(sorted(set(conf.ignored_signals) - _UNSETTABLE)),
        default=tuple(sorted(set(conf.defaulted_signals) - _UNSETTABLE)),
        no_new_privs=conf.no_new_privs, inheritable=conf.inheritable)
    if conf.oom_score_adj is not None:
        privs.attrs.append(("/proc/self/oom_score_adj", str(conf.oom_score_adj).encode()))
    if conf.exec_label is not None:
        privs.attrs.append(conf.exec_label)
    try:
        for path in conf.cgroup_procs:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            privs.fds.append(fd)
            privs.cgroup_fds.append(fd)
    except OSError as exc:
        privs.close()
        raise ConfinementError(f"cannot write the container's cgroup ({exc.filename}): "
                               f"{exc.strerror}") from exc
    return privs

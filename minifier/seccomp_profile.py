"""A Docker-format seccomp profile allowing exactly the syscalls the app was seen making.

The syscalls come from the tracer's every-syscall mode (`--seccomp-profile` turns it on).
Added to them: what the container runtime itself still does after it has applied the
profile and before the app's first instruction (runc installs the filter, then execs).
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["RUNTIME_SYSCALLS", "build_profile"]

# Calls runc makes between installing the filter and the app's execve, plus the
# dynamic loader's start-up; seen missing in practice when only the app's calls are allowed.
RUNTIME_SYSCALLS = (
    "arch_prctl", "brk", "capget", "capset", "close", "execve", "exit", "exit_group",
    "fchdir", "fcntl", "fstat", "fstatfs", "futex", "getdents64", "getpid", "getppid",
    "mmap", "mprotect", "munmap", "newfstatat", "openat", "prctl", "pread64", "read",
    "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "set_robust_list",
    "set_tid_address", "setgid", "setgroups", "setuid", "prlimit64", "getrandom",
    "write", "access", "readlink", "uname", "sigaltstack", "nanosleep", "tgkill",
    "epoll_pwait", "waitid",
)


def build_profile(syscall_counts: Mapping[str, int]) -> dict:
    """The profile: deny by default (EPERM), allow what was seen plus the runtime's needs."""
    seen = {name for name, n in syscall_counts.items() if n > 0 and not name.startswith("i386:")}
    names = sorted(seen | set(RUNTIME_SYSCALLS))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
    }

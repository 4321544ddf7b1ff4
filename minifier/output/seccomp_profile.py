"""A Docker-format seccomp profile allowing exactly the syscalls the app was seen making.

The syscalls come from the tracer's every-syscall mode (`--seccomp-profile` turns it on),
which counts every syscall of the app and its children from the first instruction
after the app's execve. Two groups are added to them:

- RUNC_SYSCALLS: what the container runtime itself does after it has installed the
  filter and before the app's first instruction. Docker does not set no_new_privs, so
  runc (1.1) installs the filter early, *before* it closes inherited fds, drops
  capabilities, switches user and directory and execs the app; every one of those
  calls is then filtered too. Each name below was found by removing it from a working
  profile and starting a static do-nothing image under it (as root and as --user
  1000:1000); the comment quotes the error `docker run` printed without it.
- GO_RUNTIME_SYSCALLS: runc is a Go program. The Go scheduler makes these at moments
  that depend on load (thread wake-ups, preemption signals, heap growth): they were not
  needed in the experiment, but a missing one makes a container start fail at random.
- EXIT_SYSCALLS: the traced run ends with the image's StopSignal, but an app that does
  not stop within the grace period is killed (SIGKILL), and then its own exit and
  signal-handler return are never seen; `docker stop` needs them.

Nothing else is added: the app's dynamic loader and libc start-up happen after its
execve and are traced like the rest of the app.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["RUNC_SYSCALLS", "GO_RUNTIME_SYSCALLS", "EXIT_SYSCALLS", "RUNTIME_SYSCALLS",
           "ARCHITECTURES", "build_profile"]

# name -> why runc needs it after installing the filter (the error without it).
RUNC_SYSCALLS: Mapping[str, str] = {
    "openat": "close inherited fds: 'open /proc/self/fd: operation not permitted'",
    "fstatfs": "close inherited fds: 'ensure /proc/self/fd is on procfs'",
    "getdents64": "close inherited fds: 'readdirent /proc/self/fd'",
    "close": "close inherited fds / its log pipe: 'close log pipe fd 4'",
    "read": "capabilities: 'read /proc/self/status'",
    "capget": "capabilities: 'unable to start container process: operation not permitted'",
    "prctl": "drop the bounding set (PR_CAPBSET_DROP): 'unable to apply bounding set'",
    "capset": "apply the app's capabilities: 'unable to apply caps'",
    "fstat": "fix stdio ownership for the user: 'unable to setup user: fstat /dev/stdin'",
    "newfstatat": "user setup: 'unable to setup user: stat /dev/null'",
    "setgroups": "user setup: 'unable to setup user: setgroups'",
    "setgid": "user setup: 'unable to setup user'",
    "setuid": "user setup: 'unable to setup user'",
    "chdir": "the image's WorkingDir: 'chdir to cwd (\"/\") set in config.json failed'",
    "getcwd": "the cwd check (CVE-2024-21626): 'failed to verify if current working "
              "directory is safe'",
    # Go tries faccessat2 and falls back to faccessat on ENOSYS or EPERM: one of the two
    # is needed (faccessat2 is missing before Linux 5.8, faccessat may be filtered).
    "faccessat2": "look up the entrypoint (exec.LookPath); without both: 'exec /app: "
                  "operation not permitted'",
    "faccessat": "what faccessat2 falls back to (kernels older than 5.8)",
    "write": "tell the engine it is ready: 'cannot start an already running container'",
    "getppid": "check its parent is alive: 'no such process'",
    "futex": "Go runtime thread wake-ups: 'futexwakeup ... returned -1'",
    "execve": "start the app: 'exec /app: operation not permitted'",
}

GO_RUNTIME_SYSCALLS = (
    "rt_sigreturn", "rt_sigprocmask", "sigaltstack",  # signal delivery (preemption: SIGURG)
    "getpid", "gettid", "tgkill",  # asynchronous preemption sends SIGURG to a thread
    "nanosleep", "sched_yield",  # spinning and sleeping in the scheduler
    "mmap", "munmap", "madvise",  # heap growth and release
    "clone", "epoll_pwait",  # a new OS thread; the network poller
)

EXIT_SYSCALLS = ("exit", "exit_group", "rt_sigreturn", "restart_syscall")

RUNTIME_SYSCALLS = tuple(sorted(set(RUNC_SYSCALLS) | set(GO_RUNTIME_SYSCALLS)
                                | set(EXIT_SYSCALLS)))

# What `docker run` accepts for an x86_64 engine; i386 and x32 processes are not traced
# separately, so their syscalls are never allowed by name (the default action denies).
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")


def build_profile(syscall_counts: Mapping[str, int]) -> dict:
    """The profile: deny by default (EPERM), allow what was seen plus the runtime's needs.

    `syscall_counts` maps syscall names to how often the app made them; names of
    32-bit calls made by a 64-bit process ("i386:N") and unknown numbers ("syscall_N")
    are left out, since Docker's profile format cannot name them for x86_64.
    """
    seen = {name for name, n in syscall_counts.items()
            if n > 0 and not name.startswith(("i386:", "syscall_")) and ":" not in name}
    names = sorted(seen | set(RUNTIME_SYSCALLS))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": list(ARCHITECTURES),
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
    }

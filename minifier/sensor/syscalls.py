"""The x86_64 syscall table as data: which syscalls carry paths, in which arguments.

x86_64 only: the numbers and argument positions below are those of the x86_64 ABI
(not i386, not x32). The tracer reads this table to decide what to trap (seccomp.py)
and how to turn a trapped syscall's arguments into paths (tracer.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Optional

__all__ = [
    "AT_FDCWD",
    "AT_EMPTY_PATH",
    "PathSyscall",
    "PATH_SYSCALLS",
    "PATH_SYSCALLS_BY_NR",
    "SYSCALL_NAMES",
    "syscall_name",
]

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000

@dataclass(frozen=True)
class PathSyscall:
    """Where one syscall carries paths.

    `paths` holds one (dirfd argument index or None, path argument index) pair per path
    the syscall names; `fd_arg` is set instead when the path is that of an open fd.
    """

    name: str
    nr: int
    kind: str
    paths: tuple[tuple[Optional[int], int], ...] = ()
    fd_arg: Optional[int] = None


def _table(*rows: PathSyscall) -> Mapping[str, PathSyscall]:
    return MappingProxyType({r.name: r for r in rows})


def _p(name: str, nr: int, kind: str, *paths: tuple[Optional[int], int]) -> PathSyscall:
    return PathSyscall(name, nr, kind, tuple(paths))


def _fd(name: str, nr: int, kind: str, fd_arg: int) -> PathSyscall:
    return PathSyscall(name, nr, kind, (), fd_arg)


_CWD = None  # no dirfd argument: relative paths are resolved against the cwd

PATH_SYSCALLS: Mapping[str, PathSyscall] = _table(
    _p("open", 2, "open", (_CWD, 0)),
    _p("creat", 85, "open", (_CWD, 0)),
    _p("openat", 257, "open", (0, 1)),
    _p("openat2", 437, "open", (0, 1)),
    _p("uselib", 134, "open", (_CWD, 0)),
    _p("execve", 59, "exec", (_CWD, 0)),
    _p("execveat", 322, "exec", (0, 1)),
    _p("stat", 4, "stat", (_CWD, 0)),
    _p("lstat", 6, "stat", (_CWD, 0)),
    _p("newfstatat", 262, "stat", (0, 1)),
    _p("statx", 332, "stat", (0, 1)),
    _p("name_to_handle_at", 303, "stat", (0, 1)),
    _p("getxattr", 191, "stat", (_CWD, 0)),
    _p("lgetxattr", 192, "stat", (_CWD, 0)),
    _p("listxattr", 194, "stat", (_CWD, 0)),
    _p("llistxattr", 195, "stat", (_CWD, 0)),
    _p("getxattrat", 464, "stat", (0, 1)),
    _p("listxattrat", 465, "stat", (0, 1)),
    _p("file_getattr", 468, "stat", (0, 1)),
    # inotify_add_watch(fd, path, mask): the first argument is the inotify fd, not a dirfd.
    _p("inotify_add_watch", 254, "stat", (_CWD, 1)),
    _p("access", 21, "access", (_CWD, 0)),
    _p("faccessat", 269, "access", (0, 1)),
    _p("faccessat2", 439, "access", (0, 1)),
    _p("readlink", 89, "readlink", (_CWD, 0)),
    _p("readlinkat", 267, "readlink", (0, 1)),
    _p("chdir", 80, "chdir", (_CWD, 0)),
    _p("chroot", 161, "chdir", (_CWD, 0)),
    _fd("fchdir", 81, "chdir", 0),
    _fd("getdents64", 217, "list", 0),
    _fd("getdents", 78, "list", 0),
    _p("statfs", 137, "statfs", (_CWD, 0)),
    _p("mkdir", 83, "mutate", (_CWD, 0)),
    _p("mkdirat", 258, "mutate", (0, 1)),
    _p("mknod", 133, "mutate", (_CWD, 0)),
    _p("mknodat", 259, "mutate", (0, 1)),
    _p("unlink", 87, "mutate", (_CWD, 0)),
    _p("unlinkat", 263, "mutate", (0, 1)),
    _p("rmdir", 84, "mutate", (_CWD, 0)),
    _p("rename", 82, "mutate", (_CWD, 0), (_CWD, 1)),
    _p("renameat", 264, "mutate", (0, 1), (2, 3)),
    _p("renameat2", 316, "mutate", (0, 1), (2, 3)),
    _p("link", 86, "mutate", (_CWD, 0), (_CWD, 1)),
    _p("linkat", 265, "mutate", (0, 1), (2, 3)),
    # The symlink target is only a string stored in the new link, not an access.
    _p("symlink", 88, "mutate", (_CWD, 1)),
    _p("symlinkat", 266, "mutate", (1, 2)),
    _p("chmod", 90, "mutate", (_CWD, 0)),
    _p("fchmodat", 268, "mutate", (0, 1)),
    _p("fchmodat2", 452, "mutate", (0, 1)),
    _p("chown", 92, "mutate", (_CWD, 0)),
    _p("lchown", 94, "mutate", (_CWD, 0)),
    _p("fchownat", 260, "mutate", (0, 1)),
    _p("truncate", 76, "mutate", (_CWD, 0)),
    _p("utime", 132, "mutate", (_CWD, 0)),
    _p("utimes", 235, "mutate", (_CWD, 0)),
    _p("futimesat", 261, "mutate", (0, 1)),
    # utimensat with a NULL path acts on the dirfd itself (futimens); the tracer skips it.
    _p("utimensat", 280, "mutate", (0, 1)),
    _p("setxattr", 188, "mutate", (_CWD, 0)),
    _p("lsetxattr", 189, "mutate", (_CWD, 0)),
    _p("removexattr", 197, "mutate", (_CWD, 0)),
    _p("lremovexattr", 198, "mutate", (_CWD, 0)),
    _p("setxattrat", 463, "mutate", (0, 1)),
    _p("removexattrat", 466, "mutate", (0, 1)),
)

PATH_SYSCALLS_BY_NR: Mapping[int, PathSyscall] = MappingProxyType(
    {s.nr: s for s in PATH_SYSCALLS.values()}
)

# Every x86_64 syscall name in number order, generated once from
# /usr/include/x86_64-linux-gnu/asm/unistd_64.h (Linux 6.1) plus 451-469 from the
# kernel's syscall_64.tbl. Numbers 335-423 are unused on x86_64.
_NAMES_0 = """
    read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction
    rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select
    sched_yield mremap msync mincore madvise shmget shmat shmctl dup dup2 pause nanosleep
    getitimer alarm setitimer getpid sendfile socket connect accept sendto recvfrom sendmsg
    recvmsg shutdown bind listen getsockname getpeername socketpair setsockopt getsockopt
    clone fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd
    msgrcv msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir
    fchdir rename mkdir rmdir creat link unlink symlink readlink chmod fchmod chown fchown
    lchown umask gettimeofday getrlimit getrusage sysinfo times ptrace getuid syslog getgid
    setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid setregid getgroups
    setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid getsid
    capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack
    utime mknod uselib personality ustat statfs fstatfs sysfs getpriority setpriority
    sched_setparam sched_getparam sched_setscheduler sched_getscheduler
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock munlock
    mlockall munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex
    setrlimit chroot sync acct settimeofday mount umount2 swapon swapoff reboot sethostname
    setdomainname iopl ioperm create_module init_module delete_module get_kernel_syms
    query_module quotactl nfsservctl getpmsg putpmsg afs_syscall tuxcall security gettid
    readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr
    flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity
    sched_getaffinity set_thread_area io_setup io_destroy io_getevents io_submit io_cancel
    get_thread_area lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old
    remap_file_pages getdents64 set_tid_address restart_syscall semtimedop fadvise64
    timer_create timer_settime timer_gettime timer_getoverrun timer_delete clock_settime
    clock_gettime clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes
    vserver mbind set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive
    mq_notify mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set
    ioprio_get inotify_init inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat
    mknodat fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat
    fchmodat faccessat pselect6 ppoll unshare set_robust_list get_robust_list splice tee
    sync_file_range vmsplice move_pages utimensat epoll_pwait signalfd timerfd_create
    eventfd fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2
    epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open
    recvmmsg fanotify_init fanotify_mark prlimit64 name_to_handle_at open_by_handle_at
    clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv process_vm_writev kcmp
    finit_module sched_setattr sched_getattr renameat2 seccomp getrandom memfd_create
    kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2
    pwritev2 pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq
"""
_NAMES_424 = """
    pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount
    fsopen fsconfig fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd
    faccessat2 process_madvise epoll_pwait2 mount_setattr quotactl_fd
    landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
    process_mrelease futex_waitv set_mempolicy_home_node cachestat fchmodat2
    map_shadow_stack futex_wake futex_wait futex_requeue statmount listmount
    lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal setxattrat getxattrat
    listxattrat removexattrat open_tree_attr file_getattr file_setattr
"""


def _number_map() -> Mapping[int, str]:
    names = dict(enumerate(_NAMES_0.split()))
    names.update({424 + i: n for i, n in enumerate(_NAMES_424.split())})
    return MappingProxyType(names)


SYSCALL_NAMES: Mapping[int, str] = _number_map()


def syscall_name(nr: int) -> str:
    """The x86_64 name of syscall `nr`, or "syscall_NR" for numbers the table lacks."""
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")

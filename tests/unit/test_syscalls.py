"""The syscall table, the seccomp filter bytes and the launcher's pure helpers."""

from __future__ import annotations

import struct

from minifier.sensor import launch, privileges, seccomp
from minifier.sensor.syscalls import (
    PATH_SYSCALLS,
    PATH_SYSCALLS_BY_NR,
    SYSCALL_NAMES,
    syscall_name,
)

REQUIRED = """open openat openat2 creat execve execveat stat lstat newfstatat statx access
faccessat faccessat2 readlink readlinkat chdir fchdir getdents64 statfs mkdir mkdirat
unlink unlinkat rename renameat renameat2 rmdir link linkat symlink symlinkat chmod
fchmodat chown lchown fchownat truncate utimensat getxattr lgetxattr listxattr llistxattr
mknod mknodat name_to_handle_at uselib inotify_add_watch""".split()


def test_required_syscalls_present_with_valid_kinds():
    for name in REQUIRED:
        assert name in PATH_SYSCALLS, name
    assert "swapon" not in PATH_SYSCALLS
    # What an access means to the minifier: "open"/"exec" need the content, the others
    # only the path's existence (or, for "list", the directory's entries).
    kinds = {"open", "exec", "stat", "readlink", "list", "chdir", "statfs", "mutate", "access"}
    assert all(s.kind in kinds for s in PATH_SYSCALLS.values())
    assert len(PATH_SYSCALLS_BY_NR) == len(PATH_SYSCALLS)  # numbers are unique


def test_numbers_agree_with_the_full_table():
    for s in PATH_SYSCALLS.values():
        assert SYSCALL_NAMES[s.nr] == s.name
    known = {0: "read", 1: "write", 2: "open", 39: "getpid", 59: "execve", 217: "getdents64",
             257: "openat", 262: "newfstatat", 316: "renameat2", 332: "statx", 334: "rseq",
             424: "pidfd_send_signal", 435: "clone3", 437: "openat2", 439: "faccessat2",
             450: "set_mempolicy_home_node", 452: "fchmodat2"}
    for nr, name in known.items():
        assert SYSCALL_NAMES[nr] == name
    assert 335 not in SYSCALL_NAMES
    assert syscall_name(999) == "syscall_999"


def test_argument_positions():
    t = PATH_SYSCALLS
    assert (t["openat"].paths, t["openat"].kind) == (((0, 1),), "open")
    assert t["open"].paths == ((None, 0),)
    assert t["renameat2"].paths == ((0, 1), (2, 3))
    assert t["linkat"].paths == ((0, 1), (2, 3))
    assert t["rename"].paths == ((None, 0), (None, 1))
    assert t["symlinkat"].paths == ((1, 2),)  # the target string is not an access
    assert t["symlink"].paths == ((None, 1),)
    assert t["inotify_add_watch"].paths == ((None, 1),)
    assert (t["getdents64"].fd_arg, t["getdents64"].paths, t["getdents64"].kind) == (0, (), "list")
    assert (t["fchdir"].fd_arg, t["fchdir"].kind) == (0, "chdir")
    assert t["execve"].kind == "exec" and t["execveat"].paths == ((0, 1),)
    assert t["statfs"].kind == "statfs" and t["readlinkat"].kind == "readlink"
    assert t["faccessat2"].kind == "access" and t["unlinkat"].kind == "mutate"


def _decode(bpf: bytes) -> list[tuple[int, int, int, int]]:
    assert len(bpf) % 8 == 0
    return [struct.unpack("=HBBI", bpf[i:i + 8]) for i in range(0, len(bpf), 8)]


def _run_bpf(bpf: bytes, nr: int, arch: int = seccomp.AUDIT_ARCH_X86_64,
             args: tuple[int, ...] = (0,) * 6) -> int:
    """A tiny classic-BPF interpreter for the instructions build_filter emits."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)
    prog, pc, acc = _decode(bpf), 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x45:
            pc += jt if acc & k else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


def test_filter_traces_path_syscalls_only():
    bpf = seccomp.path_filter()
    trace, allow = seccomp.SECCOMP_RET_TRACE, seccomp.SECCOMP_RET_ALLOW
    for s in PATH_SYSCALLS.values():
        if s.name not in ("newfstatat", "statx"):
            assert _run_bpf(bpf, s.nr) == trace, s.name
    for nr in (0, 1, 3, 9, 39, 60, 231, 435):
        assert _run_bpf(bpf, nr) == allow
    # Another architecture (i386 through int 0x80) is allowed untraced.
    assert _run_bpf(bpf, 257, arch=0x40000003) == allow


def test_filter_skips_fstat_forms():
    bpf = seccomp.path_filter()
    trace, allow = seccomp.SECCOMP_RET_TRACE, seccomp.SECCOMP_RET_ALLOW
    assert _run_bpf(bpf, 262, args=(3, 0, 0, 0x1000, 0, 0)) == allow  # fstat via newfstatat
    assert _run_bpf(bpf, 262, args=(-100 & 0xFFFFFFFF, 1, 0, 0x100, 0, 0)) == trace  # lstat
    assert _run_bpf(bpf, 332, args=(3, 0, 0x1000, 0, 0, 0)) == allow
    assert _run_bpf(bpf, 332, args=(3, 0, 0, 0x7FF, 0, 0)) == trace


def test_build_filter_shape():
    insns = _decode(seccomp.build_filter([2, 257, 257]))
    assert insns[0] == (0x20, 0, 0, 4) and insns[3] == (0x20, 0, 0, 0)
    assert insns[-2:] == [(0x06, 0, 0, seccomp.SECCOMP_RET_ALLOW),
                          (0x06, 0, 0, seccomp.SECCOMP_RET_TRACE)]
    assert len(insns) == 4 + 2 + 2
    prog = seccomp.prepare(seccomp.build_filter([2]))
    assert prog.fprog.len == 7


def test_path_candidates_follow_the_spec_path():
    assert launch.resolve_candidates("/bin/x", ()) == ["/bin/x"]
    assert launch.resolve_candidates("./x", ()) == ["./x"]
    assert launch.resolve_candidates("x", ("PATH=/a:/b",)) == ["/a/x", "/b/x"]
    assert launch.resolve_candidates("x", ("PATH=/a::/b",)) == ["/a/x", "x", "/b/x"]
    default = launch.resolve_candidates("x", ("HOME=/root",))
    assert default[0] == "/usr/local/sbin/x" and default[-1] == "/bin/x"


def test_capability_names():
    assert privileges.CAPABILITIES[0] == "CHOWN"
    assert privileges.CAPABILITIES[21] == "SYS_ADMIN"
    assert privileges.CAPABILITIES[40] == "CHECKPOINT_RESTORE"

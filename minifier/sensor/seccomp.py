"""A seccomp filter that makes only path-bearing syscalls stop for the tracer.

With SECCOMP_RET_TRACE the kernel reports a PTRACE_EVENT_SECCOMP stop for the listed
syscalls and lets every other syscall run at full speed, so tracing costs almost
nothing for compute- or network-bound code. x86_64 only: other architectures (and
i386 syscalls made by an x86_64 process) are allowed untraced.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Callable, Optional

from minifier.sensor.syscalls import AT_EMPTY_PATH, PATH_SYSCALLS

__all__ = [
    "AUDIT_ARCH_X86_64",
    "SECCOMP_RET_ALLOW",
    "SECCOMP_RET_TRACE",
    "SeccompProgram",
    "build_filter",
    "path_filter",
    "prepare",
    "install",
]

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

# Classic BPF opcodes (linux/filter.h).
_BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_BPF_RET_K = 0x06  # BPF_RET | BPF_K
# Offsets in struct seccomp_data.
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARGS = 16

_SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter {u16 code; u8 jt, jf; u32 k}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return _SOCK_FILTER.pack(code, jt, jf, k)


def build_filter(
    numbers: Iterable[int], skip_flag: Optional[Mapping[int, tuple[int, int]]] = None
) -> bytes:
    """The BPF program (packed `struct sock_filter`s) returning TRACE for `numbers`.

    `skip_flag` maps a syscall number to (argument index, mask): that syscall is
    allowed untraced when its argument has a bit of the mask set.
    """
    skip_flag = skip_flag or {}
    nrs = sorted(set(numbers) - set(skip_flag))
    if len(nrs) > 250:  # jump offsets are 8-bit
        raise ValueError("too many syscalls for a linear BPF filter")
    prog = [
        _insn(_BPF_LD_W_ABS, _OFF_ARCH),
        _insn(_BPF_JEQ_K, AUDIT_ARCH_X86_64, jt=1, jf=0),
        _insn(_BPF_RET_K, SECCOMP_RET_ALLOW),
        _insn(_BPF_LD_W_ABS, _OFF_NR),
    ]
    for nr, (arg, mask) in sorted(skip_flag.items()):
        # Not this syscall: jump over the 4 instructions of the block. The flag words
        # are ints, so the low 32 bits (little-endian: the first word) are enough.
        prog += [
            _insn(_BPF_JEQ_K, nr, jt=0, jf=4),
            _insn(_BPF_LD_W_ABS, _OFF_ARGS + 8 * arg),
            _insn(_BPF_JSET_K, mask, jt=0, jf=1),
            _insn(_BPF_RET_K, SECCOMP_RET_ALLOW),
            _insn(_BPF_RET_K, SECCOMP_RET_TRACE),
        ]
    n = len(nrs)
    # Layout after the blocks: n compares, RET ALLOW, RET TRACE; compare i jumps n - i
    # forward to land on RET TRACE.
    prog += [_insn(_BPF_JEQ_K, nr, jt=n - i, jf=0) for i, nr in enumerate(nrs)]
    prog += [_insn(_BPF_RET_K, SECCOMP_RET_ALLOW), _insn(_BPF_RET_K, SECCOMP_RET_TRACE)]
    return b"".join(prog)


def path_filter() -> bytes:
    """The filter for every syscall in syscalls.PATH_SYSCALLS.

    fstat() is newfstatat(fd, "", AT_EMPTY_PATH) in glibc >= 2.33 (and statx with
    AT_EMPTY_PATH in Rust): a quarter of the stops of a Python start-up, and it names
    only a file that was already opened (and recorded then). So those two syscalls are
    not trapped when AT_EMPTY_PATH is set, at the cost of missing the rare call that
    passes both a non-empty name and AT_EMPTY_PATH.
    """
    skip = {
        PATH_SYSCALLS["newfstatat"].nr: (3, AT_EMPTY_PATH),
        PATH_SYSCALLS["statx"].nr: (2, AT_EMPTY_PATH),
    }
    return build_filter((s.nr for s in PATH_SYSCALLS.values()), skip)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@dataclass(frozen=True)
class SeccompProgram:
    """Every ctypes object `install` needs, built before fork so the child allocates
    and loads nothing."""

    buffer: ctypes.Array  # keeps the instructions alive while fprog points at them
    fprog: _SockFprog
    prctl: Callable[..., int]


def prepare(bpf: bytes) -> SeccompProgram:
    """Wrap a filter from `build_filter` for `install`."""
    if len(bpf) % _SOCK_FILTER.size:
        raise ValueError("not a whole number of sock_filter instructions")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    fprog = _SockFprog(len(bpf) // _SOCK_FILTER.size, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                      ctypes.c_ulong]
    return SeccompProgram(buf, fprog, prctl)


def install(prog: SeccompProgram) -> None:
    """Install the filter on the calling thread (inherited by children and across exec).

    Needs CAP_SYS_ADMIN or no_new_privs: the launcher has the first and sets the second
    only where the container has it, since no_new_privs would stop setuid binaries in
    the app (su, ping) from working as they do under `docker run`.
    """
    if prog.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog.fprog), 0, 0):
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter install failed: {os.strerror(err)}")

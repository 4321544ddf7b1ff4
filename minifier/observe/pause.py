"""The container's stand-in PID 1: a tiny static x86_64 program, generated as bytes.

The traced app is started from the host inside the container's namespaces, so the
container's own PID 1 only has to exist, reap orphans and leave on SIGTERM/SIGINT. It
works in any image (no shell, no libc needed) and is copied into the container, so
nothing of it lands in the image. Assembly (Intel syntax), one instruction per line:

    mov eax, 14; xor edi, edi; lea rsi, [rip+set]; xor edx, edx; mov r10d, 8; syscall
        ; rt_sigprocmask(SIG_BLOCK, {CHLD,TERM,INT}): keep them pending for sigtimedwait
  reap:
    mov eax, 61; mov rdi, -1; xor esi, esi; mov edx, 1; xor r10d, r10d; syscall
    test rax, rax; jg reap          ; wait4(-1, NULL, WNOHANG) until nothing is left
    mov eax, 128; lea rdi, [rip+set]; xor esi, esi; xor edx, edx; mov r10d, 8; syscall
        ; rt_sigtimedwait(set): sleep until a child exits or we are asked to stop
    cmp eax, 15; je done; cmp eax, 2; je done; jmp reap
  done:
    mov eax, 60; xor edi, edi; syscall   ; exit(0)
  set: .quad 1<<16 | 1<<14 | 1<<1
"""

from __future__ import annotations

import struct

__all__ = ["pause_binary"]

_CODE = bytes.fromhex(
    "b80e000000" "31ff" "488d3554000000" "31d2" "41ba08000000" "0f05"
    "b83d000000" "48c7c7ffffffff" "31f6" "ba01000000" "4531d2" "0f05"
    "4885c0" "7fe3"
    "b880000000" "488d3d21000000" "31f6" "31d2" "41ba08000000" "0f05"
    "83f80f" "7407" "83f802" "7402" "ebbf"
    "b83c000000" "31ff" "0f05"
    "0240010000000000"
)
_BASE = 0x400000
_EHDR_SIZE = 64
_PHDR_SIZE = 56


def pause_binary() -> bytes:
    """Return the ELF64 executable: one header, one R+X PT_LOAD segment, the code."""
    code_off = _EHDR_SIZE + _PHDR_SIZE
    total = code_off + len(_CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        62,  # EM_X86_64
        1,
        _BASE + code_off,  # entry
        _EHDR_SIZE,  # phoff
        0,  # shoff
        0,
        _EHDR_SIZE,
        _PHDR_SIZE,
        1,  # phnum
        0,
        0,
        0,
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)
    return ehdr + phdr + _CODE


"""What the dynamic loader reads of an ELF file: PT_INTERP and the PT_DYNAMIC entries.

Parsed from the program headers only, the way ld.so does it (section headers may be
stripped and sit at the end of the file, where a tar stream has already passed), so the
index pass can read the loader's view of every ELF member as it streams by: a member's
first bytes are kept in memory and later ranges are read forward on demand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO, Optional

from minifier.errors import ImageError

__all__ = ["ELF_MAGIC", "ElfInfo", "elf_info", "elf_info_streamed", "BehindStream"]

ELF_MAGIC = b"\x7fELF"
PREFIX_MAX = 8 << 20  # bytes of a streamed member kept for reads behind the stream position
_MAX_STRING = 4096
# Bounds for untrusted files; real ones stay far below (libc: 2 phdr KiB, 0.5 KiB of
# dynamic entries, under 100 bytes of needed names).
_MAX_PHDRS = 64 << 10
_MAX_DYNAMIC = 64 << 10
_MAX_STRINGS = 16 << 10
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = (
    0, 1, 5, 10, 14, 15, 29)
_DT_FLAGS_1, _DF_1_NODEFLIB = 0x6FFFFFFB, 0x800
_MACHINES = {3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390",
             40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV"}


@dataclass(frozen=True)
class ElfInfo:
    """The loader's view of one ELF file."""

    interp: Optional[str]
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    machine: str  # "EM_X86_64", ...
    is_static: bool
    soname: str = ""
    bits: int = 64  # ELF class: 32 or 64
    nodeflib: bool = False  # DF_1_NODEFLIB: no ld.so.cache, no default dirs for its needs


class BehindStream(Exception):
    """A streamed member's bytes needed now were passed (and not kept): parse it by path."""


class _Seekable:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    def pread(self, off: int, n: int) -> bytes:
        self.f.seek(off)
        return self.f.read(n)


class _Forward:
    """Reads at offsets over a forward-only stream: the first PREFIX_MAX bytes are kept,
    later ranges are read when asked for and only the last one is remembered."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.prefix = bytearray(head)
        self.rest = rest
        self.pos = len(head)  # bytes consumed from the member
        self.window = (0, b"")

    def _take(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.rest.read(min(n - len(out), 1 << 20))
            if not chunk:
                break
            out += chunk
        self.pos += len(out)
        return bytes(out)

    def pread(self, off: int, n: int) -> bytes:
        end = off + n
        if end <= len(self.prefix):
            return bytes(self.prefix[off:end])
        if off < PREFIX_MAX and self.pos == len(self.prefix):
            self.prefix += self._take(end - len(self.prefix))
            return bytes(self.prefix[off:end])
        start, data = self.window
        if start <= off and end <= start + len(data):
            return data[off - start:end - start]
        if off < self.pos:
            raise BehindStream(f"offset {off} already passed")
        if self.pos == len(self.prefix) < PREFIX_MAX:  # keep the prefix before skipping
            self.prefix += self._take(min(PREFIX_MAX, off) - self.pos)
        self._take(off - self.pos)
        self.window = (off, self._take(n))
        return self.window[1]


def elf_info(f: IO[bytes]) -> ElfInfo:
    """Parse a seekable ELF file; raises ImageError when it is not a valid ELF."""
    return _parse(_Seekable(f))


def elf_info_streamed(head: bytes, rest: IO[bytes]) -> ElfInfo:
    """Parse an ELF member while it streams by: `head` is its first bytes, `rest` the
    remainder. Raises BehindStream when a needed range lies behind the kept prefix."""
    return _parse(_Forward(head, rest))


def _parse(r) -> ElfInfo:
    try:
        return _parse_checked(r)
    except struct.error as e:
        raise ImageError(f"not a valid ELF file: truncated ({e})") from e


def _parse_checked(r) -> ElfInfo:
    ident = r.pread(0, 64)
    if len(ident) < 16 or ident[:4] != ELF_MAGIC or ident[4] not in (1, 2) \
            or ident[5] not in (1, 2):
        raise ImageError("not a valid ELF file: bad identification bytes")
    bits = 64 if ident[4] == 2 else 32
    e = "<" if ident[5] == 1 else ">"
    machine_no = struct.unpack_from(e + "H", ident, 18)[0]
    if bits == 64:
        phoff, = struct.unpack_from(e + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", ident, 54)
        ph_fmt, dyn_fmt = e + "IIQQQQQQ", e + "qQ"
    else:
        phoff, = struct.unpack_from(e + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", ident, 42)
        ph_fmt, dyn_fmt = e + "IIIIIIII", e + "iI"
    if phnum == 0xFFFF or phentsize < struct.calcsize(ph_fmt) or phentsize * phnum > _MAX_PHDRS:
        raise ImageError("not a valid ELF file: unsupported program header table")
    table = r.pread(phoff, phentsize * phnum)
    loads, interp, dynamic = [], None, None
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, table, i * phentsize)
        if bits == 64:
            p_type, _, offset, vaddr, _, filesz, _, _ = fields
        else:
            p_type, offset, vaddr, _, filesz, _, _, _ = fields
        if p_type == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == _PT_INTERP:
            interp = _cstr(r.pread(offset, min(filesz, _MAX_STRING)))
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, min(filesz, _MAX_DYNAMIC))
    machine = _MACHINES.get(machine_no, f"EM_{machine_no}")
    tags = _dynamic(r, dynamic, dyn_fmt) if dynamic else []
    return _info(r, interp, tags, loads, machine, bits)


def _dynamic(r, where: tuple[int, int], fmt: str) -> list[tuple[int, int]]:
    data = r.pread(*where)
    size = struct.calcsize(fmt)
    tags = []
    for i in range(len(data) // size):
        tag, val = struct.unpack_from(fmt, data, i * size)
        if tag == _DT_NULL:
            break
        tags.append((tag, val))
    return tags


def _info(r, interp, tags, loads, machine: str, bits: int) -> ElfInfo:
    values: dict[int, list[int]] = {}
    for tag, val in tags:
        values.setdefault(tag, []).append(val)
    strtab = _file_offset(loads, values.get(_DT_STRTAB, [None])[0])
    if strtab is None and any(t in values for t in (_DT_NEEDED, _DT_SONAME, _DT_RPATH,
                                                     _DT_RUNPATH)):
        raise ImageError("not a valid ELF file: DT_STRTAB outside every PT_LOAD segment")

    total = 0

    def strings(tag: int) -> list[str]:
        nonlocal total
        out = [_cstr(r.pread(strtab + v, _MAX_STRING)) for v in values.get(tag, [])]
        total += sum(len(s) for s in out)
        if total > _MAX_STRINGS:
            raise ImageError(f"ELF file with over {_MAX_STRINGS} bytes of library names and "
                             "search paths: its needs are not followed")
        return out

    def paths(tag: int) -> tuple[str, ...]:
        return tuple(p for s in strings(tag) for p in s.split(":") if p)

    needed = tuple(strings(_DT_NEEDED))
    soname = (strings(_DT_SONAME) or [""])[0]
    flags_1 = values.get(_DT_FLAGS_1, [0])[0]
    return ElfInfo(
        interp=interp, needed=needed, rpath=paths(_DT_RPATH), runpath=paths(_DT_RUNPATH),
        machine=machine, is_static=interp is None and not needed, soname=soname, bits=bits,
        nodeflib=bool(flags_1 & _DF_1_NODEFLIB))


def _file_offset(loads, vaddr: Optional[int]) -> Optional[int]:
    if vaddr is None:
        return None
    for start, offset, filesz in loads:
        if start <= vaddr < start + filesz:
            return vaddr - start + offset
    return None


def _cstr(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

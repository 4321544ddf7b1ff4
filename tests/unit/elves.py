"""ELF files for the tests: real ones built by gcc, and tiny crafted ones for the formats
this machine's gcc cannot produce (32-bit, big-endian) and for broken files."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path


def gcc_elf(tmp_path: Path, name: str, *, shared: bool = False, soname: str = "",
            needs=(), link_dirs=(), flags=()) -> bytes:
    """A program or shared library whose DT_NEEDED are exactly `needs` (plus libc)."""
    ident = re.sub(r"\W", "_", name)
    src = tmp_path / f"{ident}.c"
    src.write_text(f"int f_{ident}(void) {{ return 1; }}\n"
                   + ("" if shared else "int main(void) { return 0; }\n"))
    out = tmp_path / name
    cmd = ["gcc", "-o", str(out), str(src)]
    if shared:
        cmd += ["-shared", "-fPIC"] + ([f"-Wl,-soname,{soname}"] if soname else [])
    cmd += ["-Wl,--no-as-needed"]
    for d in link_dirs:
        cmd += [f"-L{d}", f"-Wl,-rpath-link,{d}"]
    cmd += [f"-l:{n}" for n in needs] + list(flags)
    subprocess.run(cmd, check=True, capture_output=True)
    return out.read_bytes()


def tiny_elf(bits: int = 64, big: bool = False, machine: int = 62, interp: str = "",
             needed=(), soname: str = "", rpath: str = "", runpath: str = "",
             flags_1: int = 0, strtab_outside: bool = False) -> bytes:
    """A minimal ELF: one PT_LOAD over the whole file, PT_INTERP, PT_DYNAMIC, a strtab."""
    e = ">" if big else "<"
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    nph = 3 if interp else 2
    strtab = b"\0"
    offsets = {}
    for s in (*needed, soname, rpath, runpath):
        if s and s not in offsets:
            offsets[s] = len(strtab)
            strtab += s.encode() + b"\0"
    interp_b = interp.encode() + b"\0" if interp else b""
    interp_off = ehsize + phentsize * nph
    strtab_off = interp_off + len(interp_b)
    dyn_off = strtab_off + len(strtab)
    tags = [(1, offsets[n]) for n in needed]
    tags += [(14, offsets[soname])] if soname else []
    tags += [(15, offsets[rpath])] if rpath else []
    tags += [(29, offsets[runpath])] if runpath else []
    tags += [(0x6FFFFFFB, flags_1)] if flags_1 else []
    tags += [(5, strtab_off + (1 << 20 if strtab_outside else 0)), (10, len(strtab)), (0, 0)]
    dyn_fmt = e + ("qQ" if bits == 64 else "iI")
    dyn = b"".join(struct.pack(dyn_fmt, t, v) for t, v in tags)
    total = dyn_off + len(dyn)

    def phdr(p_type, off, size):
        if bits == 64:
            return struct.pack(e + "IIQQQQQQ", p_type, 5, off, off, off, size, size, 8)
        return struct.pack(e + "IIIIIIII", p_type, off, off, off, size, size, 5, 4)

    phdrs = phdr(1, 0, total) + (phdr(3, interp_off, len(interp_b)) if interp else b"")
    phdrs += phdr(2, dyn_off, len(dyn))
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 2 if big else 1, 1]) + b"\0" * 9
    if bits == 64:
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0,
                                     ehsize, phentsize, nph, 64, 0, 0)
    else:
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0,
                                     ehsize, phentsize, nph, 40, 0, 0)
    return header + phdrs + interp_b + strtab + dyn

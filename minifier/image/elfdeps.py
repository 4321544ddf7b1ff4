"""ELF dynamic dependencies, searched the way ld.so would but entirely inside the image.

`elf_info` reads PT_INTERP and the dynamic section with pyelftools; `load_ld_cache`
parses the image's own /etc/ld.so.cache (or ld.so.conf / musl path files when there is
no cache); `resolve_needed` applies ld.so's search order (RPATH, LD_LIBRARY_PATH,
RUNPATH, cache, default dirs) with `$ORIGIN` expansion and image-root symlink walking.
"""

from __future__ import annotations

import fnmatch
import posixpath
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Optional

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from minifier.errors import ImageError
from minifier.image.imagefs import ImageFS

__all__ = ["ElfInfo", "LdCache", "elf_info", "load_ld_cache", "parse_ld_cache", "resolve_needed"]

ELF_MAGIC = b"\x7fELF"
DEFAULT_DIRS = (
    "/lib64",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
)
MUSL_DEFAULT_DIRS = ("/lib", "/usr/local/lib", "/usr/lib")
_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
_HEADER = struct.Struct("<20sIIB3xI12x")  # magic, nlibs, len_strings, flags, ext_offset
_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
# ld.so.cache flag words (type | arch) per e_machine, so i386 libs never satisfy x86-64.
_ARCH_FLAGS = {"EM_X86_64": 0x0303, "EM_AARCH64": 0x0A03, "EM_386": 0x0003}


@dataclass(frozen=True)
class ElfInfo:
    interp: Optional[str]
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    machine: str
    is_static: bool


@dataclass(frozen=True)
class LdCache:
    """Library name -> [(flags, path)] from ld.so.cache, plus config-derived dirs."""

    entries: Mapping[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()  # ld.so.conf dirs (no cache) or musl path file dirs
    musl: bool = False


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.split(":") if p)


def elf_info(stream: IO[bytes]) -> ElfInfo:
    """Parse a seekable ELF stream; raises ImageError when it is not a valid ELF."""
    try:
        elf = ELFFile(stream)
        interp, needed, rpath, runpath = None, [], [], []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
        for sec in elf.iter_sections():
            if not isinstance(sec, DynamicSection):
                continue
            for tag in sec.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)
                elif tag.entry.d_tag == "DT_RPATH":
                    rpath.extend(_split_paths(tag.rpath))
                elif tag.entry.d_tag == "DT_RUNPATH":
                    runpath.extend(_split_paths(tag.runpath))
        machine = elf["e_machine"]
    except (ELFError, struct.error, ValueError) as e:
        raise ImageError(f"not a valid ELF file: {e}") from e
    return ElfInfo(
        interp=interp,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        machine=machine,
        is_static=interp is None and not needed,
    )


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off : end if end >= 0 else len(data)].decode("utf-8", "surrogateescape")


def parse_ld_cache(data: bytes) -> dict[str, tuple[tuple[int, str], ...]]:
    """Entries of a glibc "glibc-ld.so.cache1.1" file (standalone or after the old format).

    Entries with hwcap bits (glibc-hwcaps subdirs) come after the baseline ones so the
    first match is the library every CPU can load.
    """
    base = data.find(_CACHE_MAGIC)
    if base < 0 or len(data) < base + _HEADER.size:
        return {}
    _, nlibs, _, _, _ = _HEADER.unpack_from(data, base)
    found: dict[str, list[tuple[int, int, str]]] = {}
    off = base + _HEADER.size
    for _ in range(nlibs):
        if off + _ENTRY.size > len(data):
            break
        flags, key, value, _, hwcap = _ENTRY.unpack_from(data, off)
        off += _ENTRY.size
        # String offsets are relative to the new-format header.
        found.setdefault(_cstr(data, base + key), []).append(
            (hwcap != 0, flags, _cstr(data, base + value))
        )
    return {k: tuple((f, p) for _, f, p in sorted(v, key=lambda t: t[0])) for k, v in found.items()}


def _conf_dirs(fs: ImageFS, path: str, depth: int = 0) -> list[str]:
    """Dirs listed in an ld.so.conf, following `include` globs (captured files only)."""
    data = fs.content(path)
    if data is None or depth > 8:
        return []
    dirs: list[str] = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include "):
            pattern = posixpath.join(posixpath.dirname(path), line.split(None, 1)[1].strip())
            parent = posixpath.dirname(pattern)
            for child in fs.children(parent):
                if fnmatch.fnmatchcase(child, pattern):
                    dirs.extend(_conf_dirs(fs, child, depth + 1))
        elif line.startswith("hwcap "):
            continue
        else:
            dirs.append(line.split("=", 1)[0])  # old "dir=TYPE" syntax
    return dirs


def load_ld_cache(fs: ImageFS) -> LdCache:
    """The image's library lookup config: ld.so.cache, else ld.so.conf, else musl path."""
    musl_files = [p for p in fs.children("/etc") if fnmatch.fnmatchcase(p, "/etc/ld-musl-*.path")]
    musl = any(p.startswith("/lib/ld-musl-") for p in fs.children("/lib"))
    if musl_files or musl:
        dirs: list[str] = []
        for p in musl_files:
            for raw in (fs.content(p) or b"").decode("utf-8", "replace").replace(":", "\n").split():
                dirs.append(raw)
        return LdCache({}, tuple(dirs), musl=True)
    data = fs.content("/etc/ld.so.cache")
    entries = parse_ld_cache(data) if data else {}
    if entries:
        return LdCache(entries, ())
    return LdCache({}, tuple(_conf_dirs(fs, "/etc/ld.so.conf")))


def _expand(d: str, origin: str) -> str:
    for token in ("${ORIGIN}", "$ORIGIN"):
        d = d.replace(token, origin)
    return d


def _find_in(fs: ImageFS, dirs: Sequence[str], name: str) -> Optional[str]:
    for d in dirs:
        if not d.startswith("/"):
            continue  # relative search dirs are relative to the cwd at run time: unknowable
        cand = posixpath.normpath(posixpath.join(d, name))
        res = fs.resolve(cand)
        if res.final is not None:
            e = fs.lookup(res.final)
            if e is not None and e.type in ("file", "hardlink"):
                return cand
    return None


def _from_cache(fs: ImageFS, cache: LdCache, name: str, machine: str) -> Optional[str]:
    want = _ARCH_FLAGS.get(machine)
    for flags, path in cache.entries.get(name, ()):
        if want is not None and flags & 0xFFFF != want:
            continue
        if fs.resolve(path).final is not None:
            return path
    return None


def resolve_needed(
    fs: ImageFS,
    elf_path: str,
    info: ElfInfo,
    ld_cache: LdCache,
    env: Sequence[str] = (),
) -> list[tuple[str, Optional[str]]]:
    """Each DT_NEEDED name with the image path ld.so would open (None: not found).

    The returned path is the one ld.so opens (e.g. /lib/x86_64-linux-gnu/libc.so.6),
    possibly through symlinks: callers keep the symlinks with `fs.resolve(path).via`.
    """
    origin = posixpath.dirname(elf_path)
    ld_library_path = next((e[16:] for e in env if e.startswith("LD_LIBRARY_PATH=")), "")
    before = [] if info.runpath else list(info.rpath)  # RUNPATH disables RPATH
    before += _split_paths(ld_library_path)
    before += info.runpath
    before = [_expand(d, origin) for d in before]
    defaults = MUSL_DEFAULT_DIRS if ld_cache.musl else DEFAULT_DIRS
    out: list[tuple[str, Optional[str]]] = []
    for name in info.needed:
        if "/" in name:
            found = _find_in(fs, ["/"], _expand(name, origin).lstrip("/"))
        else:
            found = (
                _find_in(fs, before, name)
                or _from_cache(fs, ld_cache, name, info.machine)
                or _find_in(fs, ld_cache.dirs, name)
                or _find_in(fs, defaults, name)
            )
        out.append((name, found))
    return out

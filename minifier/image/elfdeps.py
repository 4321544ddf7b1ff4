"""ELF dynamic dependencies, searched the way the image's own loader would, inside the image.

glibc's ld.so (`_dl_map_object`) looks a DT_NEEDED name up in: the DT_RPATH of the object
and of every object that loaded it up to the program (only when the object has no
DT_RUNPATH), LD_LIBRARY_PATH, the object's own DT_RUNPATH, /etc/ld.so.cache, then the
system directories (the last two skipped for DF_1_NODEFLIB objects); every directory's
`glibc-hwcaps/x86-64-v4..v2` subdirectories come before the directory itself. musl's loader
maps its own names (libc.so, libm.so, ...) to itself, then searches LD_LIBRARY_PATH, the
RPATH/RUNPATH chain and the directories of `<prefix>/etc/ld-musl-ARCH.path` (default
/lib:/usr/local/lib:/usr/lib). A name already loaded by the app (a library it dlopen'ed by
path, seen by the tracer) also satisfies a need. `$ORIGIN`, `$LIB` and `$PLATFORM` are
expanded, relative entries are taken from the working directory, candidates of another
ELF class or machine are skipped like the loader skips them, and every path is walked
inside the image root.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from minifier.image.elffile import ElfInfo

if TYPE_CHECKING:
    from minifier.image.imagefs import ImageFS

__all__ = ["CacheEntry", "LdCache", "Search", "Needed", "load_ld_cache", "parse_ld_cache",
           "resolve_needed", "root_search", "child_search", "musl_path_file", "env_value",
           "preload_names"]

_DEFAULT_DIRS = {
    ("EM_X86_64", 64): ("/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu",
                        "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"),
    ("EM_386", 32): ("/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu", "/lib32", "/usr/lib32",
                     "/lib", "/usr/lib"),
    ("EM_AARCH64", 64): ("/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64",
                         "/usr/lib64", "/lib", "/usr/lib"),
}
_OTHER_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")
MUSL_DEFAULT_DIRS = ("/lib", "/usr/local/lib", "/usr/lib")
# musl's loader answers these names itself ("c.pthread.rt.m.dl.util.xnet." in ldso).
_MUSL_SELF = ("c", "pthread", "rt", "m", "dl", "util", "xnet")
_HWCAPS = {("EM_X86_64", 64): ("x86-64-v4", "x86-64-v3", "x86-64-v2")}
_LIB = {("EM_X86_64", 64): ("lib/x86_64-linux-gnu", "lib64"), ("EM_386", 32): (
    "lib/i386-linux-gnu", "lib"), ("EM_AARCH64", 64): ("lib/aarch64-linux-gnu", "lib64")}
_PLATFORM = {"EM_X86_64": ("x86_64", "haswell", "xeon_phi"), "EM_386": ("i686", "i586", "i386"),
             "EM_AARCH64": ("aarch64",)}
_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
_HEADER = struct.Struct("<20sIIB3xI12x")  # magic, nlibs, len_strings, flags, ext_offset
_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
# ld.so.cache flag words (type | arch) per machine and class, so i386 or x32 libraries
# never satisfy x86-64 programs.
_ARCH_FLAGS = {("EM_X86_64", 64): 0x0303, ("EM_X86_64", 32): 0x0803,
               ("EM_AARCH64", 64): 0x0A03, ("EM_386", 32): 0x0003}


@dataclass(frozen=True)
class CacheEntry:
    flags: int
    path: str
    hwcaps: bool = False  # an entry of a glibc-hwcaps subdirectory


@dataclass(frozen=True)
class LdCache:
    """The image's glibc loader configuration: ld.so.cache entries, else ld.so.conf dirs."""

    entries: Mapping[str, tuple[CacheEntry, ...]] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()  # ld.so.conf dirs, used when the image has no cache
    musl: bool = False  # the image's loader is musl's (no glibc loader, a musl one)


@dataclass(frozen=True)
class Search:
    """How the loader searches the DT_NEEDED names of one object."""

    musl: bool = False
    interp: str = ""  # the program's PT_INTERP: musl's own names and path file follow it
    ld_library_path: tuple[str, ...] = ()
    inherited: tuple[str, ...] = ()  # expanded RPATH dirs of the objects that loaded it
    workdir: str = "/"
    loaded: Mapping[str, str] = field(default_factory=dict)  # soname -> path the app loaded


@dataclass(frozen=True)
class Needed:
    """One DT_NEEDED name and the image path the loader opens for it (None: not found)."""

    name: str
    path: Optional[str]
    variants: tuple[str, ...] = ()  # glibc-hwcaps copies a capable CPU loads instead
    how: str = ""  # rpath, ld_library_path, runpath, cache, default, musl, path, loaded


def env_value(env: Iterable[str], name: str) -> Optional[str]:
    """The value of NAME in a "NAME=value" list; the last definition wins (docker -e)."""
    value = None
    for item in env:
        k, sep, v = item.partition("=")
        if sep and k == name:
            value = v
    return value


def preload_names(fs: ImageFS, env: Iterable[str]) -> tuple[str, ...]:
    """Libraries glibc loads before any DT_NEEDED: LD_PRELOAD, then /etc/ld.so.preload."""
    text = (env_value(env, "LD_PRELOAD") or "") + " " + (
        (fs.content("/etc/ld.so.preload") or b"").decode("utf-8", "replace"))
    return tuple(n for n in text.replace(":", " ").split() if n and not n.startswith("#"))


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(value.replace(";", ":").split(":")) if value else ()


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off : end if end >= 0 else len(data)].decode("utf-8", "surrogateescape")


def parse_ld_cache(data: bytes) -> dict[str, tuple[CacheEntry, ...]]:
    """Entries of a glibc "glibc-ld.so.cache1.1" file (standalone or after the old format).

    Entries with hwcap bits (glibc-hwcaps subdirs) come after the baseline ones.
    """
    base = data.find(_CACHE_MAGIC)
    if base < 0 or len(data) < base + _HEADER.size:
        return {}
    _, nlibs, _, _, _ = _HEADER.unpack_from(data, base)
    found: dict[str, list[CacheEntry]] = {}
    off = base + _HEADER.size
    for _ in range(nlibs):
        if off + _ENTRY.size > len(data):
            break
        flags, key, value, _, hwcap = _ENTRY.unpack_from(data, off)
        off += _ENTRY.size
        # String offsets are relative to the new-format header.
        found.setdefault(_cstr(data, base + key), []).append(
            CacheEntry(flags, _cstr(data, base + value), hwcap != 0))
    return {k: tuple(sorted(v, key=lambda e: e.hwcaps)) for k, v in found.items()}


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
    """The image's glibc library lookup config, and whether its default loader is musl's."""
    glibc = any(fs.resolve(p).final for p in ("/etc/ld.so.cache", "/lib64/ld-linux-x86-64.so.2",
                                               "/lib/ld-linux.so.2", "/lib/ld-linux-aarch64.so.1"))
    musl = not glibc and any(posixpath.basename(p).startswith("ld-musl-")
                             for p in fs.children("/lib"))
    data = fs.content("/etc/ld.so.cache")
    entries = parse_ld_cache(data) if data else {}
    if entries:
        return LdCache(entries, (), musl)
    return LdCache({}, tuple(_conf_dirs(fs, "/etc/ld.so.conf")), musl)


def musl_path_file(interp: str) -> str:
    """`<prefix>/etc/ld-musl-ARCH.path`, the prefix being the loader's path minus two parts."""
    name = posixpath.basename(interp)
    arch = name[len("ld-musl-"):].split(".so", 1)[0] if name.startswith("ld-musl-") else ""
    prefix = posixpath.dirname(posixpath.dirname(interp)) if interp.startswith("/") else ""
    return posixpath.join(prefix.rstrip("/") or "/", "etc", f"ld-musl-{arch}.path")


def _musl_dirs(fs: ImageFS, interp: str) -> tuple[str, ...]:
    data = fs.content(musl_path_file(interp))
    if data is None:
        return MUSL_DEFAULT_DIRS
    return tuple(data.decode("utf-8", "replace").replace(":", "\n").split())


def root_search(fs: ImageFS, info: ElfInfo, env: Sequence[str], workdir: str,
                cache: LdCache, loaded: Optional[Mapping[str, str]] = None) -> Search:
    """The Search for a program (or a library taken on its own): which loader, its env."""
    musl = (posixpath.basename(info.interp).startswith("ld-musl-") if info.interp
            else cache.musl)
    interp = info.interp or ""
    if musl and not interp:
        interp = next((p for p in fs.children("/lib")
                       if posixpath.basename(p).startswith("ld-musl-")), "")
    return Search(musl=musl, interp=interp,
                  ld_library_path=_split_paths(env_value(env, "LD_LIBRARY_PATH") or ""),
                  workdir=workdir or "/", loaded=dict(loaded or {}))


def _own_rpath(path: str, info: ElfInfo, search: Search) -> tuple[str, ...]:
    """The object's RPATH as its loader uses it (musl: RUNPATH or else RPATH)."""
    if search.musl:
        raw = info.runpath or info.rpath
    else:
        raw = () if info.runpath else info.rpath  # glibc ignores RPATH beside RUNPATH
    return _expand_all(raw, path, info, search.workdir)


def child_search(search: Search, path: str, info: ElfInfo) -> Search:
    """The Search for the needs of the objects `path` loads: its RPATH joins the chain."""
    own = _own_rpath(path, info, search)
    return dataclasses.replace(search, inherited=own + search.inherited) if own else search


def _expand_all(dirs: Iterable[str], path: str, info: ElfInfo, workdir: str) -> tuple[str, ...]:
    out: list[str] = []
    for d in dirs:
        for e in _expand(d, posixpath.dirname(path), info):
            full = posixpath.normpath(posixpath.join(workdir or "/", e)) if e else workdir
            if full not in out:
                out.append(full)
    return tuple(out)


def _expand(d: str, origin: str, info: ElfInfo) -> list[str]:
    """The dirs one search-path entry stands for: $ORIGIN, $LIB, $PLATFORM expanded
    ($LIB and $PLATFORM to every value a loader of this machine may use)."""
    subs = {"ORIGIN": (origin,), "LIB": _LIB.get((info.machine, info.bits), ()),
            "PLATFORM": _PLATFORM.get(info.machine, ())}
    out = [d]
    for token, values in subs.items():
        for spelled in ("${" + token + "}", "$" + token):
            if values and any(spelled in x for x in out):
                out = [x.replace(spelled, v) for x in out for v in values]
    return out


def _compatible(fs: ImageFS, path: str, info: ElfInfo) -> bool:
    res = fs.resolve(path)
    e = fs.lookup(res.final) if res.final else None
    if e is None or e.type not in ("file", "hardlink"):
        return False
    other = fs.elf(res.final)
    return other is None or (other.machine, other.bits) == (info.machine, info.bits)


def _find_in(fs: ImageFS, dirs: Sequence[str], name: str,
             info: ElfInfo, hwcaps: bool) -> tuple[Optional[str], tuple[str, ...]]:
    """The first dir holding `name` (as the loader opens it) and the hwcaps copies before."""
    variants: list[str] = []
    subdirs = _HWCAPS.get((info.machine, info.bits), ()) if hwcaps else ()
    for d in dirs:
        for sub in subdirs:
            cand = posixpath.join(d, "glibc-hwcaps", sub, name)
            if _compatible(fs, cand, info) and cand not in variants:
                variants.append(cand)
        cand = posixpath.normpath(posixpath.join(d, name))
        if _compatible(fs, cand, info):
            return cand, tuple(variants)
    return None, tuple(variants)


def _from_cache(fs: ImageFS, cache: LdCache, name: str,
                info: ElfInfo) -> tuple[Optional[str], tuple[str, ...]]:
    want = _ARCH_FLAGS.get((info.machine, info.bits))
    found, variants = None, []
    for entry in cache.entries.get(name, ()):
        if want is not None and entry.flags & 0xFFFF != want:
            continue
        if not _compatible(fs, entry.path, info):
            continue
        if entry.hwcaps:
            variants.append(entry.path)
        elif found is None:
            found = entry.path
    return found, tuple(variants)


def _glibc(fs: ImageFS, path: str, info: ElfInfo, cache: LdCache, search: Search,
           name: str) -> Needed:
    steps: list[tuple[str, Sequence[str]]] = []
    if not info.runpath:
        steps.append(("rpath", _own_rpath(path, info, search) + search.inherited))
    steps.append(("ld_library_path", _expand_all(search.ld_library_path, path, info,
                                                 search.workdir)))
    steps.append(("runpath", _expand_all(info.runpath, path, info, search.workdir)))
    variants: tuple[str, ...] = ()
    for how, dirs in steps:
        found, more = _find_in(fs, dirs, name, info, hwcaps=True)
        variants += more
        if found:
            return Needed(name, found, variants, how)
    if not info.nodeflib:
        found, more = _from_cache(fs, cache, name, info)
        variants += more
        if found:
            return Needed(name, found, variants, "cache")
        dirs = cache.dirs + _DEFAULT_DIRS.get((info.machine, info.bits), _OTHER_DIRS)
        found, more = _find_in(fs, dirs, name, info, hwcaps=True)
        variants += more
        if found:
            return Needed(name, found, variants, "default")
    if variants:  # only CPU-specific copies: the loader takes one where the CPU allows
        return Needed(name, variants[0], variants[1:], "hwcaps")
    return _loaded(search, name, glibc=True)


def _musl(fs: ImageFS, path: str, info: ElfInfo, search: Search, name: str) -> Needed:
    stem = name[3:].split(".", 1)[0] if name.startswith("lib") and "." in name else ""
    if stem in _MUSL_SELF and search.interp:
        return Needed(name, search.interp, (), "musl")
    dirs = (_expand_all(search.ld_library_path, path, info, search.workdir)
            + _own_rpath(path, info, search) + search.inherited
            + _musl_dirs(fs, search.interp))
    found, _ = _find_in(fs, dirs, name, info, hwcaps=False)
    if found:
        return Needed(name, found, (), "musl")
    return _loaded(search, name, glibc=False)


def _loaded(search: Search, name: str, glibc: bool) -> Needed:
    """A name no search finds may still be an object the app had already loaded: glibc
    matches it against loaded objects' DT_SONAME, musl against the name it loaded them by."""
    if glibc:
        return Needed(name, search.loaded.get(name), (), "loaded" if name in search.loaded
                      else "")
    hit = next((p for p in search.loaded.values() if posixpath.basename(p) == name), None)
    return Needed(name, hit, (), "loaded" if hit else "")


def resolve_needed(fs: ImageFS, path: str, info: ElfInfo, cache: LdCache,
                   search: Optional[Search] = None,
                   names: Optional[Sequence[str]] = None) -> list[Needed]:
    """Each DT_NEEDED name (or each of `names`) of the object opened as `path`, with the
    image path the loader opens for it, possibly through symlinks (callers keep them)."""
    search = search or root_search(fs, info, (), "/", cache)
    out = []
    for name in (info.needed if names is None else names):
        if "/" in name:
            full = _expand_all([name], path, info, search.workdir)[0]
            out.append(Needed(name, full if _compatible(fs, full, info) else None, (), "path"))
        elif search.musl:
            out.append(_musl(fs, path, info, search, name))
        else:
            out.append(_glibc(fs, path, info, cache, search, name))
    return out

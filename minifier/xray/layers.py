"""The layer model xray works on: each layer's members as small immutable records.

A layer source (`docker save` today, a storage-driver reader later) turns each layer's
tar members into `Entry` records with `scan_layer`; whiteouts and opaque-directory
markers become entries of their own kind. Only metadata is kept, plus the content of a
few small files the analysis needs (package databases, os-release) and the first bytes
of executables (to tell static from dynamic ELF programs and to read `#!` lines).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Optional

from minifier.image.tarstream import TarStream

__all__ = ["Entry", "LayerScan", "SavedImage", "CapturePolicy", "scan_layer", "normalize", "parent",
           "FILE", "DIR", "SYMLINK", "HARDLINK", "WHITEOUT", "OPAQUE", "KINDS"]

FILE, DIR, SYMLINK, HARDLINK, WHITEOUT, OPAQUE = "file", "dir", "symlink", "hardlink", \
    "whiteout", "opaque"
KINDS = {"0": FILE, "7": FILE, "1": HARDLINK, "2": SYMLINK, "3": "char", "4": "block",
         "5": DIR, "6": "fifo"}
_KINDS = {k.encode(): v for k, v in KINDS.items()} | {b"\x00": FILE}  # by tar type byte
WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"


class Entry(NamedTuple):
    """One member of a layer. `path` is absolute and normalised; for a whiteout it is the
    path the layer deletes, for an opaque marker the directory whose lower contents it
    hides. `size` is the tar header's (0 for anything but regular files)."""

    path: str
    kind: str
    size: int
    mode: int = 0
    link: str = ""


@dataclass(frozen=True)
class LayerScan:
    """One layer blob as read: entries in tar order, captured contents by path."""

    entries: tuple[Entry, ...]
    captured: Mapping[str, bytes]
    tar_bytes: Optional[int]  # length of the layer's tar (None: read without a tar)
    content_bytes: int = -1  # sum of the members' sizes (dive's layer size)

    def __post_init__(self) -> None:
        if self.content_bytes < 0:
            object.__setattr__(self, "content_bytes", sum(e.size for e in self.entries))


@dataclass(frozen=True)
class SavedImage:
    """What a layer source gives: the image config (with history) and the layers in
    order (bottom first), with their diff ids. A layer used twice appears twice."""

    config: Mapping[str, object]
    layers: tuple[LayerScan, ...]
    diff_ids: tuple[str, ...] = ()


def parent(path: str) -> str:
    """dirname of a normalised absolute path (posixpath.dirname, without its cost)."""
    return path[:path.rfind("/")] or "/"


def normalize(name: str) -> str:
    """A tar member name as an absolute path without `.`, `..`, `//` or a trailing `/`."""
    if name[:1] in "./" or "//" in name or "/." in name:
        path = posixpath.normpath("/" + name.lstrip("/"))
        return "/" + path.lstrip("/")
    return "/" + name.rstrip("/")  # the common case, e.g. "usr/bin/" or "etc/passwd"


# Whole contents kept (package databases and release files); bounded by MAX_CAPTURE.
CAPTURE_FULL = (
    "/var/lib/dpkg/status",
    "/var/lib/dpkg/status.d/*",
    "/var/lib/dpkg/info/*.list",
    "/lib/apk/db/installed",
    "/usr/lib/apk/db/installed",
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/etc/os-release",
    "/usr/lib/os-release",
)
_FULL_PREFIXES = tuple(p.split("*", 1)[0].rsplit("/", 1)[0] + "/" for p in CAPTURE_FULL)
MAX_CAPTURE = 256 << 20
HEAD = 4096
_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")


@dataclass(frozen=True)
class CapturePolicy:
    """Which contents a scan keeps: package databases whole, and the head of regular
    executable files in `head_dirs` (the PATH, the working directory, the
    entrypoint's directory) or named in `head_paths`."""

    head_dirs: frozenset[str] = frozenset(_BIN_DIRS)
    head_paths: frozenset[str] = frozenset()
    full: tuple[str, ...] = CAPTURE_FULL

    @classmethod
    def for_config(cls, config: Mapping[str, object]) -> CapturePolicy:
        env = [str(e) for e in (config.get("Env") or [])]
        path = next((e[5:] for e in env if e.startswith("PATH=")), "")
        dirs = set(_BIN_DIRS) | {normalize(d) for d in path.split(":") if d}
        if config.get("WorkingDir"):
            dirs.add(normalize(str(config["WorkingDir"])))
        argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        paths = {normalize(a) for a in argv[:1] if a.startswith("/")}
        dirs |= {posixpath.dirname(p) for p in paths}
        return cls(head_dirs=frozenset(dirs), head_paths=frozenset(paths))

    def limit(self, path: str, mode: int) -> int:
        """How many bytes of this regular file to keep (0: none)."""
        if path.startswith(_FULL_PREFIXES) and any(
                fnmatch.fnmatchcase(path, pattern) for pattern in self.full):
            return MAX_CAPTURE
        if mode & 0o111 and (path in self.head_paths
                             or posixpath.dirname(path) in self.head_dirs):
            return HEAD
        return 0


def _entry(path: str, type_: bytes, size: int, member) -> Optional[Entry]:
    if path == "/":
        return None
    cut = path.rfind("/") + 1
    if path.startswith(WH_PREFIX, cut):
        if len(path) - cut == len(WH_OPAQUE) and path.endswith(WH_OPAQUE):
            return Entry(path[:cut - 1] or "/", OPAQUE, 0)
        return Entry(path[:cut] + path[cut + len(WH_PREFIX):], WHITEOUT, 0)
    kind = _KINDS.get(type_, FILE)
    link = member.linkname
    if kind == HARDLINK:
        link = normalize(link)
    return Entry(path, kind, size if kind == FILE else 0, member.mode & 0o7777, link)


def scan_layer(chunks: Iterable, tar_bytes: int,
               policy: CapturePolicy = CapturePolicy()) -> LayerScan:
    """Entries of one layer's tar, read from its byte chunks, with the contents the
    policy asks for."""
    tar = TarStream(chunks)
    entries: list[Entry] = []
    captured: dict[str, bytes] = {}
    for member in tar:
        size = member.size
        entry = _entry(normalize(member.name), member.type, size, member)
        if entry is None:
            continue
        entries.append(entry)
        if size and entry.kind == FILE:
            limit = policy.limit(entry.path, entry.mode)
            if limit:
                captured[entry.path] = tar.read(limit)
    return LayerScan(entries=tuple(entries), captured=captured, tar_bytes=tar_bytes)

"""The image filesystem as the closure sees it: every entry's metadata, and the bytes of
the few files it inspects.

Metadata lives in an `index.Index` (sqlite, on disk), so memory stays flat in image size.
Bytes come from wherever the source allows: `scan` reads an image tar stream once and
keeps, per member, the first 256 bytes of ELF and `#!` files, the full content of a few
small config files, the loader's view of every ELF file (`elffile.ElfInfo`) and, in a
spool, the files the app touched, so the closure can follow dependencies in any stream
order without another pass; a source with random access (the overlay2 storage reader)
is asked by path instead. `ImageFS.resolve` walks paths the way the kernel does inside a
chroot at the image root, so symlinks never point at the host.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import re
import shutil
import tarfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Optional, Protocol

from minifier.errors import ImageError
from minifier.image.elffile import ELF_MAGIC, BehindStream, ElfInfo, elf_info, elf_info_streamed
from minifier.image.index import ROOT, EntriesView, Entry, Index, in_memory
from minifier.image.tarstream import TarStream

__all__ = [
    "Spool",
    "Entry",
    "ContentReader",
    "entry_from_tar",
    "is_artefact",
    "Resolution",
    "ImageFS",
    "scan",
    "normalize",
    "DEFAULT_CAPTURE",
    "HEAD_SIZE",
    "PLACEHOLDERS",
    "DERIVED_PAX",
    "iter_members",
]

HEAD_SIZE = 256
MAX_SYMLINKS = 40  # the kernel's limit (ELOOP)
MAX_CAPTURE = 8 << 20  # a captured file larger than this is not a config file we need

DEFAULT_CAPTURE = (
    "/etc/passwd",
    "/etc/group",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/*",
    "/etc/ld.so.cache",
    "/etc/nsswitch.conf",
    "/etc/ld.so.preload",
    "*/etc/ld-musl-*.path",  # fnmatch's * crosses "/": musl reads <prefix>/etc/...
)

# Files docker bind-mounts at run time: the output carries them only as empty files.
PLACEHOLDERS = ("/etc/hosts", "/etc/resolv.conf")
# Paths `docker export` adds (or that docker mounts over at run time): never shipped.
# /etc/mtab: every container's init layer puts a link to /proc/mounts there, over the
# image's own.
_ARTEFACT_FILES = frozenset({"/.dockerenv", "/etc/hostname", "/etc/mtab", *PLACEHOLDERS})
_ARTEFACT_TREES = ("/proc", "/sys", "/dev")

_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}
# PAX keys tarfile recomputes from the TarInfo fields; everything else (xattrs) is kept.
DERIVED_PAX = frozenset(
    {"path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname",
     "hdrcharset"}
)


def normalize(name: str) -> str:
    """A tar member name or user path as a normalised absolute path ("/" for the root)."""
    if (name and "//" not in name and "/." not in name and not name.startswith((".", "/"))
            and not name.endswith("/")):
        return "/" + name  # already normal: the usual tar member name, without normpath
    path = posixpath.normpath("/" + name.lstrip("/"))
    return "/" + path.lstrip("/")


def is_artefact(path: str) -> bool:
    """True for entries `docker export` adds that the image does not really have."""
    if path in _ARTEFACT_FILES:
        return True
    if not path.startswith(_ARTEFACT_TREES):  # the usual case, in one C call
        return False
    return any(path == t or path.startswith(t + "/") for t in _ARTEFACT_TREES)


@dataclass(frozen=True)
class Resolution:
    """Where a path leads inside the image; `via` lists every symlink traversed."""

    final: Optional[str]
    via: tuple[str, ...] = ()
    error: str = ""  # "", "missing", "notdir", "loop"


class Spool:
    """Contents of chosen members, copied to files during the index pass.

    When the index pass already knows what the app touched, their bytes are kept on the
    way, so the closure's ELF parsing and the layer writer need no second export pass.
    Memory stays O(1): contents go straight to disk.
    """

    def __init__(self, directory: str, wanted: Collection[str]) -> None:
        self.directory = directory
        self._wanted = frozenset(normalize(p) for p in wanted)
        self._files: dict[str, str] = {}
        os.makedirs(directory, exist_ok=True)

    def wants(self, path: str) -> bool:
        return path in self._wanted

    def put(self, path: str, head: bytes, rest: IO[bytes]) -> None:
        name = os.path.join(self.directory, hashlib.sha1(path.encode("utf-8", "surrogateescape"))
                            .hexdigest())
        with open(name, "wb") as f:
            f.write(head)
            shutil.copyfileobj(rest, f, 1 << 20)
        self._files[path] = name

    def get(self, path: str) -> Optional[str]:
        return self._files.get(path)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self._files.clear()


class ContentReader(Protocol):
    """Random access to the image's regular files by path (the storage reader)."""

    def open_file(self, path: str) -> Optional[IO[bytes]]:
        """The bytes of the regular file at exactly `path` (a content path), or None."""
        ...


def _capture_regex(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or "(?!)")


def _interesting(head: bytes) -> bytes:
    """What the index keeps of a file's first bytes: the closure only ever looks at ELF
    magic and `#!` lines, so other heads are not kept (b"")."""
    return head if head.startswith((ELF_MAGIC, b"#!")) else b""


class _Contents:
    """Where a file's bytes come from: what the index pass kept (heads of ELF and `#!`
    files, captured config files, ELF views, the spool) or a reader with random access.
    What is read later is remembered here, bounded by what the closure inspects."""

    def __init__(self, index: Index, reader: Optional[ContentReader], spool: Optional[Spool],
                 capture: Iterable[str]) -> None:
        self.index, self.reader, self.spool = index, reader, spool
        self.capture = _capture_regex(capture)
        self.heads: dict[str, bytes] = {}
        self.captured: dict[str, Optional[bytes]] = {}
        self.elves: dict[str, ElfInfo | str] = {}

    def head(self, path: str, entry: Optional[Entry]) -> bytes:
        if path in self.heads:
            return self.heads[path]
        head = self.index.head(path)
        if head is None:
            head = b""
            if self.reader is not None and entry is not None and entry.type == "file":
                f = self.reader.open_file(path)
                if f is not None:
                    with f:
                        head = _interesting(f.read(HEAD_SIZE))
        self.heads[path] = head
        return head

    def captured_file(self, path: str, entry: Optional[Entry]) -> Optional[bytes]:
        if path in self.captured:
            return self.captured[path]
        data = self.index.captured(path)
        if (data is None and self.reader is not None and entry is not None
                and entry.type == "file" and entry.size <= MAX_CAPTURE
                and self.capture.match(path)):
            f = self.reader.open_file(path)
            if f is not None:
                with f:
                    data = f.read(MAX_CAPTURE + 1)
        self.captured[path] = data
        return data

    def elf(self, path: str, entry: Optional[Entry]) -> Optional[ElfInfo | str]:
        found = self.elves.get(path)
        if found is None:
            found = self.index.elf(path)
            if found is None and self.reader is not None and self.head(path, entry).startswith(
                    ELF_MAGIC):
                found = self._parse(path)
            if found is not None:
                self.elves[path] = found
        return found

    def _parse(self, path: str) -> Optional[ElfInfo | str]:
        f = self.reader.open_file(path) if self.reader is not None else None
        if f is None:
            return None
        with f:
            try:
                return elf_info(f)
            except ImageError as e:
                return e.message


class ImageFS:
    """Metadata of every image member (in an Index), and the bytes of the files the
    closure inspects (from the index pass, or read by path where the source allows)."""

    def __init__(self, index: Index, *, reader: Optional[ContentReader] = None,
                 spool: Optional[Spool] = None, capture: Iterable[str] = DEFAULT_CAPTURE,
                 contents: Optional[_Contents] = None) -> None:
        self.index = index
        self._contents = contents or _Contents(index, reader, spool, capture)

    @property
    def entries(self) -> Mapping[str, Entry]:
        """Every entry by path (iterating streams them from the index: prefer the
        aggregate methods below for whole-image questions)."""
        return EntriesView(self.index)

    @property
    def random_access(self) -> bool:
        """True when any file's bytes can be read by path (the storage reader)."""
        return self._contents.reader is not None

    def elf(self, path: str) -> Optional[ElfInfo]:
        """The loader's view of an ELF regular file (or hard link), when known."""
        found = self._elf(path)
        return found if isinstance(found, ElfInfo) else None

    def elf_error(self, path: str) -> Optional[str]:
        found = self._elf(path)
        return found if isinstance(found, str) else None

    def _elf(self, path: str) -> Optional[ElfInfo | str]:
        real = self.content_path(normalize(path))
        return self._contents.elf(real, self.index.get(real))

    def elf_unread(self, path: str) -> bool:
        """An ELF file (by its magic) whose loader view is not known yet: read it by path."""
        real = self.content_path(normalize(path))
        return self._elf(real) is None and self.head(real).startswith(ELF_MAGIC)

    def add_elf(self, path: str, info: ElfInfo | str) -> None:
        """Complete the store with an ELF file read after the index pass."""
        self._contents.elves[self.content_path(normalize(path))] = info

    def restricted(self, keep: Mapping[str, Entry]) -> ImageFS:
        """The same image reduced to these entries (plus "/"): the planned output's view."""
        entries = dict(keep)
        entries.setdefault("/", self.lookup("/") or ROOT)
        return ImageFS(in_memory(entries.values()), contents=self._contents)

    def open_content(self, path: str) -> Optional[IO[bytes]]:
        """The bytes of a regular file (or hard link) when the index pass kept them or
        the source reads files by path."""
        real = self.content_path(normalize(path))
        contents = self._contents
        spooled = contents.spool.get(real) if contents.spool is not None else None
        if spooled is not None:
            return open(spooled, "rb")
        entry = self.index.get(real)
        if entry is None or entry.type != "file":
            return None
        data = contents.captured.get(real) or contents.index.captured(real)
        if data is not None and len(data) == entry.size:
            return io.BytesIO(data)
        if contents.reader is not None:
            f = contents.reader.open_file(real)
            size = os.fstat(f.fileno()).st_size if f is not None else entry.size
            if size != entry.size:
                f.close()  # the layer is not what was indexed: never ship other bytes
                raise ImageError(f"{real}: the index says {entry.size} bytes, the image's "
                                 f"layer holds {size}; build again with --no-cache")
            return f
        return None

    def lookup(self, path: str) -> Optional[Entry]:
        """The entry at exactly this (normalised) path, without following symlinks."""
        return self.index.get(normalize(path))

    def children(self, path: str) -> list[str]:
        """Direct children of a directory (sorted absolute paths), no symlink following."""
        return self.index.children(normalize(path))

    def content_path(self, path: str) -> str:
        """The member whose tar data holds this file's bytes (a hard link's target)."""
        e = self.index.get(path)
        return e.linkname if e is not None and e.type == "hardlink" else path

    def head(self, path: str) -> bytes:
        """The first bytes of an ELF or `#!` regular file (or hard link), b"" otherwise."""
        real = self.content_path(normalize(path))
        return self._contents.head(real, self.index.get(real))

    def content(self, path: str) -> Optional[bytes]:
        """Full content of a captured file, following symlinks inside the image."""
        res = self.resolve(path)
        if res.final is None:
            return None
        real = self.content_path(res.final)
        return self._contents.captured_file(real, self.index.get(real))

    def totals(self) -> tuple[int, int]:
        """(entries, bytes of regular files) of the image, without docker's artefacts."""
        return self.index.totals()

    def file_sizes(self) -> Iterator[tuple[str, int]]:
        """(path, size) of each regular file of the image (streamed from the index)."""
        return self.index.file_sizes()

    def file_bytes_by_dir(self) -> Iterator[tuple[str, int]]:
        """(directory, bytes of its own regular files) of the image, one row per directory."""
        return self.index.file_bytes_by_dir()

    def paths(self) -> Iterator[str]:
        """Every path of the image in byte order, without docker's artefacts."""
        return self.index.paths()

    def artefacts(self) -> Iterator[Entry]:
        """The entries `docker export` adds (or docker mounts over at run time)."""
        return self.index.iter_entries("WHERE artefact = 1")

    def stream_order(self, paths: Collection[str]) -> list[str]:
        """These paths in the order of the image's stream (a hard link after its target)."""
        return self.index.stream_order(paths)

    def resolve(self, path: str, follow_last: bool = True) -> Resolution:
        """Follow `path` inside the image root like the kernel under chroot.

        Absolute symlink targets restart at the image root, `..` clamps at "/", and
        intermediate directory symlinks (/lib -> usr/lib) and chains are followed.
        """
        todo = [c for c in reversed(path.split("/")) if c]
        current, via, hops = "/", [], 0
        while todo:
            comp = todo.pop()
            if comp == ".":
                continue
            if comp == "..":
                current = posixpath.dirname(current)
                continue
            cand = posixpath.join(current, comp)
            entry = self.index.get(cand)
            if entry is None or (entry.artefact and entry.type == "dir"):
                return Resolution(None, tuple(via), "missing")
            if entry.type == "symlink" and (todo or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    return Resolution(None, tuple(via), "loop")
                via.append(cand)
                if entry.linkname.startswith("/"):
                    current = "/"
                todo.extend(c for c in reversed(entry.linkname.split("/")) if c)
                continue
            if todo and entry.type != "dir":
                return Resolution(None, tuple(via), "notdir")
            current = cand
        return Resolution(current, tuple(via))

    def walk(self, top: str) -> list[str]:
        """`top` and every path below it (no symlink following), parents first."""
        out, stack = [], [normalize(top)]
        while stack:
            p = stack.pop()
            out.append(p)
            stack.extend(reversed(self.children(p)))
        return out


def entry_from_tar(path: str, ti) -> Entry:
    """An index entry from a tar member (a `tarfile.TarInfo` or a `tarstream.Member`: the
    export stream's metadata, as it is)."""
    kind = _TYPES.get(ti.type, "file")
    link = ti.linkname
    if kind == "hardlink":
        link = normalize(link)
    pax = ({k: v for k, v in ti.pax_headers.items() if k not in DERIVED_PAX}
           if ti.pax_headers else None)
    # tarfile reads a PAX mtime record as a float: whole seconds stay an int, so the
    # layer writer writes the record back as the engine wrote it ("mtime=8835955200").
    mtime = int(ti.mtime) if float(ti.mtime).is_integer() else ti.mtime
    return Entry(path, kind, ti.mode & 0o7777, ti.uid, ti.gid, ti.uname, ti.gname, mtime,
                 ti.size if kind == "file" else 0, link, ti.devmajor, ti.devminor, pax or None,
                 is_artefact(path))


def _read_elf(path: str, data: bytes, rest: IO[bytes], spool: Optional[Spool]) -> Optional[
        ElfInfo | str]:
    """Parse an ELF member as it streams by (or from the spool that just took it)."""
    try:
        spooled = spool.get(path) if spool is not None else None
        if spooled is not None:
            with open(spooled, "rb") as f:
                return elf_info(f)
        return elf_info_streamed(data, rest)
    except BehindStream:
        return None  # left unread: whoever needs it reads it by path (ImageSource.read)
    except ImageError as e:
        return e.message


def scan(stream: IO[bytes], capture: Iterable[str] = DEFAULT_CAPTURE,
         spool: Optional[Spool] = None, elf_index: bool = True,
         index: Optional[Index] = None, meta: Optional[Mapping[str, str]] = None) -> ImageFS:
    """Index the image tar stream in ONE pass into `index` (a new in-memory one if None).

    Memory is O(1) in the image: entries go to the index as they stream by. With a
    `spool`, the contents of the members it wants are copied to disk on the way. With
    `elf_index`, every ELF member's loader view is parsed on the way too.
    """
    patterns = tuple(capture)
    wanted_re = _capture_regex(patterns)
    index = index if index is not None else Index()
    tar = TarStream(stream)
    for member in tar:
        path = normalize(member.name)
        entry = entry_from_tar(path, member)
        if entry.type != "file" or entry.artefact or not entry.size:
            index.add(entry)
            continue
        wanted = member.size <= MAX_CAPTURE and wanted_re.match(path) is not None
        data = tar.read() if wanted else tar.read(HEAD_SIZE)
        head = _interesting(data[:HEAD_SIZE])
        index.add(entry, head or None)
        if wanted:
            index.add_captured(path, data)
        elif spool is not None and spool.wants(path):
            spool.put(path, data, tar)
        if elf_index and head.startswith(ELF_MAGIC):
            info = _read_elf(path, data, tar, spool)
            if info is not None:
                index.add_elf(path, info)
    index.finish({"reader": "export", "contents": "all", **(meta or {})})
    return ImageFS(index, spool=spool, capture=patterns)


def iter_members(stream: IO[bytes]) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Stream the members of a tar without tarfile's ever-growing `members` list."""
    try:
        tf = tarfile.open(fileobj=stream, mode="r|")
    except tarfile.TarError as e:
        raise ImageError(f"image filesystem is not a readable tar stream: {e}") from e
    with tf:
        while True:
            try:
                ti = tf.next()
            except tarfile.TarError as e:
                raise ImageError(f"corrupt image tar stream: {e}") from e
            if ti is None:
                return
            # Stream mode appends every member to tf.members; drop them so memory stays
            # bounded for images with 100k files (we never need to seek back).
            tf.members.clear()
            yield tf, ti

"""An in-memory index of the image filesystem's metadata, built in one streaming pass.

`scan` reads the image tar once and keeps, per member, only metadata plus the first
256 bytes (enough to spot ELF magic and `#!` lines), the full content of a few small
config files, and the loader's view of every ELF file (interpreter, needed libraries,
search paths: `elffile.ElfInfo`), so the closure can follow dependencies in any stream
order without another pass. `ImageFS.resolve` walks paths the way the kernel does inside
a chroot at the image root, so symlinks never point at the host.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Optional

from minifier.errors import ImageError
from minifier.image.elffile import ELF_MAGIC, BehindStream, ElfInfo, elf_info, elf_info_streamed

__all__ = [
    "Spool",
    "Entry",
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
_ARTEFACT_FILES = frozenset({"/.dockerenv", "/etc/hostname", *PLACEHOLDERS})
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
    path = posixpath.normpath("/" + name.lstrip("/"))
    return "/" + path.lstrip("/")


def is_artefact(path: str) -> bool:
    """True for entries `docker export` adds that the image does not really have."""
    if path in _ARTEFACT_FILES:
        return True
    return any(path == t or path.startswith(t + "/") for t in _ARTEFACT_TREES)


@dataclass(frozen=True)
class Entry:
    """Metadata of one image member. `linkname` is normalised for hard links."""

    path: str
    type: str  # file dir symlink hardlink char block fifo
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    size: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: Optional[Mapping[str, str]] = None  # extra PAX records (xattrs), None when none
    artefact: bool = False


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


class ImageFS:
    """Metadata of every image member, plus heads and a few captured contents."""

    def __init__(
        self,
        entries: Mapping[str, Entry],
        heads: Mapping[str, bytes],
        captured: Mapping[str, bytes],
        spool: Optional[Spool] = None,
        elves: Optional[dict[str, ElfInfo | str]] = None,
    ) -> None:
        self.entries = entries
        self._heads = heads
        self._captured = captured
        self._spool = spool
        # content path -> ElfInfo, or the reason it could not be parsed. Filled by the
        # index pass; ELF files it could not read there are added by `add_elf`.
        self._elves: dict[str, ElfInfo | str] = elves if elves is not None else {}
        self._children: Optional[dict[str, list[str]]] = None

    def elf(self, path: str) -> Optional[ElfInfo]:
        """The loader's view of an ELF regular file (or hard link), when known."""
        found = self._elves.get(self.content_path(normalize(path)))
        return found if isinstance(found, ElfInfo) else None

    def elf_error(self, path: str) -> Optional[str]:
        found = self._elves.get(self.content_path(normalize(path)))
        return found if isinstance(found, str) else None

    def elf_unread(self, path: str) -> bool:
        """An ELF file (by its magic) whose loader view is not known yet: read it by path."""
        real = self.content_path(normalize(path))
        return real not in self._elves and self.head(real).startswith(ELF_MAGIC)

    def add_elf(self, path: str, info: ElfInfo | str) -> None:
        """Complete the store with an ELF file read after the index pass."""
        self._elves[self.content_path(normalize(path))] = info

    def restricted(self, keep: Mapping[str, Entry]) -> ImageFS:
        """The same image reduced to these entries (plus "/"): the planned output's view."""
        entries = dict(keep)
        entries.setdefault("/", self.entries["/"])
        return ImageFS(entries, self._heads, self._captured, None, self._elves)

    def open_content(self, path: str) -> Optional[IO[bytes]]:
        """The bytes of a regular file (or hard link) when the index pass kept them."""
        real = self.content_path(normalize(path))
        spooled = self._spool.get(real) if self._spool is not None else None
        if spooled is not None:
            return open(spooled, "rb")
        data = self._captured.get(real)
        entry = self.entries.get(real)
        if data is not None and entry is not None and len(data) == entry.size:
            return io.BytesIO(data)
        return None

    def lookup(self, path: str) -> Optional[Entry]:
        """The entry at exactly this (normalised) path, without following symlinks."""
        return self.entries.get(normalize(path))

    def children(self, path: str) -> list[str]:
        """Direct children of a directory (sorted absolute paths), no symlink following."""
        if self._children is None:
            index: dict[str, list[str]] = {}
            for p in self.entries:
                if p != "/":
                    index.setdefault(posixpath.dirname(p), []).append(p)
            for v in index.values():
                v.sort()
            self._children = index
        return list(self._children.get(normalize(path), ()))

    def content_path(self, path: str) -> str:
        """The member whose tar data holds this file's bytes (a hard link's target)."""
        e = self.entries.get(path)
        return e.linkname if e is not None and e.type == "hardlink" else path

    def head(self, path: str) -> bytes:
        """The first bytes of a regular file (or hard link), b"" otherwise."""
        return self._heads.get(self.content_path(normalize(path)), b"")

    def content(self, path: str) -> Optional[bytes]:
        """Full content of a captured file, following symlinks inside the image."""
        res = self.resolve(path)
        if res.final is None:
            return None
        return self._captured.get(self.content_path(res.final))

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
            entry = self.entries.get(cand)
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


def _entry(path: str, ti: tarfile.TarInfo) -> Entry:
    kind = _TYPES.get(ti.type, "file")
    link = ti.linkname
    if kind == "hardlink":
        link = normalize(link)
    pax = {k: v for k, v in ti.pax_headers.items() if k not in DERIVED_PAX}
    return Entry(
        path=path,
        type=kind,
        mode=ti.mode & 0o7777,
        uid=ti.uid,
        gid=ti.gid,
        uname=ti.uname,
        gname=ti.gname,
        mtime=ti.mtime,
        size=ti.size if kind == "file" else 0,
        linkname=link,
        devmajor=ti.devmajor,
        devminor=ti.devminor,
        pax=pax or None,
        artefact=is_artefact(path),
    )


def _read_elf(path: str, data: bytes, rest: IO[bytes], spool: Optional[Spool],
              elves: dict[str, ElfInfo | str]) -> None:
    """Parse an ELF member as it streams by (or from the spool that just took it)."""
    try:
        spooled = spool.get(path) if spool is not None else None
        if spooled is not None:
            with open(spooled, "rb") as f:
                elves[path] = elf_info(f)
        else:
            elves[path] = elf_info_streamed(data, rest)
    except BehindStream:
        pass  # left unread: whoever needs it reads it by path (ImageSource.read)
    except ImageError as e:
        elves[path] = e.message


def scan(stream: IO[bytes], capture: Iterable[str] = DEFAULT_CAPTURE,
         spool: Optional[Spool] = None, elf_index: bool = True) -> ImageFS:
    """Index the image tar stream in ONE pass; memory is O(members), not O(bytes).

    With a `spool`, the contents of the members it wants are copied to disk on the way.
    With `elf_index`, every ELF member's loader view is parsed on the way too.
    """
    patterns = tuple(capture)
    entries: dict[str, Entry] = {}
    heads: dict[str, bytes] = {}
    captured: dict[str, bytes] = {}
    elves: dict[str, ElfInfo | str] = {}
    for tf, ti in iter_members(stream):
        path = normalize(ti.name)
        entry = _entry(path, ti)
        entries[path] = entry
        if entry.type != "file" or entry.artefact:
            continue
        f = tf.extractfile(ti)
        if f is None:
            continue
        wanted = ti.size <= MAX_CAPTURE and any(fnmatch.fnmatchcase(path, p) for p in patterns)
        data = f.read() if wanted else f.read(HEAD_SIZE)
        heads[path] = data[:HEAD_SIZE]
        if wanted:
            captured[path] = data
        elif spool is not None and spool.wants(path):
            spool.put(path, data, f)
        if elf_index and data.startswith(ELF_MAGIC):
            _read_elf(path, data, f, spool, elves)
    if "/" not in entries:
        # docker export has no root member; give "/" a conventional entry for resolve().
        entries["/"] = Entry("/", "dir", 0o755, 0, 0, "root", "root", 0, 0)
    return ImageFS(entries, heads, captured, spool, elves)


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

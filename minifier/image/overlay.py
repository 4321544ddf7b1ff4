"""The image's filesystem read straight from the engine's overlay2 layer directories.

On the engine's host, `docker image inspect` names the directories that hold the image's
layers (GraphDriver.Data: UpperDir is the top layer, LowerDir the others, top first).
`walk` merges them as overlayfs does and yields the entries `docker export` of a
container created from the image would stream, in the same order and with the same
metadata, from one lstat per entry: no tar is packed by the engine nor unpacked here,
and file bytes are read only for what the closure inspects or keeps (`LayerReader`).

Merging, as overlayfs: a character device 0:0 is a whiteout (the name is deleted in the
layers below); an opaque directory (xattr trusted.overlay.opaque=y, or a `.wh..wh..opq`
marker should a layer carry one) hides the lower layers' contents; a directory's merge
stops at a lower non-directory; metadata comes from the topmost layer holding the name.

Export semantics (moby pkg/archive, addTarFile/FileInfoHeader): names in byte order at
each level, parents first; mode & 07777, uid, gid, mtime truncated to the second, size
of regular files, device numbers; a non-directory with more than one link is stored
once, later names of the same inode become hard links to the first; of the xattrs only
security.capability, as a PAX record (revision 3 as revision 2); sockets are skipped.
User and group names are the caller's: Docker up to 20.10 looks the ids up inside the
container's root (the image's own /etc/passwd and /etc/group), engines from 23 on leave
them empty (moby pull request 43185).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from typing import IO, Optional

from minifier.errors import ImageError
from minifier.image.imagefs import is_artefact
from minifier.image.index import Entry

__all__ = ["walk", "LayerReader", "OPAQUE_XATTR", "OPAQUE_MARKER", "CAPABILITY_KEY"]

OPAQUE_XATTR = b"trusted.overlay.opaque"
OPAQUE_MARKER = b".wh..wh..opq"
CAPABILITY_KEY = "SCHILY.xattr.security.capability"
_CAP_XATTR = b"security.capability"
_NS = 1_000_000_000


def _opaque(host: bytes) -> bool:
    try:
        if os.getxattr(host, OPAQUE_XATTR, follow_symlinks=False) == b"y":
            return True
    except OSError:
        pass
    return os.path.lexists(host + b"/" + OPAQUE_MARKER)


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class _Found:
    """One name of a merged directory: its topmost host path, lstat, and (for a
    directory) the host directories merged under it."""

    __slots__ = ("host", "st", "sources", "closed")

    def __init__(self, host: bytes, st: os.stat_result) -> None:
        self.host, self.st = host, st
        self.sources: Optional[list[bytes]] = [host] if stat.S_ISDIR(st.st_mode) else None
        self.closed = self.sources is None


def _listing(sources: Sequence[bytes]) -> list[tuple[bytes, _Found]]:
    """The merged entries of one directory whose host directories are `sources` (top
    first), sorted by name; a source that is opaque hides those below it."""
    found: dict[bytes, Optional[_Found]] = {}  # None: deleted by a whiteout
    for i, src in enumerate(sources):
        try:
            it = os.scandir(src)
        except OSError as exc:  # a layer removed under us: never index half an image
            raise ImageError(f"cannot read the layer directory {os.fsdecode(src)}: "
                             f"{exc.strerror}") from exc
        with it:
            for de in it:
                name = de.name
                if name == OPAQUE_MARKER:
                    continue
                cur = found.get(name, False)
                if cur is None or (cur is not False and cur.closed):
                    continue
                st = de.stat(follow_symlinks=False)
                if cur is False:
                    found[name] = None if _whiteout(st) else _Found(de.path, st)
                elif stat.S_ISDIR(st.st_mode):
                    cur.sources.append(de.path)
                else:  # a whiteout or a non-directory below ends the directory's merge
                    cur.closed = True
        if i + 1 < len(sources) and _opaque(src):
            break
    return sorted((name, f) for name, f in found.items() if f is not None)


def walk(layers: Sequence[str]) -> Iterator[Entry]:
    """The merged entries of `layers` (top first) in `docker export` order, without user
    and group names (the caller knows which names the engine would give)."""
    first_name: dict[tuple[int, int], str] = {}  # inode -> first path walked
    stack = [iter(_listing([os.fsencode(d) for d in layers]))]
    prefixes = [b""]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            prefixes.pop()
            continue
        name, f = item
        rel = prefixes[-1] + b"/" + name
        if stat.S_ISSOCK(f.st.st_mode):
            continue  # the export skips sockets (tar cannot hold them)
        yield _entry(rel, f, first_name)
        if f.sources is not None:
            stack.append(iter(_listing(f.sources)))
            prefixes.append(rel)


def _entry(rel: bytes, f: _Found, first_name: dict) -> Entry:
    st = f.st
    path = os.fsdecode(rel)
    mode = st.st_mode
    kind, size, link, major, minor = "file", 0, "", 0, 0
    if stat.S_ISREG(mode):
        size = st.st_size
    elif stat.S_ISDIR(mode):
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind, link = "symlink", os.fsdecode(os.readlink(f.host))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "char" if stat.S_ISCHR(mode) else "block"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        kind = "fifo"
    if kind != "dir" and st.st_nlink > 1:
        first = first_name.setdefault((st.st_dev, st.st_ino), path)
        if first != path:
            kind, size, link = "hardlink", 0, first
    pax = _capability(f.host)
    return Entry(path, kind, mode & 0o7777, st.st_uid, st.st_gid, "", "", st.st_mtime_ns // _NS,
                 size, link, major, minor, pax, is_artefact(path))


def _capability(host: bytes) -> Optional[dict[str, str]]:
    try:
        cap = os.getxattr(host, _CAP_XATTR, follow_symlinks=False)
    except OSError:
        return None
    if len(cap) > 3 and cap[3] == 3:  # VFS_CAP_REVISION_3 -> 2: its root uid means nothing
        cap = cap[:3] + b"\x02" + cap[4:20]
    return {CAPABILITY_KEY: cap.decode("utf-8", "surrogateescape")}


class LayerReader:
    """Regular files of the merged layers opened by path: the topmost layer holding the
    name, found through real directories only (never through a symlink in a layer, which
    could point anywhere on the host), with the same merge rules as `walk`."""

    def __init__(self, layers: Sequence[str]) -> None:
        self.layers = [os.fsencode(d) for d in layers]
        # merged directory -> indexes of the layers whose host directory it merges
        self._dirs: dict[bytes, list[int]] = {b"": self._merge(b"", range(len(self.layers)))}

    def _merge(self, rel: bytes, candidates) -> list[int]:
        out = []
        for i in candidates:
            host = self.layers[i] + rel
            try:
                st = os.lstat(host) if rel else None
            except OSError:
                continue
            if st is not None and not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or non-directory hides this name below
            out.append(i)
            if _opaque(host):
                break
        return out

    def _dir(self, rel: bytes) -> list[int]:
        todo = []  # the directory and its ancestors not merged yet, deepest first
        while rel not in self._dirs:
            todo.append(rel)
            rel = rel[:rel.rfind(b"/")]
        cands = self._dirs[rel]
        for rel in reversed(todo):
            cands = self._merge(rel, cands)
            self._dirs[rel] = cands
        return cands

    def open_file(self, path: str) -> Optional[IO[bytes]]:
        rel = os.fsencode(path)
        if not rel.startswith(b"/") or rel == b"/":
            return None
        for i in self._dir(rel[:rel.rfind(b"/")]):
            host = self.layers[i] + rel
            try:
                st = os.lstat(host)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                return None  # deleted, or not a regular file in the merged view
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return os.fdopen(fd, "rb")
        return None

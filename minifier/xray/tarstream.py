"""A streaming tar reader over byte chunks that skips file data without copying it.

`docker save` nests each layer's tar inside the outer image tar, and a layer of 1 GB
must pass through without being held or copied: headers are parsed from the chunks as
they arrive, data a caller does not ask for is skipped by moving an offset, and a
member's data can itself be read as a chunk stream (a nested tar). Formats: ustar,
GNU (long names 'L'/'K', base-256 numbers) and PAX ('x' per member, 'g' global).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple, Optional

__all__ = ["TarError", "Header", "Member", "Cursor", "iter_tar", "number", "cstring", "pax_records",
           "BLOCK"]

BLOCK = 512
# Types whose size field counts data blocks in the archive (tarfile's rule: regular
# files and anything unknown); links, directories and devices carry no data.
_NO_DATA = frozenset(b"123456")


class TarError(Exception):
    """The stream is not a tar archive, or it ends in the middle of a member."""


class Header(NamedTuple):
    name: str  # as stored (relative, maybe with "./")
    type: str  # one character: "0" file, "1" hard link, "2" symlink, "5" dir, ...
    size: int
    mode: int
    linkname: str
    xattrs: Optional[dict] = None  # PAX SCHILY.xattr.* records, None when none


class Cursor:
    """Reads from an iterator of byte chunks; `skip` only moves an offset."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf: memoryview = memoryview(b"")
        self._pos = 0

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if len(chunk):
                self._buf, self._pos = memoryview(chunk), 0
                return True
        return False

    def take(self, n: int) -> bytes:
        """Exactly n bytes (fewer only at the end of the stream)."""
        end = self._pos + n
        if end <= len(self._buf):
            out = bytes(self._buf[self._pos:end])
            self._pos = end
            return out
        parts = [self._buf[self._pos:]]
        need = n - len(parts[0])
        self._pos = len(self._buf)
        while need > 0 and self._fill():
            piece = self._buf[:need]
            parts.append(piece)
            self._pos = len(piece)
            need -= len(piece)
        return b"".join(parts)

    def skip(self, n: int) -> int:
        """Skip n bytes; returns how many were really skipped (less at the end)."""
        done = 0
        while n > done:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._fill():
                    break
                continue
            step = min(avail, n - done)
            self._pos += step
            done += step
        return done

    def chunks(self, n: int) -> Iterator[memoryview]:
        """The next n bytes as views of the underlying chunks (no copy)."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._fill():
                    return
                continue
            step = min(avail, n)
            view = self._buf[self._pos:self._pos + step]
            self._pos += step
            n -= step
            yield view


class Member:
    """One member while it is current: its header and its data, read at most once."""

    __slots__ = ("header", "_cursor", "remaining")

    def __init__(self, header: Header, cursor: Cursor, size: int) -> None:
        self.header = header
        self._cursor = cursor
        self.remaining = size

    def read(self, limit: int) -> bytes:
        data = self._cursor.take(min(limit, self.remaining))
        self.remaining -= len(data)
        return data

    def chunks(self) -> Iterator[memoryview]:
        for view in self._cursor.chunks(self.remaining):
            self.remaining -= len(view)
            yield view


def number(field: bytes) -> int:
    if field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] & 0x40 else value
    field = field.strip(b" \x00")
    return int(field, 8) if field else 0


def cstring(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        if length <= 0:
            raise TarError("bad PAX record length")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _apply_pax(header: Header, pax: dict[str, str]) -> Header:
    fields = {}
    if "path" in pax:
        fields["name"] = pax["path"]
    if "linkpath" in pax:
        fields["linkname"] = pax["linkpath"]
    if "size" in pax:
        fields["size"] = int(pax["size"])
    xattrs = {k[len("SCHILY.xattr."):]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
    if xattrs:
        fields["xattrs"] = xattrs
    return header._replace(**fields) if fields else header


def _parse(block: bytes, check: bool) -> Header:
    try:
        return _header(block, check)
    except ValueError as exc:  # a number field that is not octal
        raise TarError(f"bad header ({exc}): not a tar stream, or a corrupt one") from exc


def _header(block: bytes, check: bool) -> Header:
    magic = block[257:263]
    # Every header of a ustar/GNU archive has its magic; the checksum (a sum over the
    # block) is verified where there is none, and on an archive's first header.
    if (check or magic[:5] != b"ustar") and (
            sum(block[:148]) + 256 + sum(block[156:]) != number(block[148:156])):
        raise TarError("bad header checksum (not a tar stream, or a corrupt one)")
    end = block.find(b"\x00", 0, 100)
    name = block[:end if end >= 0 else 100].decode("utf-8", "surrogateescape")
    if magic == b"ustar\x00" and block[345]:  # POSIX: a prefix field extends the name
        name = f"{cstring(block[345:500])}/{name}"
    type_ = chr(block[156]) if block[156] else "0"
    return Header(name, type_, number(block[124:136]), number(block[100:108]),
                  cstring(block[157:257]) if block[157] else "")


def iter_tar(cursor: Cursor) -> Iterator[Member]:
    """The members of one tar archive. Whatever a caller leaves unread of a member's
    data is skipped when the next member is asked for."""
    pending: dict[str, str] = {}
    glob: dict[str, str] = {}
    first = True
    while True:
        block = cursor.take(BLOCK)
        if len(block) < BLOCK:
            if block.strip(b"\x00"):
                raise TarError("the tar stream ends inside a header")
            return  # a stream without the two zero blocks: accept, like tar does
        if not block[0] and not block.strip(b"\x00"):  # a name never starts with NUL
            return
        header = _parse(block, first)
        first = False
        if header.type in "xgLK":
            padded = -header.size % BLOCK
            data = cursor.take(header.size)
            if len(data) < header.size:
                raise TarError("the tar stream ends inside an extended header")
            cursor.skip(padded)
            if header.type == "x":
                pending.update(pax_records(data))
            elif header.type == "g":
                glob.update(pax_records(data))
            else:
                pending["path" if header.type == "L" else "linkpath"] = cstring(data)
            continue
        if pending or glob:
            header = _apply_pax(header, {**glob, **pending} if glob else pending)
            pending = {}
        size = 0 if ord(header.type) in _NO_DATA else header.size
        member = Member(header, cursor, size)
        yield member
        left = member.remaining + (-size % BLOCK)
        if cursor.skip(left) < left:
            raise TarError(f"the tar stream ends inside {header.name!r}")

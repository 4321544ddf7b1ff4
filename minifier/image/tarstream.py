"""A forward-only tar reader lean enough to index an export stream at the stream's speed.

`tarfile` spends about 60 µs of Python per member (header objects, checks, a file object
per member), which is most of the time of indexing a 100k-file image. This reader parses
each 512-byte header in place and gives a member's data as a bounded read on the stream
itself; what the caller does not read is skipped. It reads what `docker export` and
Python's `tarfile` write (ustar, POSIX.1-2001 pax records, GNU long names) and gives the
same values as `tarfile` for each header field, which tests/unit/test_tarstream.py checks
member by member. GNU sparse members are refused (no engine writes them).
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from typing import IO, Optional

from minifier.errors import ImageError

__all__ = ["Member", "TarStream"]

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_REGULAR = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
_SUPPORTED = frozenset({*_REGULAR, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                        tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE})
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_PAX_INT = {"uid", "gid", "size"}
_PAX_FLOAT = {"mtime", "atime", "ctime"}
_PAX_NAMES = {"path", "linkpath", "uname", "gname"}
_SKIP = 1 << 20


class Member:
    """One tar member's header, with `tarfile.TarInfo`'s attribute names and values."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "uname", "gname", "mtime", "size",
                 "linkname", "devmajor", "devminor", "pax_headers")

    def isfile(self) -> bool:
        return self.type in _REGULAR or self.type not in _SUPPORTED


def _text(raw: bytes) -> str:
    cut = raw.find(b"\0")
    return (raw if cut < 0 else raw[:cut]).decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    if raw[0] in (0o200, 0o377):  # GNU base-256
        n = int.from_bytes(raw[1:], "big")
        return n - 256 ** (len(raw) - 1) if raw[0] == 0o377 else n
    cut = raw.find(b"\0")
    digits = (raw if cut < 0 else raw[:cut]).strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise ImageError("corrupt image tar stream: invalid header") from None


def _checksum_ok(buf: bytes) -> bool:
    try:
        stored = _number(buf[148:156])
    except ImageError:
        return False
    unsigned = sum(buf) - sum(buf[148:156]) + 256
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in buf[:148] + buf[156:]) + 256
    return stored == signed


def _pax(data: bytes, into: dict[str, str]) -> None:
    """Parse pax records into `into`, decoded the way tarfile decodes them."""
    binary = re.search(rb"\d+ hdrcharset=BINARY\n", data) is not None
    pos = 0
    while True:
        m = _PAX_RECORD.match(data, pos)
        if not m:
            return
        length = int(m.group(1))
        if length == 0:
            raise ImageError("corrupt image tar stream: invalid pax header")
        value = data[m.end(2) + 1:m.start(1) + length - 1]
        key = m.group(2).decode("utf-8", "surrogateescape")
        if key in _PAX_NAMES and binary:
            into[key] = value.decode("utf-8", "surrogateescape")
        else:
            try:
                into[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                into[key] = value.decode("utf-8", "surrogateescape")
        pos += length


class TarStream:
    """Members of a tar stream, one pass. While a member is current, `read` gives its
    data (bounded by its size); moving to the next member skips what was not read."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self._left = 0  # data bytes of the current member not read yet
        self._pad = 0  # padding after them
        self._global: dict[str, str] = {}
        self._names: dict[bytes, str] = {}
        self._scratch = bytearray(_SKIP)
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self.f.read(n) if n else b""
        if len(data) < n:
            raise ImageError("corrupt image tar stream: unexpected end of data")
        self._left -= n
        return data

    def _skip(self, n: int) -> None:
        view = memoryview(self._scratch)
        while n > 0:
            got = self.f.readinto(view[:min(n, _SKIP)])
            if not got:
                raise ImageError("corrupt image tar stream: unexpected end of data")
            n -= got

    def _block(self) -> Optional[bytes]:
        buf = self.f.read(_BLOCK)
        if len(buf) < _BLOCK:
            if not buf:
                return None
            raise ImageError("corrupt image tar stream: truncated header")
        return buf

    def _payload(self, size: int) -> bytes:
        data = self.f.read(size)
        if len(data) < size:
            raise ImageError("corrupt image tar stream: unexpected end of data")
        self._skip(-size % _BLOCK)
        return data

    def __iter__(self) -> Iterator[Member]:
        pax: dict[str, str] = {}
        longname = longlink = None
        while True:
            self._skip(self._left + self._pad)
            self._left = self._pad = 0
            buf = self._block()
            if buf is None or buf == _ZERO:
                if buf is None and not self.count:
                    raise ImageError("image filesystem is not a readable tar stream: empty")
                return
            if not _checksum_ok(buf):
                if not self.count:
                    raise ImageError("image filesystem is not a readable tar stream: "
                                     "bad checksum")
                raise ImageError("corrupt image tar stream: bad checksum")
            kind = buf[156:157]
            if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                _pax(self._payload(_number(buf[124:136])),
                     self._global if kind == tarfile.XGLTYPE else pax)
                continue
            if kind == tarfile.GNUTYPE_LONGNAME:
                longname = _text(self._payload(_number(buf[124:136])))
                continue
            if kind == tarfile.GNUTYPE_LONGLINK:
                longlink = _text(self._payload(_number(buf[124:136])))
                continue
            if kind == tarfile.GNUTYPE_SPARSE:
                raise ImageError("image tar stream has a GNU sparse member: not supported")
            m = self._member(buf, kind, {**self._global, **pax} if pax or self._global else {},
                             longname, longlink)
            pax, longname, longlink = {}, None, None
            self.count += 1
            self._left = m.size if m.isfile() else 0
            self._pad = -self._left % _BLOCK
            yield m

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names.setdefault(raw, _text(raw))
        return name

    def _member(self, buf: bytes, kind: bytes, pax: dict[str, str], longname: Optional[str],
                longlink: Optional[str]) -> Member:
        m = Member()
        name = _text(buf[0:100])
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        prefix = _text(buf[345:500])
        if prefix:
            name = prefix + "/" + name
        if longname is not None:
            name = longname.removesuffix("/") if kind == tarfile.DIRTYPE else longname
        m.name = name
        m.type = kind
        m.mode = _number(buf[100:108])
        m.uid = _number(buf[108:116])
        m.gid = _number(buf[116:124])
        m.size = _number(buf[124:136])
        m.mtime = _number(buf[136:148])
        m.linkname = longlink if longlink is not None else _text(buf[157:257])
        m.uname = self._name(buf[265:297])
        m.gname = self._name(buf[297:329])
        m.devmajor = _number(buf[329:337])
        m.devminor = _number(buf[337:345])
        m.pax_headers = pax
        if pax:
            _apply(m, pax)
        return m


def _apply(m: Member, pax: dict[str, str]) -> None:
    for key, value in pax.items():
        if key == "path":
            m.name = value.rstrip("/")
        elif key == "linkpath":
            m.linkname = value
        elif key in ("uname", "gname"):
            setattr(m, key, value)
        elif key in _PAX_INT or key == "mtime":
            try:
                setattr(m, key, int(value) if key in _PAX_INT else float(value))
            except ValueError:
                setattr(m, key, 0)

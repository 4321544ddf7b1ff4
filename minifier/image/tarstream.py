"""The one tar reader: forward only, over byte chunks, lean enough for 100k-file images.

Every tar minify reads goes through here: the image's export stream (the index pass,
imagefs.py, and content reads by path, source.py) and `docker save` with the layer
tars nested in it (xray). `tarfile` spends about 60 µs of Python per member (header
objects, checks, a file object each); here a header is parsed in place from the chunk
it arrived in, only the fields a caller asks for are decoded, data nobody reads is
skipped by moving an offset, and a member's data can itself be read as chunks (a nested
tar, gunzipped or not) without being held.

It reads what `docker export`, `docker save` and Python's `tarfile` write (ustar,
POSIX.1-2001 pax records, GNU long names, GNU base-256 numbers) and gives `tarfile`'s
values for every header field (tests/unit/test_tarstream.py checks them member by
member). Every header's checksum is verified; a damaged or truncated stream is an
error, never a silently shorter list. GNU sparse members are refused (no engine writes
them).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from functools import partial
from typing import IO, Optional, Union
from zlib import adler32

from minifier.errors import ImageError

__all__ = ["TarError", "Member", "TarStream", "BLOCK", "REGULAR", "DIRECTORY", "SYMLINK",
           "HARDLINK"]

BLOCK = 512
CHUNK = 1 << 20  # bytes asked of a file at a time
REGULAR, HARDLINK, SYMLINK, DIRECTORY = b"0", b"1", b"2", b"5"
# Members whose size counts data blocks in the archive: regular files and any type this
# reader does not know (tarfile's rule); links, directories, devices and fifos carry none.
_NO_DATA = frozenset((HARDLINK, SYMLINK, b"3", b"4", DIRECTORY, b"6"))
_REGULAR = frozenset((REGULAR, b"\x00", b"7"))
_PAX, _PAX_GLOBAL, _PAX_SOLARIS = b"x", b"g", b"X"
_LONGNAME, _LONGLINK, _SPARSE = b"L", b"K", b"S"
_EXTENDED = frozenset((_PAX, _PAX_GLOBAL, _PAX_SOLARIS, _LONGNAME, _LONGLINK))
_POSIX = b"ustar\x00"  # the magic of headers whose prefix field extends the name
_HIGH = bytes(range(128, 256))
_MULTIPLES = frozenset(range(-65521 * 3, 65521 * 3, 65521))  # a matching sum, modulo 65521
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_XATTR = "SCHILY.xattr."
_NO_PAX: dict[str, str] = {}  # the pax_headers of every member without records (never written to)


class TarError(ImageError):
    """The stream is not a tar archive, or it is damaged or cut short."""


def number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 for large values."""
    if field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] & 0x40 else value
    cut = field.find(b"\x00")
    digits = (field if cut < 0 else field[:cut]).strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise TarError(f"corrupt tar stream: invalid number field {bytes(field)!r}") from None


def text(field: bytes) -> str:
    """A NUL-terminated name field, as tarfile decodes it."""
    cut = field.find(b"\x00")
    return (field if cut < 0 else field[:cut]).decode("utf-8", "surrogateescape")


def checksum_ok(block: bytes) -> bool:
    """The header's checksum: the sum of its bytes with the checksum field as spaces.
    The sum is taken in C through Adler-32, whose low half is 1 + the byte sum modulo
    65521; any damage short of a change by a multiple of 65521 shows."""
    field = block[148:156]
    try:
        stored = int(field.strip(b" \x00") or b"0", 8)
    except ValueError:
        return False
    unsigned = (zlib.adler32(block) & 0xFFFF) + 255 - sum(field)
    if (unsigned - stored) % 65521 == 0:
        return True
    # Some old tars summed signed bytes: every byte above 127 then counts 256 less.
    high = len(block) - len(block.translate(None, _HIGH))
    high -= len(field) - len(field.translate(None, _HIGH))
    return (unsigned - 256 * high - stored) % 65521 == 0


def pax_records(data: bytes, into: dict[str, str]) -> None:
    """Parse pax records into `into`, decoded the way tarfile decodes them."""
    binary = re.search(rb"\d+ hdrcharset=BINARY\n", data) is not None
    pos = 0
    while True:
        m = _PAX_RECORD.match(data, pos)
        if not m:
            return
        length = int(m.group(1))
        if length == 0:
            raise TarError("corrupt tar stream: invalid pax record")
        value = data[m.end(2) + 1:m.start(1) + length - 1]
        key = m.group(2).decode("utf-8", "surrogateescape")
        if key in ("path", "linkpath", "uname", "gname") and binary:
            into[key] = value.decode("utf-8", "surrogateescape")
        else:
            try:
                into[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                into[key] = value.decode("utf-8", "surrogateescape")
        pos += length


class _Cursor:
    """Reads from an iterator of byte chunks; skipping only moves an offset."""

    __slots__ = ("_chunks", "_buf", "_pos")

    def __init__(self, chunks: Iterable) -> None:
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
        """Skip n bytes; how many were skipped (fewer at the end of the stream)."""
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

    def views(self, n: int) -> Iterator[memoryview]:
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


def _pax_int(pax: dict[str, str], key: str, field: bytes) -> int:
    if key in pax:
        try:
            return int(pax[key])
        except ValueError:
            return 0
    return number(field)


class Member:
    """One member's header, with `tarfile.TarInfo`'s attribute names and values. Name,
    type, size, mode and link are set; the other fields are decoded when asked for."""

    __slots__ = ("name", "type", "size", "mode", "linkname", "pax_headers", "_block")

    def isfile(self) -> bool:
        return self.type in _REGULAR or (self.type not in _NO_DATA
                                         and self.type not in _EXTENDED)

    @property
    def uid(self) -> int:
        return _pax_int(self.pax_headers, "uid", self._block[108:116])

    @property
    def gid(self) -> int:
        return _pax_int(self.pax_headers, "gid", self._block[116:124])

    @property
    def mtime(self) -> Union[int, float]:
        if "mtime" in self.pax_headers:
            try:
                return float(self.pax_headers["mtime"])
            except ValueError:
                return 0
        return number(self._block[136:148])

    @property
    def uname(self) -> str:
        pax = self.pax_headers
        return pax["uname"] if "uname" in pax else text(self._block[265:297])

    @property
    def gname(self) -> str:
        pax = self.pax_headers
        return pax["gname"] if "gname" in pax else text(self._block[297:329])

    @property
    def devmajor(self) -> int:
        return number(self._block[329:337])

    @property
    def devminor(self) -> int:
        return number(self._block[337:345])

    @property
    def xattrs(self) -> dict[str, str]:
        """Its pax SCHILY.xattr.* records, by attribute name."""
        return {k[len(_XATTR):]: v for k, v in self.pax_headers.items() if k.startswith(_XATTR)}


class TarStream:
    """The members of one tar archive, one pass. `source` is a binary file or an
    iterable of byte chunks (a member's `chunks()` of an outer archive, too). While a
    member is current, `read` and `chunks` give its data; moving on skips the rest."""

    def __init__(self, source: Union[IO[bytes], Iterable]) -> None:
        if hasattr(source, "read"):
            source = iter(partial(source.read, CHUNK), b"")
        self._cursor = _Cursor(source)
        self._left = 0  # data bytes of the current member not read yet
        self._pad = 0  # padding after them
        self._name = ""  # of the current member, for errors
        self.count = 0  # members so far

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes of the current member's data (all that is left: -1)."""
        if n < 0 or n > self._left:
            n = self._left
        data = self._cursor.take(n) if n else b""
        self._left -= len(data)
        if len(data) < n:
            raise self._cut()
        return data

    def chunks(self) -> Iterator[memoryview]:
        """The rest of the current member's data, as views of the stream's chunks."""
        for view in self._cursor.views(self._left):
            self._left -= len(view)
            yield view
        if self._left:
            raise self._cut()

    def _cut(self) -> TarError:
        return TarError(f"corrupt tar stream: it ends inside {self._name!r}")

    def _end(self, block: bytes) -> bool:
        """Whether a short or NUL-led block ends the archive (else it is a header)."""
        if not block.strip(b"\x00"):
            if not block and not self.count:
                raise TarError("not a readable tar stream: it is empty")
            return True  # the zero blocks, or a stream that ends without them
        if len(block) < BLOCK:
            raise TarError("corrupt tar stream: it ends inside a header")
        return False

    def _payload(self, size: int) -> bytes:
        data = self._cursor.take(size)
        if len(data) < size or self._cursor.skip(-size % BLOCK) < -size % BLOCK:
            raise TarError("corrupt tar stream: it ends inside an extended header")
        return data

    def __iter__(self) -> Iterator[Member]:
        take, skip = self._cursor.take, self._cursor.skip
        pax: dict[str, str] = {}
        glob: dict[str, str] = {}
        longname = longlink = None
        while True:  # one header per turn: this loop runs 100k times for a large image
            left = self._left + self._pad
            if left and skip(left) < left:
                raise self._cut()
            self._left = self._pad = 0
            block = take(BLOCK)
            if (len(block) < BLOCK or not block[0]) and self._end(block):
                return
            # The checksum (see checksum_ok), its usual case inline: one addition in C.
            field = block[148:156]
            try:
                fast = field[6:] == b"\x00 " and (adler32(block) & 0xFFFF) + 255 \
                    - sum(field) - int(field[:6], 8) in _MULTIPLES
            except ValueError:  # not octal: checksum_ok says so
                fast = False
            if not fast:
                if not checksum_ok(block):
                    raise TarError("corrupt tar stream: bad header checksum" if self.count
                                   else "not a readable tar stream: bad header checksum")
            kind = block[156:157]
            if kind in _EXTENDED:
                data = self._payload(number(block[124:136]))
                if kind == _LONGNAME:
                    longname = text(data)
                elif kind == _LONGLINK:
                    longlink = text(data)
                else:
                    pax_records(data, glob if kind == _PAX_GLOBAL else pax)
                continue
            if kind == _SPARSE:
                raise TarError(f"tar stream has a GNU sparse member ({text(block[:100])!r}): "
                               "not supported")
            headers = _NO_PAX
            if pax or glob:
                headers, pax = {**glob, **pax}, {}
            m = _member(block, kind, headers, longname, longlink)
            longname = longlink = None
            self.count += 1
            self._name = m.name
            self._left = 0 if m.type in _NO_DATA else m.size
            self._pad = -self._left % BLOCK
            yield m


def _member(block: bytes, kind: bytes, pax: dict[str, str], longname: Optional[str],
            longlink: Optional[str]) -> Member:
    m = Member()
    end = block.find(b"\x00", 0, 100)
    name = block[:end if end >= 0 else 100].decode("utf-8", "surrogateescape")
    if kind == b"\x00" and name.endswith("/"):  # old V7 tars: a directory
        kind = DIRECTORY
    if longname is not None:
        name = longname.removesuffix("/") if kind == DIRECTORY else longname
    else:
        if kind == DIRECTORY:
            name = name.rstrip("/")
        if block[345] and block[257:263] == _POSIX:  # a prefix field extends the name
            name = f"{text(block[345:500])}/{name}"
    m.type = kind
    m.name = name
    m.linkname = longlink if longlink is not None else (
        text(block[157:257]) if block[157] else "")
    field = block[100:108]
    try:  # the usual octal text at C speed; anything else through number()
        m.mode = int(field.strip(b" \x00") or b"0", 8)
    except ValueError:
        m.mode = number(field)
    field = block[124:136]
    try:
        m.size = int(field.strip(b" \x00") or b"0", 8)
    except ValueError:
        m.size = number(field)
    m.pax_headers = pax
    m._block = block
    if pax:
        _apply_pax(m, pax)
    return m


def _apply_pax(m: Member, pax: dict[str, str]) -> None:
    """The pax records that replace header fields (uid, gid, mtime and the names are
    read from them when asked for)."""
    if "path" in pax:
        m.name = pax["path"].rstrip("/")
    m.linkname = pax.get("linkpath", m.linkname)
    if "size" in pax:
        m.size = _pax_int(pax, "size", m._block[124:136])

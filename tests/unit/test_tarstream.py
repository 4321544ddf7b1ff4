"""tarstream, the one tar reader: tarfile's values for every header field and the same
bytes on tars written in each format tarfile writes, whatever the chunking of the
stream; nested archives streamed through; damaged streams are errors."""

from __future__ import annotations

import io
import tarfile

import pytest

from minifier.errors import ImageError
from minifier.image.tarstream import TarError, TarStream

FIELDS = ("name", "type", "mode", "uid", "gid", "uname", "gname", "mtime", "size", "linkname",
          "devmajor", "devminor", "pax_headers")


def _members():
    long_dir = "d" * 90 + "/" + "e" * 90
    out = []

    def add(name, kind=tarfile.REGTYPE, data=b"", **kw):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        ti.mode = kw.pop("mode", 0o644)
        ti.mtime = kw.pop("mtime", 1_600_000_000)
        for k, v in kw.items():
            setattr(ti, k, v)
        out.append((ti, data))

    add("etc", tarfile.DIRTYPE, mode=0o755)
    add("etc/empty")
    add("etc/one-block", data=b"x" * 512)
    add("etc/more", data=bytes(range(256)) * 5, mode=0o4755, uid=1000, gid=1000,
        uname="app", gname="app")
    add(long_dir, tarfile.DIRTYPE)
    add(long_dir + "/" + "f" * 120, data=b"deep and long")
    add("etc/link", tarfile.SYMTYPE, linkname="/" + "t" * 150)
    add("etc/hard", tarfile.LNKTYPE, linkname="etc/more")
    add("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
    add("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)
    add("run/fifo", tarfile.FIFOTYPE)
    add("caf\u00e9 men\u00fc", data=b"unicode")
    add("raw\udce9name", data=b"not utf-8")
    add("big/ids", data=b"i", uid=3_000_000, gid=3_000_001)
    add("big/mtime", data=b"m", mtime=8_835_955_200)
    add("caps", data=b"c", pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})
    return out


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_same_headers_and_bytes_as_tarfile(fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        if fmt == tarfile.PAX_FORMAT:
            tf.pax_headers = {"comment": "global record"}
        for ti, data in _members():
            if fmt == tarfile.USTAR_FORMAT and (len(ti.name) > 250 or len(ti.linkname) > 100
                                                or ti.uid > 0o7777777 or ti.pax_headers
                                                or ti.mtime > 0o77777777777
                                                or not ti.name.isascii()):
                continue  # ustar cannot hold these
            tf.addfile(ti, io.BytesIO(data) if data or ti.isfile() else None)
    raw = buf.getvalue()
    want = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as tf:
        for ti in tf:
            data = tf.extractfile(ti).read() if ti.isfile() else None
            want.append(tuple(getattr(ti, f) for f in FIELDS) + (data,))
    got = []
    stream = TarStream(io.BufferedReader(io.BytesIO(raw)))
    for i, m in enumerate(stream):
        # read part of some members only: the rest must be skipped correctly
        data = (stream.read(3) + stream.read() if i % 2 else stream.read()) if m.isfile() \
            else None
        got.append(tuple(getattr(m, f) for f in FIELDS) + (data,))
    assert got == want
    assert len(got) >= 9


def _tar(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _all(raw: bytes) -> list:
    return [m.name for m in TarStream(io.BytesIO(raw))]


def test_damaged_streams_are_errors():
    raw = _tar(("a", b"x" * 2000), ("b", b"y"))
    with pytest.raises(TarError, match="^not a readable tar stream: it is empty$"):
        _all(b"")
    with pytest.raises(TarError, match="^not a readable tar stream: bad header checksum$"):
        _all(b"garbage" * 100)
    with pytest.raises(TarError, match="^corrupt tar stream: it ends inside 'a'$"):
        _all(raw[:1000])
    with pytest.raises(TarError, match="^corrupt tar stream: it ends inside a header$"):
        _all(raw[:512 + 2048 + 100])
    second = 512 + 2048  # the second member's header
    for at in (10, 100, 148, 300, 511):  # any byte of it, the checksum field too
        bad = raw[:second + at] + bytes([raw[second + at] ^ 0x41]) + raw[second + at + 1:]
        with pytest.raises(TarError, match="^corrupt tar stream: bad header checksum$"):
            _all(bad)
    assert _all(raw) == ["a", "b"]
    assert issubclass(TarError, ImageError)  # a bad image, exit code 3


def _chunks(data: bytes, size: int):
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [1, 511, 4096, 1 << 20])
def test_the_same_from_chunks_whatever_their_size(fmt, chunk):
    long = "d/" + "x" * 150 + "/file"  # beyond ustar's 100 characters: prefix, L, or PAX
    members = [("etc", tarfile.DIRTYPE, b""), ("etc/hosts", tarfile.REGTYPE, b"127.0.0.1\n"),
               ("bin/sh", tarfile.SYMTYPE, b""), (long, tarfile.REGTYPE, b"z" * 1500)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            ti.type, ti.size, ti.linkname = kind, len(data), "dash" if kind == b"2" else ""
            tf.addfile(ti, io.BytesIO(data))
    stream = TarStream(_chunks(buf.getvalue(), chunk))
    seen = [(m.name, m.type, m.size, m.linkname, stream.read(10)) for m in stream]
    assert seen == [("etc", b"5", 0, "", b""), ("etc/hosts", b"0", 10, "", b"127.0.0.1\n"),
                    ("bin/sh", b"2", 0, "dash", b""), (long, b"0", 1500, "", b"z" * 10)]


def test_pax_xattrs():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("a/dir")
        ti.type = tarfile.DIRTYPE
        ti.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
        tf.addfile(ti)
    (m,) = list(TarStream([buf.getvalue()]))
    assert m.xattrs == {"trusted.overlay.opaque": "y"}


def test_gnu_base256_size():
    block = bytearray(_tar(("big", b"abc"))[512:1024])  # the member's own header
    block[124:136] = b"\x80" + (3).to_bytes(11, "big")  # base-256 encoding of 3
    block[148:156] = b"        "
    block[148:155] = f"{sum(block):06o}\x00".encode()
    data = bytes(block) + b"abc".ljust(512, b"\x00") + b"\x00" * 1024
    stream = TarStream([data])
    assert [(m.size, stream.read()) for m in stream] == [(3, b"abc")]


def test_a_nested_archive_streams_through_without_the_outer_data_being_held():
    inner = _tar(("x/y", b"payload"), ("x/.wh.gone", b""))
    outer = _tar(("layer.tar", inner), ("after.json", b"{}"))
    names = []
    stream = TarStream(_chunks(outer, 700))
    for m in stream:
        names.append(m.name)
        if m.name == "layer.tar":
            nested = TarStream(stream.chunks())
            names += [f"  {i.name}:{nested.read().decode()}" for i in nested]
    assert names == ["layer.tar", "  x/y:payload", "  x/.wh.gone:", "after.json"]

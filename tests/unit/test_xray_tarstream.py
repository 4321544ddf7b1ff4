"""The streaming tar reader against archives written by Python's tarfile (ustar, GNU,
PAX), nested archives, data read on demand and damaged streams."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from minifier.xray.source import read_saved
from minifier.xray.tarstream import Cursor, TarError, iter_tar


def _tar(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, extra in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mode = extra.get("mode", 0o644)
            for k, v in extra.items():
                setattr(ti, k, v)
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def _chunks(data: bytes, size: int):
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [1, 511, 4096, 1 << 20])
def test_headers_and_data_whatever_the_chunking(fmt, chunk):
    long = "d/" + "x" * 150 + "/file"  # beyond ustar's 100 characters: prefix, L, or PAX
    data = _tar([
        ("etc", tarfile.DIRTYPE, b"", {"mode": 0o755}),
        ("etc/hosts", tarfile.REGTYPE, b"127.0.0.1 localhost\n", {}),
        ("bin/sh", tarfile.SYMTYPE, b"", {"linkname": "dash"}),
        ("bin/hard", tarfile.LNKTYPE, b"", {"linkname": "etc/hosts"}),
        (long, tarfile.REGTYPE, b"z" * 1500, {"mode": 0o755}),
    ], fmt)
    seen = []
    for m in iter_tar(Cursor(_chunks(data, chunk))):
        h = m.header
        body = m.read(10) if h.type == "0" else b""
        seen.append((h.name, h.type, h.size, h.mode, h.linkname, body))
    assert seen == [
        ("etc/", "5", 0, 0o755, "", b""),  # as tarfile writes directory names
        ("etc/hosts", "0", 20, 0o644, "", b"127.0.0.1 "),
        ("bin/sh", "2", 0, 0o644, "dash", b""),
        ("bin/hard", "1", 0, 0o644, "etc/hosts", b""),
        (long, "0", 1500, 0o755, "", b"zzzzzzzzzz"),
    ]


def test_pax_xattrs_and_long_link_names():
    target = "/" + "t" * 200
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("a/link")
        ti.type, ti.linkname = tarfile.SYMTYPE, target
        ti.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
        t.addfile(ti)
    (m,) = list(iter_tar(Cursor([buf.getvalue()])))
    assert m.header.linkname == target
    assert m.header.xattrs == {"trusted.overlay.opaque": "y"}


def test_gnu_base256_size():
    block = bytearray(_tar([("big", tarfile.REGTYPE, b"abc", {})], tarfile.GNU_FORMAT)[:512])
    block[124:136] = b"\x80" + (3).to_bytes(11, "big")  # base-256 encoding of 3
    block[148:156] = b"        "
    block[148:155] = f"{sum(block):06o}\x00".encode()
    data = bytes(block) + b"abc".ljust(512, b"\x00") + b"\x00" * 1024
    (m,) = [(x.header.size, x.read(3)) for x in iter_tar(Cursor([data]))]
    assert m == (3, b"abc")


def test_nested_archive_streams_through_without_reading_the_outer_data():
    inner = _tar([("x/y", tarfile.REGTYPE, b"payload", {}), ("x/.wh.gone", tarfile.REGTYPE, b"",
                                                             {})])
    outer = _tar([("layer.tar", tarfile.REGTYPE, inner, {}),
                  ("after.json", tarfile.REGTYPE, b"{}", {})])
    names = []
    for m in iter_tar(Cursor(_chunks(outer, 700))):
        names.append(m.header.name)
        if m.header.name == "layer.tar":
            names += [f"  {i.header.name}" for i in iter_tar(Cursor(m.chunks()))]
    assert names == ["layer.tar", "  x/y", "  x/.wh.gone", "after.json"]


def test_truncated_and_garbage_streams_are_errors():
    data = _tar([("f", tarfile.REGTYPE, b"a" * 2000, {})])
    with pytest.raises(TarError, match="ends inside 'f'"):
        list(iter_tar(Cursor([data[:1200]])))
    with pytest.raises(TarError, match="not a tar stream"):
        list(iter_tar(Cursor([b"not a tar at all".ljust(512, b"!")])))


def _saved(layers: dict, manifest_layers: list, links: dict = None) -> bytes:
    """A docker-save-like archive: layer tars, a config, a manifest (written last)."""
    config = b'{"rootfs": {"diff_ids": ["sha256:a", "sha256:b"]}, "history": []}'
    members = [(name, tarfile.REGTYPE, data, {}) for name, data in layers.items()]
    members += [(name, tarfile.SYMTYPE, b"", {"linkname": target})
                for name, target in (links or {}).items()]
    members.append(("cfg.json", tarfile.REGTYPE, config, {}))
    manifest = json.dumps([{"Config": "cfg.json", "Layers": manifest_layers}]).encode()
    members.append(("manifest.json", tarfile.REGTYPE, manifest, {}))
    return _tar(members)


def test_read_saved_orders_layers_by_the_manifest_and_follows_links():
    one = _tar([("one", tarfile.REGTYPE, b"1", {})])
    two = gzip.compress(_tar([("two", tarfile.REGTYPE, b"22", {})]))
    data = _saved({"b/layer.tar": two, "a/layer.tar": one},
                  ["a/layer.tar", "b/layer.tar", "c/layer.tar"], {"c/layer.tar": "../a/layer.tar"})

    def scan(chunks, size):
        return [(m.header.name, m.read(5)) for m in iter_tar(Cursor(chunks))], size

    saved = read_saved(_chunks(data, 1000), scan)
    assert [layer[0] for layer in saved.layers] == [[("one", b"1")], [("two", b"22")],
                                                    [("one", b"1")]]
    assert saved.layers[0][1] == len(one) and saved.layers[1][1] == len(two)
    assert saved.diff_ids == ("sha256:a", "sha256:b")

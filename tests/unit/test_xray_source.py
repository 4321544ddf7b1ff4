"""Reading `docker save` streams: layers in the manifest's order, links followed, gzipped
and plain layer tars nested in the outer archive."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from minifier.image.tarstream import TarStream
from minifier.xray.source import read_saved


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
        tar = TarStream(chunks)
        return [(m.name, tar.read(5)) for m in tar], size

    saved = read_saved(_chunks(data, 1000), scan)
    assert [layer[0] for layer in saved.layers] == [[("one", b"1")], [("two", b"22")],
                                                    [("one", b"1")]]
    assert saved.layers[0][1] == len(one) and saved.layers[1][1] == len(two)
    assert saved.diff_ids == ("sha256:a", "sha256:b")

"""overlay: the merged view of overlay2 layer directories, built on disk the way the
engine stores layers (whiteouts are character devices 0:0, opaque directories carry
trusted.overlay.opaque=y), against a hand-written expectation of what `docker export`
streams. Needs root (mknod, trusted.* xattrs), like minify itself."""

from __future__ import annotations

import os
import socket

import pytest

from minifier.image.index import Index
from minifier.image.overlay import CAPABILITY_KEY, LayerReader, walk
from minifier.image.source import StorageSource

CAP2 = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service+ep
CAP3 = bytes.fromhex("010000030020000000000000000000000000000000000000")  # the same, v3


def put(layer, rel, data=b"", mode=0o644, mtime=1_600_000_000):
    path = os.path.join(layer, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))
    return path


def mkdir(layer, rel, mode=0o755, opaque=False):
    path = os.path.join(layer, rel.lstrip("/"))
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if opaque:
        os.setxattr(path, b"trusted.overlay.opaque", b"y")
    return path


def whiteout(layer, rel):
    path = os.path.join(layer, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


@pytest.fixture()
def layers(tmp_path):
    """Three layers, top first, and a host directory a hostile layer links to."""
    top, mid, low = (str(tmp_path / n) for n in ("top", "mid", "low"))
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_bytes(b"host file, not the image's")
    for d in (top, mid, low):
        os.makedirs(d)
    # lowest layer
    put(low, "/a/keep", b"kept from the lowest layer")
    put(low, "/a/gone", b"deleted above")
    put(low, "/a/sub/deep", b"under a deleted dir")
    put(low, "/opq/old", b"hidden by an opaque dir")
    put(low, "/marked/old", b"hidden by a .wh..wh..opq marker")
    put(low, "/f", b"a file that becomes a dir")
    put(low, "/d/x", b"a dir that becomes a file")
    put(low, "/h1", b"hard-linked", mode=0o4755)
    os.link(os.path.join(low, "h1"), os.path.join(low, "h2"))
    os.link(os.path.join(low, "h1"), os.path.join(low, "h3"))
    os.setxattr(put(low, "/cap", b"c", mode=0o755), b"security.capability", CAP2)
    os.setxattr(put(low, "/cap3", b"c", mode=0o755), b"security.capability", CAP3)
    os.mknod(os.path.join(low, "null"), 0o666 | 0o020000, os.makedev(1, 3))
    os.chmod(os.path.join(low, "null"), 0o666)  # mknod's mode passes the umask
    os.mkfifo(os.path.join(low, "fifo"), 0o600)
    os.symlink("/a", os.path.join(low, "link"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(low, "sock"))
    sock.close()
    os.symlink(str(host), os.path.join(low, "evil"))
    # middle layer
    whiteout(mid, "/a/gone")
    whiteout(mid, "/a/sub")
    mkdir(mid, "/opq", opaque=True)
    put(mid, "/opq/new", b"new in the opaque dir")
    put(mid, "/marked/.wh..wh..opq")
    put(mid, "/marked/new", b"new in the marked dir")
    mkdir(mid, "/f")
    put(mid, "/f/inside", b"in the dir that replaced a file")
    put(mid, "/d", b"the file that replaced a dir")
    # top layer
    mkdir(top, "/a", mode=0o700)
    put(top, "/a/gone/again", b"re-created over the whiteout")
    whiteout(top, "/h2")
    mkdir(top, "/evil")  # a real dir over the lower layer's symlink to the host
    os.chown(put(top, "/owned", b"o"), 1234, 4321)
    return [top, mid, low]


EXPECTED = [  # (path, type, linkname) in byte order, parents first, as docker export
    ("/a", "dir", ""), ("/a/gone", "dir", ""), ("/a/gone/again", "file", ""),
    ("/a/keep", "file", ""),
    ("/cap", "file", ""), ("/cap3", "file", ""),
    ("/d", "file", ""),
    ("/evil", "dir", ""),
    ("/f", "dir", ""), ("/f/inside", "file", ""),
    ("/fifo", "fifo", ""),
    ("/h1", "file", ""), ("/h3", "hardlink", "/h1"),
    ("/link", "symlink", "/a"),
    ("/marked", "dir", ""), ("/marked/new", "file", ""),
    ("/null", "char", ""),
    ("/opq", "dir", ""), ("/opq/new", "file", ""),
    ("/owned", "file", ""),
]


def test_merged_entries_in_export_order(layers):
    got = list(walk(layers))
    assert [(e.path, e.type, e.linkname) for e in got] == EXPECTED


def test_metadata_like_the_export(layers):
    got = {e.path: e for e in walk(layers)}
    assert got["/a"].mode == 0o700  # the topmost layer's directory
    assert (got["/h1"].mode, got["/h1"].size) == (0o4755, len(b"hard-linked"))
    assert (got["/h3"].size, got["/h3"].mode) == (0, 0o4755)
    assert (got["/null"].devmajor, got["/null"].devminor, got["/null"].mode) == (1, 3, 0o666)
    assert got["/d"].size == len(b"the file that replaced a dir")
    assert got["/a/keep"].mtime == 1_600_000_000
    assert (got["/owned"].uid, got["/owned"].gid) == (1234, 4321)
    assert got["/cap"].pax == {CAPABILITY_KEY: CAP2.decode("utf-8", "surrogateescape")}
    # revision 3 (a namespaced root uid) is stored as revision 2, as the engine does
    assert got["/cap3"].pax == {CAPABILITY_KEY: CAP2.decode("utf-8", "surrogateescape")}
    assert got["/a/keep"].pax is None
    assert all(e.uname == "" and e.gname == "" for e in got.values())


def test_reader_opens_the_topmost_file_through_real_directories_only(layers):
    reader = LayerReader(layers)

    def read(path):
        f = reader.open_file(path)
        if f is None:
            return None
        with f:
            return f.read()

    assert read("/a/keep") == b"kept from the lowest layer"
    assert read("/a/gone/again") == b"re-created over the whiteout"
    assert read("/f/inside") == b"in the dir that replaced a file"
    assert read("/d") == b"the file that replaced a dir"
    assert read("/opq/new") == b"new in the opaque dir"
    for hidden in ("/a/gone", "/a/sub/deep", "/opq/old", "/marked/old", "/d/x", "/f",
                   "/h2", "/evil/secret", "/link", "/a", "/nope", "/"):
        assert read(hidden) is None, hidden


def test_storage_source_index_names_from_the_image(tmp_path, layers):
    put(layers[0], "/etc/passwd", b"root:x:0:0::/root:/bin/sh\nimg:x:1234:4321::/:/bin/sh\n")
    put(layers[0], "/etc/group", b"root:x:0:\nimgs:x:4321:\n")
    fs = StorageSource(layers).scan(Index(str(tmp_path / "i.db")), None, {"image": "x"})
    assert (fs.lookup("/owned").uname, fs.lookup("/owned").gname) == ("img", "imgs")
    assert (fs.lookup("/a/keep").uname, fs.lookup("/a/keep").gname) == ("root", "root")
    assert fs.index.meta()["reader"] == "storage"
    assert fs.index.meta()["contents"] == "metadata"
    # bytes come by path, only when asked for
    with fs.open_content("/h3") as f:
        assert f.read() == b"hard-linked"
    assert fs.content("/etc/passwd").startswith(b"root:x:0:0")
    nameless = StorageSource(layers, image_names=False).scan(Index(), None, {})
    assert nameless.lookup("/owned").uname == ""


def test_a_layer_file_changed_since_indexing_stops_the_build(tmp_path, layers):
    from minifier.errors import ImageError

    fs = StorageSource(layers).scan(Index(), None, {})
    with open(os.path.join(layers[2], "a", "keep"), "ab") as f:
        f.write(b" and more")
    with pytest.raises(ImageError, match=r"^/a/keep: the index says 26 bytes, the image's "
                                         r"layer holds 35; build again with --no-cache$"):
        fs.open_content("/a/keep")

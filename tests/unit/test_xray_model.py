"""xray's layer model: scanning layer tars, stacking layers like the engine, and dive's
wasted-space figures on small layer sets whose answers are worked out by hand."""

from __future__ import annotations

import io
import tarfile

import pytest

from minifier.image.tarstream import TarError
from minifier.xray.layers import (
    DIR,
    FILE,
    OPAQUE,
    SYMLINK,
    WHITEOUT,
    CapturePolicy,
    Entry,
    LayerScan,
    scan_layer,
)
from minifier.xray.overlay import stack
from minifier.xray.waste import dive_waste


def layer(*entries) -> LayerScan:
    return LayerScan(entries=tuple(Entry(*e) for e in entries), captured={}, tar_bytes=0)


def d(path):
    return (path, DIR, 0, 0o755)


def f(path, size):
    return (path, FILE, size, 0o644)


def test_scan_turns_whiteouts_and_opaque_markers_into_entries_and_captures_contents():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, mode in (("usr/bin/app", b"\x7fELF" + b"\0" * 5000, 0o755),
                                 ("usr/bin/readme", b"text", 0o644),
                                 ("var/lib/dpkg/status", b"Package: a\n", 0o644),
                                 ("etc/.wh.old.conf", b"", 0o644),
                                 ("srv/.wh..wh..opq", b"", 0o644)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            t.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("bin")
        ti.type, ti.linkname = tarfile.SYMTYPE, "usr/bin"
        t.addfile(ti)
    scan = scan_layer([buf.getvalue()], 1234, CapturePolicy())
    assert scan.entries == (
        Entry("/usr/bin/app", FILE, 5004, 0o755), Entry("/usr/bin/readme", FILE, 4, 0o644),
        Entry("/var/lib/dpkg/status", FILE, 11, 0o644), Entry("/etc/old.conf", WHITEOUT, 0),
        Entry("/srv", OPAQUE, 0), Entry("/bin", SYMLINK, 0, 0o644, "usr/bin"))
    # the executable's head (4 kB), the whole package database; not the plain text file
    assert scan.captured == {"/usr/bin/app": b"\x7fELF" + b"\0" * 4092,
                             "/var/lib/dpkg/status": b"Package: a\n"}
    assert scan.tar_bytes == 1234 and scan.content_bytes == 5019


def test_capture_policy_follows_the_image_config():
    policy = CapturePolicy.for_config({"Env": ["PATH=/opt/app/bin:/usr/bin"],
                                       "WorkingDir": "/srv", "Entrypoint": ["/entry/run"]})
    assert policy.limit("/opt/app/bin/tool", 0o755) == 4096
    assert policy.limit("/srv/start", 0o700) == 4096
    assert policy.limit("/entry/run", 0o755) == 4096
    assert policy.limit("/opt/app/bin/data", 0o644) == 0
    assert policy.limit("/opt/other/tool", 0o755) == 0


def test_stack_hides_deleted_overwritten_and_opaque_versions():
    layers = [
        layer(d("/a"), f("/a/x", 10), f("/a/y", 20), d("/b"), f("/b/z", 30), f("/c", 40)),
        layer(("/a/x", WHITEOUT, 0), f("/a/y", 25), ("/b", OPAQUE, 0), f("/b/new", 5)),
        layer(("/a", WHITEOUT, 0), d("/c"), f("/c/inner", 1)),
    ]
    st = stack(layers)
    assert sorted(st.view) == ["/b", "/b/new", "/c", "/c/inner"]
    assert sorted((s.path, s.size, s.layer, s.by, s.how) for s in st.shadowed) == [
        ("/a/x", 10, 0, 1, "deleted"), ("/a/y", 20, 0, 1, "overwritten"),
        ("/a/y", 25, 1, 2, "deleted"), ("/b/z", 30, 0, 1, "deleted"),
        ("/c", 40, 0, 2, "overwritten")]
    c0, c1, c2 = st.changes
    assert (c0.added, c0.modified, c0.deleted, c0.added_bytes) == (4, 0, 0, 100)
    assert (c1.added, c1.modified, c1.deleted) == (1, 1, 2)
    assert (c1.modified_bytes, c1.deleted_bytes) == (25, 40)
    assert (c2.added, c2.modified, c2.deleted, c2.deleted_bytes) == (1, 0, 1, 25)


def test_dive_counts_every_copy_of_an_overwritten_file_and_a_deleted_file_once():
    layers = [
        layer(d("/app"), f("/app/data", 100), f("/app/keep", 7)),
        layer(d("/app"), f("/app/data", 60)),  # overwritten: both copies are dive's waste
        layer(d("/tmp"), f("/tmp/big", 1000)),
        layer(d("/tmp"), ("/tmp/big", WHITEOUT, 0)),  # a deleted file: its size, once
    ]
    w = dive_waste(layers)
    assert [(x.path, x.references, x.bytes) for x in w.files] == [
        ("/tmp/big", 2, 1000), ("/app/data", 2, 160)]
    assert w.wasted_bytes == 1160
    # per path: minimum / cumulative; /app/keep (7) counts once, whiteout min is 0
    assert w.efficiency == (60 + 7 + 0) / (160 + 7 + 1000)
    assert (w.size_bytes, w.user_size_bytes) == (1167, 1060)
    assert w.user_wasted_percent == 1160 / 1060


def test_dive_does_not_count_a_deleted_directory_as_waste():
    # dive visits leaves only: the directory's whiteout is a new path holding the
    # subtree's size, its files a path seen once: efficient, by dive's definition
    layers = [layer(d("/d"), f("/d/a", 10), f("/d/b", 5)), layer(("/d", WHITEOUT, 0))]
    w = dive_waste(layers)
    assert w.files == () and w.wasted_bytes == 0 and w.efficiency == 1.0
    assert stack(layers).shadowed[0].how == "deleted"  # the true picture still has it


def test_dive_skips_the_rest_of_a_layer_after_a_whiteout_with_nothing_below():
    layers = [layer(f("/z", 9)), layer(("/a", WHITEOUT, 0), f("/z", 9))]
    w = dive_waste(layers)
    # "/a" sorts before "/z": dive's visit of layer 1 stops at it, so "/z" is seen once
    assert w.files == () and w.efficiency == (9 - 1) / 9


def test_dive_ignores_opaque_markers_and_counts_empty_directory_leaves():
    layers = [layer(d("/e"), d("/s"), f("/s/old", 3)),
              layer(d("/e"), d("/s"), ("/s", OPAQUE, 0), f("/s/new", 4))]
    w = dive_waste(layers)
    assert [(x.path, x.references, x.bytes) for x in w.files] == [("/e", 2, 0)]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [1, 700, 1 << 20])
def test_scan_reads_every_tar_format_whatever_the_chunking(fmt, chunk):
    long = "opt/" + "x" * 150 + "/bin/tool"  # beyond 100 characters: prefix, L, or PAX
    target = "/" + "t" * 120 if fmt != tarfile.USTAR_FORMAT else "/short"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, mode, link in (
                ("./etc/", tarfile.DIRTYPE, b"", 0o755, ""),
                ("etc/passwd", tarfile.REGTYPE, b"root:x:0:0::/root:/bin/sh\n", 0o644, ""),
                (long, tarfile.REGTYPE, b"\x7fELF" + b"z" * 5000, 0o755, ""),
                ("usr/bin/ln", tarfile.SYMTYPE, b"", 0o777, target),
                ("usr/bin/hard", tarfile.LNKTYPE, b"", 0o644, "./etc/passwd"),
                ("var/lib/dpkg/status", tarfile.REGTYPE, b"Package: x\n", 0o644, "")):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.linkname, ti.size = kind, mode, link, len(data)
            t.addfile(ti, io.BytesIO(data) if data else None)
    data = buf.getvalue()
    policy = CapturePolicy(head_dirs=frozenset({"/" + long.rsplit("/", 1)[0]}))
    scan = scan_layer((data[i:i + chunk] for i in range(0, len(data), chunk)), len(data), policy)
    assert scan.entries == (
        Entry("/etc", DIR, 0, 0o755), Entry("/etc/passwd", FILE, 26, 0o644),
        Entry("/" + long, FILE, 5004, 0o755), Entry("/usr/bin/ln", SYMLINK, 0, 0o777, target),
        Entry("/usr/bin/hard", "hardlink", 0, 0o644, "/etc/passwd"),
        Entry("/var/lib/dpkg/status", FILE, 11, 0o644))
    assert scan.captured == {"/" + long: b"\x7fELF" + b"z" * 4092,
                             "/var/lib/dpkg/status": b"Package: x\n"}


def test_scan_refuses_truncated_and_garbage_streams():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("f")
        ti.size = 3000
        t.addfile(ti, io.BytesIO(b"a" * 3000))
    with pytest.raises(TarError, match="ends inside 'f'"):
        scan_layer([buf.getvalue()[:2000]], 0)
    with pytest.raises(TarError, match="not a readable tar stream"):
        scan_layer([b"garbage".ljust(512, b"!")], 0)


def test_a_diff_directory_reads_like_its_layer_tar(tmp_path):
    import os
    import stat as st

    from minifier.xray.storage import scan_directory

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app.conf").write_bytes(b"x" * 10)
    os.link(tmp_path / "etc" / "app.conf", tmp_path / "etc" / "b-link.conf")
    os.symlink("app.conf", tmp_path / "etc" / "alias")
    os.mknod(tmp_path / "etc" / "gone", st.S_IFCHR | 0o600, 0)  # overlay2's whiteout
    (tmp_path / "srv").mkdir()
    os.setxattr(tmp_path / "srv", "trusted.overlay.opaque", b"y")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / ".wh..wh..opq").write_bytes(b"")  # the marker form of opaque
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(tmp_path / "usr" / "bin" / "tool", 0o755)
    scan = scan_directory(str(tmp_path))
    assert [(e.path, e.kind, e.size, e.link) for e in scan.entries] == [
        ("/etc", DIR, 0, ""), ("/etc/alias", SYMLINK, 0, "app.conf"),
        ("/etc/app.conf", FILE, 10, ""), ("/etc/b-link.conf", "hardlink", 0, "/etc/app.conf"),
        ("/etc/gone", WHITEOUT, 0, ""), ("/srv", DIR, 0, ""), ("/srv", OPAQUE, 0, ""),
        ("/usr", DIR, 0, ""), ("/usr/bin", DIR, 0, ""), ("/usr/bin/tool", FILE, 18, ""),
        ("/var", DIR, 0, ""), ("/var", OPAQUE, 0, "")]
    assert scan.captured == {"/usr/bin/tool": b"#!/bin/sh\necho hi\n"}
    assert scan.tar_bytes is None

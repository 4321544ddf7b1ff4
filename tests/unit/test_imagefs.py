"""imagefs: one-pass scan of a synthetic image tar and chroot-style path resolution."""

from __future__ import annotations

import io

import pytest

from minifier.image.imagefs import HEAD_SIZE, Resolution, normalize, scan
from tests.unit.fixtures import make_tar, member, scan_members

BASE = [
    member("bin", "symlink", link="usr/bin"),
    member("etc", "dir"),
    member("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"),
    member("etc/os-release", data=b"ID=minify-test\n"),
    member("etc/big.txt", data=b"x" * 10_000),
    member("lib", "symlink", link="usr/lib"),
    member("usr", "dir"),
    member("usr/bin", "dir"),
    member("usr/bin/tool", data=b"\x7fELF" + b"\0" * 400, mode=0o4755),
    member("usr/bin/run", data=b"#!/bin/sh\necho hi\n", mode=0o755),
    member("usr/bin/run-too", "hardlink", link="usr/bin/run"),
    member("usr/lib", "dir", mode=0o700, uid=1000, gid=1000),
    member("usr/lib/libx.so.1.2", data=b"\x7fELFlib"),
    member("usr/lib/libx.so.1", "symlink", link="libx.so.1.2"),
    member("usr/lib/libx.so", "symlink", link="/lib/libx.so.1"),
    member("srv", "dir"),
    member("srv/os.txt", "symlink", link="/etc/os-release"),
    member("srv/escape", "symlink", link="../../../../etc/os-release"),
    member("srv/loop1", "symlink", link="loop2"),
    member("srv/loop2", "symlink", link="/srv/loop1"),
    member("srv/hl", "hardlink", link="etc/os-release"),
    member("srv/notdir", "symlink", link="/etc/passwd/x"),
    member(".dockerenv", data=b""),
    member("proc", "dir"),
    member("dev", "dir"),
    member("dev/null", "char", dev=(1, 3)),
    member("etc/hosts", data=b""),
    member("./etc/caf\udce9 menu.txt", data=b"latin-1 name"),
]


@pytest.fixture()
def fs(tmp_path):
    return scan_members(tmp_path, BASE)


def test_normalize():
    assert normalize("./etc/") == "/etc"
    assert normalize("") == "/"
    assert normalize("//usr//bin/../lib") == "/usr/lib"


def test_metadata_recorded(fs):
    tool = fs.lookup("/usr/bin/tool")
    assert (tool.type, tool.mode, tool.size) == ("file", 0o4755, 404)
    lib = fs.lookup("/usr/lib")
    assert (lib.type, lib.mode, lib.uid, lib.gid, lib.uname) == ("dir", 0o700, 1000, 1000, "app")
    assert fs.lookup("/srv/hl").linkname == "/etc/os-release"
    assert fs.lookup("/dev/null").devmajor == 1 and fs.lookup("/dev/null").devminor == 3
    assert fs.lookup("/") is not None  # synthesised root
    assert fs.lookup("/etc/caf\udce9 menu.txt").size == len(b"latin-1 name")


def test_artefacts_marked(fs):
    assert fs.lookup("/.dockerenv").artefact
    assert fs.lookup("/proc").artefact and fs.lookup("/dev/null").artefact
    assert fs.lookup("/etc/hosts").artefact
    assert not fs.lookup("/etc/passwd").artefact


def test_heads_and_captured(fs):
    assert fs.head("/usr/bin/tool") == (b"\x7fELF" + b"\0" * 400)[:HEAD_SIZE]
    assert fs.head("/etc/big.txt") == b""  # only ELF and #! heads are kept
    assert fs.content("/etc/passwd") == b"root:x:0:0:root:/root:/bin/sh\n"
    assert fs.content("/etc/big.txt") is None  # not captured: only its head is kept
    assert fs.head("/usr/bin/run-too") == b"#!/bin/sh\necho hi\n"  # a hard link: its target's


def test_resolve_dir_symlink_and_chain(fs):
    assert fs.resolve("/lib/libx.so") == Resolution(
        "/usr/lib/libx.so.1.2", ("/lib", "/usr/lib/libx.so", "/lib", "/usr/lib/libx.so.1"))
    assert fs.resolve("/bin/tool") == Resolution("/usr/bin/tool", ("/bin",))
    assert fs.resolve("/usr/lib/libx.so", follow_last=False).final == "/usr/lib/libx.so"


def test_absolute_symlink_stays_in_image(fs):
    assert fs.resolve("/srv/os.txt") == Resolution("/etc/os-release", ("/srv/os.txt",))


def test_dotdot_clamped_at_root(fs):
    assert fs.resolve("/srv/escape").final == "/etc/os-release"
    assert fs.resolve("/../../etc/passwd").final == "/etc/passwd"


def test_loop_detected(fs):
    res = fs.resolve("/srv/loop1")
    assert res.final is None and res.error == "loop"
    assert set(res.via) == {"/srv/loop1", "/srv/loop2"}


def test_missing_and_notdir(fs):
    assert fs.resolve("/nope/x") == Resolution(None, (), "missing")
    assert fs.resolve("/srv/notdir").error == "notdir"
    assert fs.resolve("/proc/self").final is None  # docker artefacts never resolve


def test_children_and_walk(fs):
    assert fs.children("/srv") == ["/srv/escape", "/srv/hl", "/srv/loop1", "/srv/loop2",
                                   "/srv/notdir", "/srv/os.txt"]
    assert fs.walk("/usr/lib")[0] == "/usr/lib"
    assert set(fs.walk("/usr/lib")) == {"/usr/lib", "/usr/lib/libx.so", "/usr/lib/libx.so.1",
                                        "/usr/lib/libx.so.1.2"}


def test_xattrs_kept(tmp_path):
    fs = scan_members(tmp_path, [member("ping", data=b"x",
                                        pax={"SCHILY.xattr.security.capability": "\x01"})])
    assert fs.lookup("/ping").pax == {"SCHILY.xattr.security.capability": "\x01"}


def test_scan_is_streaming(tmp_path):
    """A non-seekable stream works: the scan makes exactly one forward pass."""
    path = make_tar(tmp_path / "i.tar", BASE)

    class OneWay(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def readable(self):
            return True

        def readinto(self, b):
            data = self.f.read(len(b))
            b[: len(data)] = data
            return len(data)

    with open(path, "rb") as f:
        fs = scan(io.BufferedReader(OneWay(f)))
    assert fs.resolve("/bin/tool").final == "/usr/bin/tool"

"""procfs.read_in_root: a file of a container read through its root (/proc/PID/root) as
a process inside it reads it: symlinks followed inside that root, never out of it."""

from __future__ import annotations

import os

from minifier.procfs import read_in_root


def _root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (root / "conf" / "group").write_text("root:x:0:\n")
    return root


def test_a_plain_file(tmp_path):
    root = _root(tmp_path)
    assert read_in_root(str(root), "/etc/passwd") == b"root:x:0:0::/:/bin/sh\n"


def test_absolute_and_relative_symlinks_are_followed_from_the_root(tmp_path):
    root = _root(tmp_path)
    os.symlink("/conf/group", root / "etc" / "group")  # absolute: from the container's root
    os.symlink("../conf", root / "cfg")
    assert read_in_root(str(root), "/etc/group") == b"root:x:0:\n"
    assert read_in_root(str(root), "/cfg/group") == b"root:x:0:\n"


def test_a_directory_symlink_on_the_way(tmp_path):
    root = _root(tmp_path)
    os.rename(root / "etc", root / "real-etc")
    os.symlink("/real-etc", root / "etc")
    assert read_in_root(str(root), "/etc/passwd") == b"root:x:0:0::/:/bin/sh\n"


def test_nothing_is_read_out_of_the_root(tmp_path):
    root = _root(tmp_path)
    (tmp_path / "secret").write_text("host's own\n")
    os.symlink("../../../../secret", root / "escape")  # clamps at the root, as chroot does
    os.symlink("/../secret", root / "escape2")
    assert read_in_root(str(root), "/escape") is None
    assert read_in_root(str(root), "/escape2") is None
    assert read_in_root(str(root), "/../secret") is None


def test_loops_directories_and_missing_files_are_none(tmp_path):
    root = _root(tmp_path)
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    assert read_in_root(str(root), "/a") is None
    assert read_in_root(str(root), "/etc") is None
    assert read_in_root(str(root), "/etc/shadow") is None
    os.mkfifo(root / "etc" / "fifo")
    assert read_in_root(str(root), "/etc/fifo") is None  # never blocks on a FIFO

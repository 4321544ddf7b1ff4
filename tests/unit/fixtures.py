"""Builders shared by the unit tests: image tar members and tars, a scanned image, a
Debian-like tree with real ELF files, the one ImageInfo builder, and a process in new
namespaces to launch into.

Test modules import helpers from here (or elves.py), never from each other.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from minifier.image.imagefs import ImageFS, scan
from minifier.image.source import TarFileSource
from minifier.records import ImageInfo
from tests.unit.elves import gcc_elf

__all__ = ["member", "make_tar", "scan_members", "LIBDIR", "host_bytes", "elf_members",
           "chain_members", "image_info", "unshared"]

# -- image tars --------------------------------------------------------------------------


def member(name, kind="file", data=b"", mode=None, link="", uid=0, gid=0, mtime=1_600_000_000,
           pax=None, dev=(0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    """One tar member as an image export has it (`kind`: file, dir, symlink, hardlink,
    char, fifo, block), with its data."""
    ti = tarfile.TarInfo(name)
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE,
               "block": tarfile.BLKTYPE}[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.linkname, ti.uid, ti.gid, ti.mtime = link, uid, gid, mtime
    ti.uname, ti.gname = ("root", "root") if uid == 0 else ("app", "app")
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = dict(pax)
    ti.size = len(data) if kind == "file" else 0
    return ti, data


def make_tar(path, members) -> str:
    """A PAX tar of `members` at `path`."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isfile() else None)
    return str(path)


def scan_members(tmp_path: Path, members) -> ImageFS:
    """The image index of `members`, as the export stream would give it."""
    path = make_tar(tmp_path / "image.tar", members)
    with TarFileSource(path).open() as f:
        return scan(f)


# -- a Debian-like tree with real ELF files ----------------------------------------------

LIBDIR = "usr/lib/x86_64-linux-gnu"


def host_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def elf_members(extra=()):
    """A merged-/usr Debian-like tree holding the host's /usr/bin/true and its libs."""
    return [
        member("bin", "symlink", link="usr/bin"),
        member("lib", "symlink", link="usr/lib"),
        member("lib64", "dir"),
        member("lib64/ld-linux-x86-64.so.2", "symlink",
               link="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        member("usr", "dir"),
        member("usr/bin", "dir"),
        member("usr/bin/true", data=host_bytes("/usr/bin/true"), mode=0o755),
        member("usr/lib", "dir"),
        member(LIBDIR, "dir"),
        member(f"{LIBDIR}/ld-linux-x86-64.so.2",
               data=host_bytes("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), mode=0o755),
        member(f"{LIBDIR}/libc.so.6", data=host_bytes("/lib/x86_64-linux-gnu/libc.so.6"),
               mode=0o755),
        *extra,
    ]


def chain_members(tmp_path: Path):
    """/usr/bin/a needs libb.so.1 needs libc2.so.1, stored against the dependency order."""
    gcc_elf(tmp_path, "libc2.so.1", shared=True, soname="libc2.so.1")
    gcc_elf(tmp_path, "libb.so.1", shared=True, soname="libb.so.1", needs=["libc2.so.1"],
            link_dirs=[tmp_path])
    gcc_elf(tmp_path, "a", needs=["libb.so.1"], link_dirs=[tmp_path])
    tree = elf_members()
    return tree[:9] + [
        member(f"{LIBDIR}/libc2.so.1", data=(tmp_path / "libc2.so.1").read_bytes()),
        member(f"{LIBDIR}/libb.so.1", data=(tmp_path / "libb.so.1").read_bytes()),
        member("usr/bin/a", data=(tmp_path / "a").read_bytes(), mode=0o755),
    ] + tree[9:]



# -- records -----------------------------------------------------------------------------

_IMAGE = ImageInfo(ref="t:latest", id="sha256:" + "a" * 64, repo_tags=("t:latest",), size=0,
                   architecture="amd64", os="linux", entrypoint=(), cmd=(), env=(),
                   workdir="", user="", exposed_ports=(), volumes=(), labels={},
                   stop_signal="", healthcheck=None, config={})


def image_info(**overrides) -> ImageInfo:
    """What `docker image inspect` would say of a plain image, with `overrides` (lists
    are taken as the record's tuples)."""
    return replace(_IMAGE, **{k: tuple(v) if isinstance(v, list) else v
                              for k, v in overrides.items()})


# -- namespaces ----------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@contextlib.contextmanager
def unshared(*flags: str) -> Iterator[int]:
    """A `sleep` in namespaces of its own (`unshare --fork FLAGS`), like a container's
    PID 1 for the launcher to join: its host pid, once its user namespace (if any) is
    mapped. It and everything in its pid namespace are killed at the end."""
    unshare = subprocess.Popen(["unshare", *flags, "--fork", "sleep", "30"])
    target = 0
    try:
        deadline = time.monotonic() + 10
        while not _children(unshare.pid):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        target = _children(unshare.pid)[0]
        if "--user" in flags:
            while not Path(f"/proc/{target}/gid_map").read_text().strip():  # mapped later
                assert time.monotonic() < deadline
                time.sleep(0.02)
        yield target
    finally:
        if target:  # a pid namespace's init: killing it ends everything inside
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        unshare.kill()
        unshare.wait(10)

"""Which cgroup.procs files move a process into the container's cgroups.

A process minify launches into the container joins the cgroup of the container's PID 1
in every hierarchy where its own differs: one line of /proc/PID/cgroup per cgroup v1
hierarchy (controllers such as "cpu,cpuacct", or "name=systemd") and "0::" for the v2
unified one. Each is reached through a writable mount of that hierarchy whose root
holds the path (/proc/self/mountinfo); where minify runs in a container its own are
read-only binds of its own cgroup, so the hierarchies are mounted afresh in a mount
namespace of the tracer's own. The parsers and the lookup are pure functions, unit-tested
on cgroup v1 and v2 layouts.
"""

from __future__ import annotations

import ctypes
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

__all__ = ["CgroupError", "Mount", "parse_mountinfo", "parse_cgroup", "cgroup_procs",
           "container_procs"]

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
_CGROUP_ROOT = "/sys/fs/cgroup"


class CgroupError(Exception):
    """The container's cgroups cannot be joined from here (the reason says why)."""


@dataclass(frozen=True)
class Mount:
    """One line of /proc/PID/mountinfo, the fields the cgroup lookup needs."""

    root: str  # the path inside the filesystem that is mounted here
    point: str
    fstype: str
    options: frozenset[str]  # per-mount options and the filesystem's own, merged


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3:
            continue
        options = frozenset(fields[5].split(",")) | frozenset(tail[2].split(","))
        mounts.append(Mount(_unescape(fields[3]), _unescape(fields[4]), tail[0], options))
    return mounts


def parse_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as hierarchy -> path; the hierarchy is its controllers
    ("cpu,cpuacct", "name=systemd") for cgroup v1 and "" for the v2 unified one."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2]
    return out


def _serves(mount: Mount, hierarchy: str) -> bool:
    if not hierarchy:
        return mount.fstype == "cgroup2"
    return mount.fstype == "cgroup" and set(hierarchy.split(",")) <= mount.options


def _under(path: str, root: str) -> Optional[str]:
    """`path` relative to `root` when it lies under it, else None."""
    if root == "/":
        return path.lstrip("/")
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return path[len(root):].lstrip("/")
    return None


def _procs_file(hierarchy: str, path: str, mounts: Sequence[Mount]) -> Optional[str]:
    for m in mounts:
        rel = _under(path, m.root)
        if _serves(m, hierarchy) and rel is not None and "ro" not in m.options:
            return f"{posixpath.normpath(m.point + '/' + rel)}/cgroup.procs"
    return None


def cgroup_procs(target: str, own: str,
                 mounts: Sequence[Mount]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cgroup.procs files that move a process from the cgroups of `own` (text of
    /proc/self/cgroup) into those of `target` (of the container's PID 1), one per
    hierarchy where they differ, cgroup v1 and v2 alike; and the hierarchies that no
    writable mount whose root holds the path reaches (minify in a container sees its
    own cgroup only, read-only: those it mounts itself, see _mount_hierarchies).
    """
    mine = parse_cgroup(own)
    files, missing = [], []
    for hierarchy, path in parse_cgroup(target).items():
        if mine.get(hierarchy) == path:
            continue
        if path.startswith("/.."):
            raise CgroupError(
                f"the container's cgroup ({path}) lies outside minify's cgroup namespace: "
                "give minify's own container --cgroupns=host")
        found = _procs_file(hierarchy, path, mounts)
        if found is None:
            missing.append(hierarchy)
        else:
            files.append(found)
    return tuple(files), tuple(missing)


def _mount_hierarchies(hierarchies: Sequence[str]) -> list[Mount]:
    """Mount each cgroup hierarchy afresh (rw, at its root) in a mount namespace of the
    calling process's own, on a tmpfs over /sys/fs/cgroup: where minify runs in a
    container, its own cgroup mounts are read-only and show only its own cgroup. The
    calling process is the tracer: its namespace ends with it, nothing is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_ulong, ctypes.c_char_p]

    def call(rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise CgroupError(
                f"no writable cgroup mount reaches the container's cgroups and mounting "
                f"them failed ({what}: {os.strerror(err)}); minify in a container needs "
                "--security-opt seccomp=unconfined (and apparmor=unconfined where the "
                "host has AppArmor)")

    call(libc.unshare(_CLONE_NEWNS), "unshare")
    call(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    call(libc.mount(b"minify", _CGROUP_ROOT.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                    b"mode=755"), f"tmpfs on {_CGROUP_ROOT}")
    for hierarchy in hierarchies:
        where = f"{_CGROUP_ROOT}/{hierarchy or 'unified'}"
        os.mkdir(where)
        fstype, data = (b"cgroup", hierarchy.encode()) if hierarchy else (b"cgroup2", None)
        if hierarchy.startswith("name="):
            data = f"none,{hierarchy}".encode()
        call(libc.mount(b"cgroup", where.encode(), fstype, _MS_NOSUID | _MS_NODEV, data),
             f"mount {hierarchy or 'cgroup2'}")
    return parse_mountinfo(_read("/proc/self/mountinfo"))


def container_procs(pid: int) -> tuple[str, ...]:
    """The cgroup.procs files that move a process of ours into the cgroups of `pid`."""
    target, own = _read(f"/proc/{pid}/cgroup"), _read("/proc/self/cgroup")
    files, missing = cgroup_procs(target, own, parse_mountinfo(_read("/proc/self/mountinfo")))
    if missing:
        files, missing = cgroup_procs(target, own, _mount_hierarchies(missing))
    if missing:
        name = missing[0] or "unified (v2)"
        raise CgroupError(f"no writable mount of the {name} cgroup hierarchy reaches "
                               "the container's cgroup")
    return files

"""The image's package database: which package installed which file.

Read from the final filesystem's captured files: dpkg (`/var/lib/dpkg/status` and
`info/*.list`, or distroless' `status.d/`), apk (`/lib/apk/db/installed`) and rpm
(`rpmdb.sqlite`). Paths a package lists through a symlinked directory (`/lib` ->
`usr/lib` on merged-/usr systems) are resolved inside the image, so they meet the
paths the layers really carry.
"""

from __future__ import annotations

import os
import posixpath
import re
import sqlite3
import struct
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from minifier.xray.layers import SYMLINK

__all__ = ["Package", "PackageDB", "read_packages", "parse_dpkg_status", "parse_apk_installed",
           "parse_rpm_header", "Resolver"]


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: tuple[str, ...]  # as the database lists them


@dataclass(frozen=True)
class PackageDB:
    manager: str  # "dpkg" | "apk" | "rpm" | "" (none found)
    packages: tuple[Package, ...] = ()
    owners: Mapping[str, str] = field(default_factory=dict)  # image path -> package

    def owner(self, path: str) -> str:
        return self.owners.get(path, "")

    def files_of(self, names: Iterable[str]) -> set[str]:
        wanted = set(names)
        return {p for p, n in self.owners.items() if n in wanted}


def _paragraphs(text: str) -> Iterable[dict[str, str]]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if fields:
            yield fields


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed packages of a dpkg status file: name -> version."""
    return {p["Package"]: p.get("Version", "") for p in _paragraphs(text)
            if "Package" in p and p.get("Status", "install ok installed").endswith(" installed")}


def parse_apk_installed(text: str) -> list[Package]:
    packages = []
    for block in re.split(r"\n\s*\n", text):
        name = version = ""
        directory = ""
        files: list[str] = []
        for line in block.splitlines():
            tag, _, value = line.partition(":")
            if tag == "P":
                name = value
            elif tag == "V":
                version = value
            elif tag == "F":
                directory = value
            elif tag == "R":
                files.append("/" + posixpath.join(directory, value))
        if name:
            packages.append(Package(name, version, tuple(files)))
    return packages


_RPM_TAGS = {1000: "name", 1001: "version", 1116: "dirindexes", 1117: "basenames",
             1118: "dirnames"}


def _rpm_value(store: bytes, type_: int, offset: int, count: int):
    if type_ == 4:  # INT32
        return struct.unpack_from(f">{count}i", store, offset)
    if type_ in (6, 8, 9):  # STRING, STRING_ARRAY, I18NSTRING
        out = []
        for _ in range(count if type_ != 6 else 1):
            end = store.index(b"\x00", offset)
            out.append(store[offset:end].decode("utf-8", "surrogateescape"))
            offset = end + 1
        return out
    return None


def parse_rpm_header(blob: bytes) -> Package:
    """One package header blob of an rpm database (the sqlite `Packages.blob`)."""
    count, size = struct.unpack_from(">ii", blob, 0)
    store = blob[8 + 16 * count:8 + 16 * count + size]
    tags = {}
    for i in range(count):
        tag, type_, offset, n = struct.unpack_from(">iiii", blob, 8 + 16 * i)
        if tag in _RPM_TAGS:
            tags[_RPM_TAGS[tag]] = _rpm_value(store, type_, offset, n)
    names = tags.get("basenames") or []
    dirs = tags.get("dirnames") or []
    index = tags.get("dirindexes") or []
    files = tuple(dirs[i] + b for i, b in zip(index, names))
    return Package((tags.get("name") or [""])[0], (tags.get("version") or [""])[0], files)


def _rpm_packages(data: bytes) -> list[Package]:
    fd, tmp = tempfile.mkstemp(prefix="minify-rpmdb-", suffix=".sqlite")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # immutable: rpm's database is in WAL mode, and even a read-only connection would
        # leave its -wal and -shm files next to the copy.
        db = sqlite3.connect(f"file:{tmp}?mode=ro&immutable=1", uri=True)
        try:
            rows = db.execute("SELECT blob FROM Packages").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    finally:
        os.unlink(tmp)
    return [parse_rpm_header(bytes(r[0])) for r in rows if r[0]]


class Resolver:
    """Resolves the directory part of a path through the image's symlinks."""

    def __init__(self, links: Mapping[str, str]) -> None:
        self._links = links  # symlink path -> target, from the final filesystem
        self._dirs: dict[str, str] = {"/": "/"}

    def directory(self, path: str, depth: int = 0) -> str:
        cached = self._dirs.get(path)
        if cached is not None:
            return cached
        cut = path.rfind("/")
        up = self.directory(path[:cut] or "/", depth)
        real = (up.rstrip("/") + path[cut:]) if cut >= 0 else path
        target = self._links.get(real)
        if target is not None and depth < 40:
            base = posixpath.dirname(real)
            real = self.directory(posixpath.normpath(posixpath.join(base, target)), depth + 1)
        self._dirs[path] = real
        return real

    def file(self, path: str) -> str:
        if "//" in path or "/." in path:
            path = posixpath.normpath(path)
        cut = path.rfind("/")
        return self.directory(path[:cut] or "/").rstrip("/") + path[cut:]


def _dpkg(captured: Mapping[str, bytes]) -> list[Package]:
    text = captured.get("/var/lib/dpkg/status", b"").decode("utf-8", "replace")
    installed = parse_dpkg_status(text)
    lists: dict[str, list[str]] = {}
    for path, data in captured.items():
        if path.startswith("/var/lib/dpkg/info/") and path.endswith(".list"):
            name = posixpath.basename(path)[:-5].split(":", 1)[0]
            lists.setdefault(name, []).extend(
                ln for ln in data.decode("utf-8", "surrogateescape").splitlines() if ln)
    for path, data in captured.items():  # distroless: one status file per package
        if path.startswith("/var/lib/dpkg/status.d/") and not path.endswith(".md5sums"):
            installed.update(parse_dpkg_status(data.decode("utf-8", "replace")))
        elif path.startswith("/var/lib/dpkg/status.d/"):
            name = posixpath.basename(path)[:-len(".md5sums")]
            lists.setdefault(name, []).extend(
                "/" + ln.split(None, 1)[1] for ln in data.decode("utf-8", "replace").splitlines()
                if len(ln.split(None, 1)) == 2)
    return [Package(n, v, tuple(lists.get(n, ()))) for n, v in sorted(installed.items())]


def read_packages(captured: Mapping[str, bytes], view: Mapping[str, object]) -> PackageDB:
    """The package database of the final filesystem. `captured` holds the final
    versions of the captured files; `view` maps each path to an object with `.entry`."""
    manager, packages = "", []
    if "/var/lib/dpkg/status" in captured or any(
            p.startswith("/var/lib/dpkg/status.d/") for p in captured):
        manager, packages = "dpkg", _dpkg(captured)
    elif "/lib/apk/db/installed" in captured or "/usr/lib/apk/db/installed" in captured:
        data = captured.get("/lib/apk/db/installed") or captured["/usr/lib/apk/db/installed"]
        manager, packages = "apk", parse_apk_installed(data.decode("utf-8", "replace"))
    else:
        for path in ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"):
            if path in captured:
                manager, packages = "rpm", _rpm_packages(captured[path])
                break
    if not manager:
        return PackageDB("")
    links = {p: v.entry.link for p, v in view.items() if v.entry.kind == SYMLINK}
    resolve = Resolver(links)
    owners: dict[str, str] = {}
    for package in packages:
        for listed in package.files:
            real = resolve.file(listed)
            if real in view and real not in owners:
                owners[real] = package.name
    return PackageDB(manager, tuple(packages), owners)

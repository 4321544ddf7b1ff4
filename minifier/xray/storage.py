"""Layers read in place from the engine's overlay2 directories: no `docker save`.

Each layer's diff directory is walked the way the engine packs it into the layer's tar
(names in byte order, parents first): a character device 0:0 is a whiteout, a directory
with the xattr trusted.overlay.opaque=y (or a `.wh..wh..opq` marker) is opaque, a
second name of an inode within the layer is a hard link. Sizes come from lstat; only
the contents the capture policy asks for are read. The config (with its history) is
the engine's own file in its image store. Used where `storage_decision` (the same rules
as `minify build`'s storage reader) says the directories can be read here; otherwise
xray streams `docker save`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from minifier.errors import EngineError, UsageError
from minifier.image.source import storage_decision
from minifier.xray.layers import (
    DIR,
    FILE,
    HARDLINK,
    OPAQUE,
    SYMLINK,
    WH_OPAQUE,
    WHITEOUT,
    CapturePolicy,
    Entry,
    LayerScan,
    SavedImage,
)

__all__ = ["StorageLayerSource", "scan_directory", "choose_layer_source"]

_OPAQUE_XATTR = b"trusted.overlay.opaque"
_SPECIAL = {stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo"}


def _opaque(host: bytes) -> bool:
    try:
        return os.getxattr(host, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _read_head(host: bytes, limit: int) -> Optional[bytes]:
    try:
        with open(host, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


class _Walk:
    """One diff directory's entries, pre-order, names in byte order."""

    def __init__(self, policy: CapturePolicy) -> None:
        self.policy = policy
        self.entries: list[Entry] = []
        self.captured: dict[str, bytes] = {}
        self.first_name: dict[tuple[int, int], str] = {}

    def directory(self, host: bytes, path: str) -> None:
        with os.scandir(host) as it:
            items = sorted((de.name, de) for de in it)
        for name, de in items:
            child = ("" if path == "/" else path) + "/" + os.fsdecode(name)
            if name == WH_OPAQUE.encode():
                self.entries.append(Entry(path, OPAQUE, 0))
                continue
            st = de.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self.entries.append(Entry(child, DIR, 0, st.st_mode & 0o7777))
                if _opaque(de.path):
                    self.entries.append(Entry(child, OPAQUE, 0))
                self.directory(de.path, child)
            else:
                self.other(de.path, child, st)

    def other(self, host: bytes, path: str, st: os.stat_result) -> None:
        mode = st.st_mode & 0o7777
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFCHR and st.st_rdev == 0:
            self.entries.append(Entry(path, WHITEOUT, 0))
        elif kind == stat.S_IFLNK:
            self.entries.append(Entry(path, SYMLINK, 0, mode, os.fsdecode(os.readlink(host))))
        elif kind == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.first_name:
                self.entries.append(Entry(path, HARDLINK, 0, mode, self.first_name[key]))
                return
            self.first_name.setdefault(key, path)
            self.entries.append(Entry(path, FILE, st.st_size, mode))
            limit = self.policy.limit(path, mode) if st.st_size else 0
            data = _read_head(host, limit) if limit else None
            if data is not None:
                self.captured[path] = data
        elif kind in _SPECIAL:
            self.entries.append(Entry(path, _SPECIAL[kind], 0, mode))
        # sockets: a layer tar cannot hold them


def scan_directory(diff_dir: str, policy: Optional[CapturePolicy] = None) -> LayerScan:
    walk = _Walk(policy or CapturePolicy())
    walk.directory(os.fsencode(diff_dir), "/")
    return LayerScan(entries=tuple(walk.entries), captured=walk.captured, tar_bytes=None)


class StorageLayerSource:
    """The image's layers from their overlay2 diff directories (bottom first)."""

    def __init__(self, layer_dirs: Sequence[str], config_path: str,
                 diff_ids: Sequence[str]) -> None:
        self.layer_dirs = tuple(layer_dirs)
        self.config_path = config_path
        self.diff_ids = tuple(diff_ids)

    def read(self, policy: CapturePolicy) -> SavedImage:
        try:
            with open(self.config_path, encoding="utf-8") as f:
                config = json.load(f)
            layers = tuple(scan_directory(d, policy) for d in self.layer_dirs)
        except (OSError, ValueError) as exc:
            raise EngineError(f"reading the image's storage failed: {exc}") from exc
        return SavedImage(config=config, layers=layers, diff_ids=self.diff_ids)


def _readable(path: str) -> str:
    if not os.path.isdir(path):
        return "no such directory"
    return "" if os.access(path, os.R_OK | os.X_OK) else "permission denied"


def choose_layer_source(client: Any, attrs: Mapping[str, Any], requested: str,
                        env: Optional[Mapping[str, str]] = None
                        ) -> tuple[Optional[StorageLayerSource], str]:
    """(the storage source, why) where it can be used, else (None, why not); a
    UsageError when `--layer-source storage` was asked for and cannot be used."""
    import docker.errors

    if requested == "save":
        return None, "--layer-source save"
    env = os.environ if env is None else env
    try:
        info = client.info()
    except docker.errors.DockerException as exc:
        raise EngineError(f"asking the engine about its storage failed: {exc}") from exc
    graph = attrs.get("GraphDriver") or {}
    diff_ids = tuple((attrs.get("RootFS") or {}).get("Layers") or ())
    dirs, why = storage_decision(
        requested="storage", docker_host=env.get("DOCKER_HOST", ""),
        driver=graph.get("Name") or "", graph_data=graph.get("Data") or {},
        layer_count=len(diff_ids), security_options=info.get("SecurityOptions") or (),
        readable=_readable)
    config = os.path.join(str(info.get("DockerRootDir") or "/var/lib/docker"), "image",
                          "overlay2", "imagedb", "content", "sha256",
                          str(attrs.get("Id", "")).split(":")[-1])
    if dirs is not None and not os.access(config, os.R_OK):
        dirs, why = None, f"the image's config is not readable here ({config})"
    if dirs is None:
        if requested == "storage":
            raise UsageError(f"--layer-source storage: {why}")
        return None, why
    return StorageLayerSource(tuple(reversed(dirs)), config, diff_ids), why

"""Write the kept files as one layer and load it into the engine as a FROM-scratch image.

`write_layer` writes exactly the planned members with their metadata intact, from the
index and the original image's bytes (never the host, never a container that ran);
`load_image` wraps the layer in a `docker save` archive streamed to /images/load.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Callable, Optional

from minifier.errors import EngineError, ImageError, UsageError
from minifier.image.imagefs import DERIVED_PAX, PLACEHOLDERS, ImageFS, Spool, normalize
from minifier.image.source import ImageSource
from minifier.records import BuildPlan, BuildResult, ImageInfo

__all__ = [
    "LayerInfo",
    "write_layer",
    "output_config",
    "load_image",
    "default_tag",
    "check_tag",
    "full_tag",
    "CONFIG_KEYS",
]

# Config keys carried unchanged from the original image into the output.
CONFIG_KEYS = (
    "Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
    "StopSignal", "Healthcheck", "OnBuild", "Shell",
)
_CHUNK = 1 << 20
_SPOOL_MAX = 16 << 20


@dataclass(frozen=True)
class LayerInfo:
    path: str
    size: int
    sha256: str  # hex digest of the uncompressed layer tar: the image's diff_id
    files: int


class _HashWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)


def _member(path: str, ti: tarfile.TarInfo) -> tarfile.TarInfo:
    """A copy of an original member under its normalised relative name, metadata intact."""
    out = tarfile.TarInfo(path.lstrip("/"))
    for attr in ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "size", "linkname",
                 "devmajor", "devminor"):
        setattr(out, attr, getattr(ti, attr))
    # Only extra records (xattrs...): stale path/size records would override the new fields.
    out.pax_headers = {k: v for k, v in ti.pax_headers.items() if k not in DERIVED_PAX}
    return out


def _placeholder(path: str, fs: ImageFS, kind: str) -> tarfile.TarInfo:
    """An entry the plan asks for that the image lacks (or that docker mounts over)."""
    ti = tarfile.TarInfo(path.lstrip("/"))
    e = fs.lookup(path)
    if e is not None and e.type == kind:
        ti.mode, ti.uid, ti.gid, ti.uname, ti.gname, ti.mtime = (
            e.mode, e.uid, e.gid, e.uname, e.gname, e.mtime)
    else:
        ti.mode = 0o1777 if path == "/tmp" else 0o755 if kind == "dir" else 0o644
        ti.uname = ti.gname = "root"
        ti.mtime = 0
    ti.type = tarfile.DIRTYPE if kind == "dir" else tarfile.REGTYPE
    ti.size = 0
    return ti


class _LayerWriter:
    """State of one write_layer pass: what was written, orphaned hard-link contents."""

    def __init__(self, fs: ImageFS, plan: BuildPlan, out: tarfile.TarFile) -> None:
        self.fs, self.out = fs, out
        self.kinds = {k.path: k.kind for k in plan.kept}
        self.written: dict[str, str] = {}  # path -> name written (for hard links)
        # Hard-link targets that are not kept but some kept link name needs the bytes of.
        self.orphans: dict[str, list[str]] = {}
        for k in plan.kept:
            e = fs.lookup(k.path)
            if e is not None and e.type == "hardlink" and e.linkname not in self.kinds:
                self.orphans.setdefault(e.linkname, []).append(k.path)
        self.spools: dict[str, Any] = {}
        self.count = 0

    def member(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        path = normalize(ti.name)
        if path in self.orphans and ti.isfile():
            spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)
            _copy(tf.extractfile(ti), spool.write)
            self.spools[path] = (spool, ti)
        if path not in self.kinds or path == "/" or path in self.written:
            return
        entry = self.fs.lookup(path)
        if path in PLACEHOLDERS or entry is None or entry.artefact:
            if path in PLACEHOLDERS:
                self._add(path, _placeholder(path, self.fs, "file"))
            return
        if ti.islnk():
            self._link(path, ti)
            return
        new = _member(path, ti)
        self._add(path, new, tf.extractfile(ti) if ti.isfile() else None)

    def _link(self, path: str, ti: tarfile.TarInfo) -> None:
        target = normalize(ti.linkname)
        if target in self.written:
            new = _member(path, ti)
            new.linkname = self.written[target].lstrip("/")
            self._add(path, new)
            return
        spooled = self.spools.get(target)
        if spooled is None:
            return  # the target was excluded and its bytes are not available
        spool, tti = spooled
        new = _member(path, ti)
        new.type, new.size, new.linkname = tarfile.REGTYPE, tti.size, ""
        spool.seek(0)
        self._add(path, new, spool)
        # Later link names to the same inode become links to this copy.
        self.written[target] = path
        if all(p in self.written for p in self.orphans[target]):
            self.spools.pop(target)[0].close()

    def _add(self, path: str, ti: tarfile.TarInfo, data: Optional[IO[bytes]] = None) -> None:
        self.out.addfile(ti, data)
        self.written[path] = path
        self.count += 1

    def finish(self) -> None:
        """Create the planned paths the stream did not have (parents before children)."""
        for path in sorted(self.kinds, key=lambda p: (p.count("/"), p)):
            if path not in self.written and path != "/":
                kind = self.kinds[path]
                if kind in ("dir", "file"):
                    self._add(path, _placeholder(path, self.fs, kind))
        for spool, _ in self.spools.values():
            spool.close()


def _copy(src: Optional[IO[bytes]], write: Callable[[bytes], Any]) -> None:
    while src is not None:
        chunk = src.read(_CHUNK)
        if not chunk:
            return
        write(chunk)


def write_layer(fs: ImageFS, plan: BuildPlan, source: ImageSource, out_path: str) -> LayerInfo:
    """Write the kept members, in the image's stream order (parents first, a hard link
    after its target), to an uncompressed tar: metadata from the index, bytes from what
    the index pass kept or the source reads by path. Files whose bytes neither has are
    read from the source first (for the export stream: one more pass, stopped early)."""
    with open(out_path, "wb") as f, tempfile.TemporaryDirectory(
            prefix="content-", dir=os.path.dirname(os.path.abspath(out_path))) as extra_dir:
        hasher = _HashWriter(f)
        with tarfile.open(fileobj=hasher, mode="w|", format=tarfile.PAX_FORMAT) as out:
            writer = _LayerWriter(fs, plan, out)
            wanted = writer.kinds.keys() | writer.orphans.keys()
            extra = _fetch_missing(fs, wanted, source, extra_dir)
            indexed = _IndexedMembers(fs, extra)
            for ti in indexed.members(fs.stream_order(wanted)):
                writer.member(indexed, ti)
            writer.finish()
    return LayerInfo(out_path, hasher.size, hasher.sha.hexdigest(), writer.count)


def _fetch_missing(fs: ImageFS, paths, source: ImageSource, directory: str) -> Spool:
    """Copy to `directory` the bytes of the files among `paths` that `fs` cannot open."""
    missing = set()
    for path in paths:
        e = fs.lookup(path)
        if e is not None and e.type == "file" and e.size and not e.artefact:
            f = fs.open_content(path)
            if f is None:
                missing.add(path)
            else:
                f.close()
    extra = Spool(directory, missing)
    if missing:
        for path, f in source.read(missing):
            extra.put(path, b"", f)
        lost = sorted(p for p in missing if extra.get(p) is None)
        if lost:
            raise ImageError(f"the image source did not supply the content of {lost[0]}"
                             f"{f' (and {len(lost) - 1} more)' if len(lost) > 1 else ''}")
    return extra


_TAR_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
              "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
              "fifo": tarfile.FIFOTYPE}


class _IndexedMembers:
    """The index's entries as tar members, with contents from the index pass, the
    source's random access or the extra spool: stands in for the export stream (same
    order, same metadata)."""

    def __init__(self, fs: ImageFS, extra: Spool) -> None:
        self.fs, self.extra = fs, extra
        self._open: list[IO[bytes]] = []

    def members(self, paths) -> Iterator[tarfile.TarInfo]:
        try:
            for path in paths:
                e = self.fs.lookup(path)
                if e is not None:
                    yield self._info(e)
                for f in self._open:
                    f.close()
                self._open.clear()
        finally:
            for f in self._open:
                f.close()

    @staticmethod
    def _info(e) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(e.path.lstrip("/") or ".")
        ti.type = _TAR_TYPES.get(e.type, tarfile.REGTYPE)
        ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = e.mode, e.uid, e.gid, e.uname, e.gname
        ti.mtime, ti.size, ti.devmajor, ti.devminor = e.mtime, e.size, e.devmajor, e.devminor
        ti.linkname = e.linkname.lstrip("/") if e.type == "hardlink" else e.linkname
        ti.pax_headers = dict(e.pax or {})
        return ti

    def extractfile(self, ti: tarfile.TarInfo) -> Optional[IO[bytes]]:
        if not ti.isfile():
            return None
        path = normalize("/" + ti.name)
        spooled = self.extra.get(path)
        f = open(spooled, "rb") if spooled is not None else self.fs.open_content(path)
        if f is None and ti.size:
            raise ImageError(f"no content for {path} in the image source")
        if f is not None:
            self._open.append(f)
        return f


def output_config(image: ImageInfo, extra_labels: Optional[Mapping[str, str]] = None) -> dict:
    """The output image's config: the original runtime config, unchanged, plus labels."""
    raw = image.config or {}
    config = {k: raw[k] for k in CONFIG_KEYS if raw.get(k) is not None}
    if extra_labels:
        config["Labels"] = {**(raw.get("Labels") or {}), **extra_labels}
    return {"architecture": image.architecture, "os": image.os, "config": config}


def _tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.mode, ti.mtime = size, kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, 0
    return ti.tobuf(format=tarfile.PAX_FORMAT)


def _archive(config_name: str, config: bytes, manifest: bytes, layer: LayerInfo,
             diff_hex: str) -> Iterator[bytes]:
    """A `docker save` tar, generated on the fly so the layer is never copied again."""
    for name, data in ((config_name, config), ("manifest.json", manifest)):
        yield _tar_header(name, len(data)) + data + b"\0" * (-len(data) % 512)
    yield _tar_header(f"{diff_hex}/", 0, tarfile.DIRTYPE)
    yield _tar_header(f"{diff_hex}/layer.tar", layer.size)
    with open(layer.path, "rb") as f:
        yield from iter(lambda: f.read(_CHUNK), b"")
    yield b"\0" * (-layer.size % 512) + b"\0" * 1024


def load_image(client: Any, config: Mapping[str, Any], layer: LayerInfo, tag: str) -> BuildResult:
    """Load config + layer as a one-layer image tagged `tag`; verify the engine's id."""
    import docker.errors

    full = dict(config)
    full["rootfs"] = {"type": "layers", "diff_ids": [f"sha256:{layer.sha256}"]}
    full["history"] = [{"created_by": "minify"}]
    full.setdefault(
        "created", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    config_bytes = json.dumps(full, sort_keys=True, separators=(",", ":")).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    manifest = json.dumps([{
        "Config": f"{config_hex}.json",
        "RepoTags": [tag],
        "Layers": [f"{layer.sha256}/layer.tar"],
    }]).encode()
    stream = _archive(f"{config_hex}.json", config_bytes, manifest, layer, layer.sha256)
    try:
        client.images.load(stream)
        image = client.images.get(tag)
    except docker.errors.DockerException as e:
        raise EngineError(f"loading the minified image failed: {e}") from e
    if image.id != f"sha256:{config_hex}":
        raise EngineError(f"engine loaded {image.id} for {tag}, expected sha256:{config_hex}")
    size = int(image.attrs.get("Size") or 0)
    return BuildResult(image_id=image.id, tag=tag, size=size, layer_path=layer.path)


def _split_ref(ref: str) -> tuple[str, str]:
    """(repository, tag) of a reference; digests are dropped, the tag defaults to latest."""
    ref = ref.split("@", 1)[0]
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, "latest"


def _full(ref: str) -> str:
    return ":".join(_split_ref(ref))


def full_tag(tag: str) -> str:
    """`name` -> `name:latest`, as the engine would read it (the archive needs the tag)."""
    return _full(tag)


def _is_id_ref(ref: str, image: ImageInfo) -> bool:
    bare = ref[7:] if ref.startswith("sha256:") else ref
    return bool(re.fullmatch(r"[0-9a-f]{6,64}", bare)) and image.id.split(":")[-1].startswith(bare)


def default_tag(image: ImageInfo) -> str:
    """`<repository>.min:<tag>`, or `minified-<short id>:latest` for an id reference."""
    if not image.ref or _is_id_ref(image.ref, image):
        return f"minified-{image.id.split(':')[-1][:12]}:latest"
    repo, tag = _split_ref(image.ref)
    return f"{repo}.min:{tag}"


_TAG_RE = re.compile(r"[a-z0-9]+(?:[._/-]+[a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
                     r"(?::[\w][\w.-]{0,127})?")


def check_tag(tag: str, image: ImageInfo) -> None:
    """Refuse malformed tags and any tag that would overwrite the source image."""
    if not _TAG_RE.fullmatch(tag):
        raise UsageError(f"invalid tag {tag!r}")
    sources = {_full(t) for t in image.repo_tags}
    if image.ref and not _is_id_ref(image.ref, image):
        sources.add(_full(image.ref))
    if _full(tag) in sources:
        raise ImageError(f"refusing to tag the output {tag}: that is the source image's tag")

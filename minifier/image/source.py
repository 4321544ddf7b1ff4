"""Where the original image's files come from, and which way of reading them is used.

Two readers behind one interface (`ImageSource`):
- `StorageSource`: the engine's overlay2 layer directories read in place (overlay.py): a
  metadata walk for the index, file bytes read by path only for what the closure
  inspects or the layer keeps;
- `DockerExportSource`: the export stream of a container created (never started) from
  the image (`TarFileSource`: a tar file, in tests), one pass that indexes the stream
  and keeps on the way the bytes the build will need.
`choose_source` takes the storage reader when minify runs on the engine's host, the
driver is overlay2, the engine is rootful without user-namespace remapping and the
directories are readable here; every other case keeps the export stream. Either way the
reason is said in the report. The rebuild side reads nothing else: never the host
outside the image's own layer directories, never a container that ran (its upper
directory is not among them).
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any, Optional, Protocol

from minifier.engine import container_labels, owned_container
from minifier.engineinfo import EngineInfo, describe
from minifier.errors import EngineError, ImageError, UsageError
from minifier.image.imagefs import ImageFS, Spool, normalize, scan
from minifier.image.index import Index
from minifier.image.overlay import LayerReader, walk
from minifier.image.tarstream import TarStream
from minifier.image.users import parse_group, parse_passwd

__all__ = [
    "ImageSource",
    "TarFileSource",
    "DockerExportSource",
    "StorageSource",
    "SourceChoice",
    "choose_source",
    "storage_decision",
    "read_from_stream",
    "readable_dir",
    "SOURCES",
]

_CHUNK = 1 << 20
SOURCES = ("auto", "storage", "export")
# The first engine release whose export leaves user and group names empty (moby #43185).
_NAMELESS_ENGINE = 23


class ImageSource(Protocol):
    """The original image's filesystem."""

    name: str  # "storage", "export" or "tar": said in the report
    random_access: bool  # any file's bytes can be read by path, cheaply

    def scan(self, index: Index, spool: Optional[Spool],
             meta: Mapping[str, str]) -> ImageFS:
        """Fill `index` (finished with `meta`) in one pass; with a spool, keep on the way
        the bytes of the files it wants (a source without random access)."""
        ...

    def attach(self, index: Index, spool: Optional[Spool]) -> ImageFS:
        """The filesystem of an index made earlier (the cache), read through this source."""
        ...

    def read(self, paths: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
        """Yield (path, file) for each of `paths` that is a regular file in the image, in
        any order; a file is readable only until the next item is asked for."""
        ...


def read_from_stream(open_stream: Callable[[], AbstractContextManager[IO[bytes]]],
                     paths: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
    """`ImageSource.read` over a tar stream: one pass, stopped once every path was seen."""
    wanted = {normalize(p) for p in paths}
    if not wanted:
        return
    with open_stream() as stream:
        tar = TarStream(stream)
        for member in tar:
            path = normalize(member.name)
            if path in wanted and member.isfile():
                wanted.discard(path)
                yield path, tar
                if not wanted:
                    return


class _StreamSource:
    """A source that is one tar stream per `open()`: no random access."""

    name = "tar"
    random_access = False

    def open(self) -> AbstractContextManager[IO[bytes]]:
        raise NotImplementedError

    def scan(self, index: Index, spool: Optional[Spool],
             meta: Mapping[str, str]) -> ImageFS:
        with self.open() as stream:
            return scan(stream, spool=spool, index=index, meta={"reader": self.name, **meta})

    def attach(self, index: Index, spool: Optional[Spool]) -> ImageFS:
        return ImageFS(index, spool=spool)

    def read(self, paths: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
        return read_from_stream(self.open, paths)


class TarFileSource(_StreamSource):
    """An image filesystem stored as a tar file (tests, or a saved export)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        with open(self.path, "rb") as f:
            yield f


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the export HTTP stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class DockerExportSource(_StreamSource):
    """`docker export` of a container created (never started) from the original image."""

    name = "export"

    def __init__(self, client: Any, image_id: str, run_id: str = "") -> None:
        self.client = client
        self.image_id = image_id
        self.run_id = run_id or uuid.uuid4().hex[:12]

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        import docker.errors

        api = self.client.api
        with owned_container(self.client, "export", self._create) as cid:
            try:
                chunks = api.export(cid, chunk_size=_CHUNK)
            except docker.errors.DockerException as e:
                raise EngineError(f"docker export failed: {e}") from e
            yield io.BufferedReader(_ChunkReader(iter(chunks)), buffer_size=_CHUNK)

    def _create(self, name: str) -> str:
        import docker.errors

        try:
            # The command is never run: create only needs one when the image has none.
            return self.client.api.create_container(
                self.image_id,
                name=name,
                command=["/.minify-none"],
                labels=container_labels(self.run_id or "export"),
                network_disabled=True,
            )["Id"]
        except docker.errors.ImageNotFound as e:
            raise ImageError(f"image {self.image_id} not found") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"cannot create export container: {e}") from e


class StorageSource:
    """The image's overlay2 layer directories (top first), read in place."""

    name = "storage"
    random_access = True

    def __init__(self, layers: Sequence[str], image_names: bool = True) -> None:
        """`image_names`: fill user and group names from the image's own /etc/passwd and
        /etc/group, as the engine's export does up to Docker 20.10 (later: none)."""
        self.layers = tuple(layers)
        self.image_names = image_names
        self.reader = LayerReader(self.layers)

    def scan(self, index: Index, spool: Optional[Spool],
             meta: Mapping[str, str]) -> ImageFS:
        for entry in walk(self.layers):
            index.add(entry)
        index.flush()
        fs = ImageFS(index, reader=self.reader)
        if self.image_names:
            index.set_names(*export_names(fs, _host_nss_systemd()))
        index.finish({"reader": self.name, "contents": "metadata", **meta})
        return fs

    def attach(self, index: Index, spool: Optional[Spool]) -> ImageFS:
        return ImageFS(index, reader=self.reader)

    def read(self, paths: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
        for path in paths:
            f = self.reader.open_file(normalize(path))
            if f is not None:
                with f:
                    yield normalize(path), f


# What systemd's NSS module answers without its user database service (in the engine's
# chroot): the two ids it always synthesises.
_SYSTEMD_USERS = {0: "root", 65534: "nobody"}
_SYSTEMD_GROUPS = {0: "root", 65534: "nogroup"}


def export_names(fs: ImageFS, nss_systemd: bool) -> tuple[dict[int, str], dict[int, str]]:
    """uid -> user and gid -> group names as Docker 20.10's export fills tar headers: it
    looks ids up chrooted into the container, through the engine host's NSS modules, so
    `files` reads the image's /etc/passwd and /etc/group (first entry wins), and a host
    that also lists `systemd` gets that module's synthesised root and nobody."""
    users: dict[int, str] = {}
    for pw in parse_passwd(fs.content("/etc/passwd") or b""):
        users.setdefault(pw.uid, pw.name)
    groups: dict[int, str] = {}
    for gr in parse_group(fs.content("/etc/group") or b""):
        groups.setdefault(gr.gid, gr.name)
    if nss_systemd:
        users = {**_SYSTEMD_USERS, **users}
        groups = {**_SYSTEMD_GROUPS, **groups}
    return users, groups


def _host_nss_systemd(path: str = "/etc/nsswitch.conf") -> bool:
    """Whether this host (the engine's: the storage reader only runs there) resolves
    users through systemd's NSS module."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, services = line.partition(":")
                if key.strip() == "passwd":
                    return "systemd" in services.split("#", 1)[0].split()
    except OSError:
        pass
    return False


@dataclass(frozen=True)
class SourceChoice:
    source: ImageSource
    why: str  # the reason, for the report


def storage_decision(*, requested: str, docker_host: str, driver: str,
                     graph_data: Mapping[str, str], layer_count: int,
                     security_options: Sequence[str],
                     readable: Callable[[str], str]) -> tuple[Optional[tuple[str, ...]], str]:
    """(layer directories top first, why) when the storage reader can be used, else
    (None, why not). `readable(dir)` says what is wrong with a directory ("" if fine)."""
    if requested == "export":
        return None, "--image-source export"
    if docker_host and not docker_host.startswith("unix://"):
        return None, (f"the engine is not on this machine (DOCKER_HOST={docker_host}): its "
                      "storage cannot be read in place")
    if driver != "overlay2":
        return None, f"the engine's storage driver is {driver or 'unknown'}, not overlay2"
    for opt in security_options:
        if "name=rootless" in opt:
            return None, "the engine is rootless: its storage belongs to another user namespace"
        if "name=userns" in opt:
            return None, "the engine remaps user namespaces (userns-remap): ids on disk differ"
    upper = graph_data.get("UpperDir") or ""
    lower = graph_data.get("LowerDir") or ""
    layers = tuple(d for d in (upper, *lower.split(":")) if d)
    if not upper or len(layers) != layer_count:
        return None, (f"the engine names {len(layers)} layer directories for "
                      f"{layer_count} layers")
    for d in layers:
        problem = readable(d)
        if problem:
            return None, f"the layer directories are not readable here ({d}: {problem})"
    return layers, "the image's overlay2 layer directories, read in place"


def readable_dir(path: str) -> str:
    """What keeps `path` from being a readable directory here ("" when nothing)."""
    if not os.path.isdir(path):
        return "no such directory" if not os.path.lexists(path) else "not a directory"
    if not os.access(path, os.R_OK | os.X_OK):
        return "permission denied"
    return ""


def choose_source(client: Any, image_id: str, requested: str = "auto",
                  env: Optional[Mapping[str, str]] = None,
                  engine: Optional[EngineInfo] = None) -> SourceChoice:
    """The storage reader where it applies, else the export stream; UsageError when the
    storage reader was asked for and cannot be used. `engine`: what the engine said of
    itself, when already asked."""
    import docker.errors

    env = os.environ if env is None else env
    try:
        attrs = client.api.inspect_image(image_id)
        if engine is None and requested != "export":
            engine = describe(client)
    except docker.errors.DockerException as exc:
        raise EngineError(f"asking the engine about its storage failed: {exc}") from exc
    security, version = (engine.security_options, engine.version) if engine else ((), "")
    graph = attrs.get("GraphDriver") or {}
    layers, why = storage_decision(
        requested=requested, docker_host=env.get("DOCKER_HOST", ""),
        driver=graph.get("Name") or "", graph_data=graph.get("Data") or {},
        layer_count=len((attrs.get("RootFS") or {}).get("Layers") or ()),
        security_options=security, readable=readable_dir)
    if layers is None:
        if requested == "storage":
            raise UsageError(f"--image-source storage: {why}")
        return SourceChoice(DockerExportSource(client, image_id), why)
    return SourceChoice(StorageSource(layers, image_names=_major(version) < _NAMELESS_ENGINE),
                        why)


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else _NAMELESS_ENGINE

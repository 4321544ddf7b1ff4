"""Where the original image's files come from: a fresh tar stream per pass, or by path.

The rebuild side never reads the host filesystem or a container that ran: every byte of
the output layer comes from the source, i.e. the original image exported through a
created-but-never-started container (or a tar file in tests). `open()` gives the whole
filesystem as a tar stream; `read(paths)` gives the contents of chosen regular files,
for content needed after the index pass has gone by (for the export stream: one more
pass that extracts only those members; a source with random access reads them directly).
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any, Protocol

from minifier.engine import container_labels, owned_container
from minifier.errors import EngineError, ImageError
from minifier.image.imagefs import iter_members, normalize

__all__ = [
    "ImageSource",
    "TarFileSource",
    "DockerExportSource",
    "read_from_stream",
]

_CHUNK = 1 << 20


class ImageSource(Protocol):
    """The original image's filesystem: a fresh binary tar stream on each `open()`, and
    the bytes of chosen regular files (content paths, not hard links) from `read()`."""

    def open(self) -> AbstractContextManager[IO[bytes]]: ...

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
        for tf, ti in iter_members(stream):
            path = normalize(ti.name)
            if path in wanted and ti.isfile():
                wanted.discard(path)
                f = tf.extractfile(ti)
                if f is not None:
                    yield path, f
                if not wanted:
                    return


class TarFileSource:
    """An image filesystem stored as a tar file (tests, or a saved export)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        with open(self.path, "rb") as f:
            yield f

    def read(self, paths: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
        return read_from_stream(self.open, paths)


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


class DockerExportSource:
    """`docker export` of a container created (never started) from the original image."""

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

    def read(self, paths: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
        return read_from_stream(self.open, paths)

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


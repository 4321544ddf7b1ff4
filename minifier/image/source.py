"""Where the original image's files come from: a fresh tar stream per pass.

The rebuild side never reads the host filesystem or a container that ran: every byte of
the output layer comes from `ImageSource.open()`, i.e. the original image exported
through a created-but-never-started container (or a tar file in tests).
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import IO, Any, Protocol

from minifier.engine import container_labels, owned_container
from minifier.errors import EngineError, ImageError

__all__ = [
    "ImageSource",
    "TarFileSource",
    "DockerExportSource",
]

_CHUNK = 1 << 20


class ImageSource(Protocol):
    """Yields a fresh binary tar stream of the image's filesystem on each `open()`."""

    def open(self) -> AbstractContextManager[IO[bytes]]: ...


class TarFileSource:
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


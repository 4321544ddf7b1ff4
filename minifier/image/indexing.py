"""The index stage: the image's index from the cache, else made by one pass of its source
(and then cached). A failed or interrupted pass leaves no half-written file behind."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Optional

from minifier.engine import signals_deferred
from minifier.image.cache import IndexCache, Lookup
from minifier.image.imagefs import ImageFS, Spool
from minifier.image.index import Index
from minifier.image.source import ImageSource

__all__ = ["CacheLookup", "Indexed", "index_image"]


@dataclass(frozen=True)
class Indexed:
    """How the index was obtained (the report's `index` part)."""

    reader: str  # "storage", "export" or "tar"
    cache: str  # "hit", "miss", "rebuilt: <why the entry was not used>" or "off"
    cache_file: str  # the cache entry used or written, "" when the cache is off
    entries: int
    why: str = ""  # why this reader (the source choice's reason)


class CacheLookup:
    """The cache consulted in a worker thread from `with` on (while the app runs), so that
    checking a cached index costs no wall time; `take()` hands the lookup over. Leaving
    the block closes an index not taken."""

    def __init__(self, cache: Optional[IndexCache], image_id: str,
                 source: ImageSource) -> None:
        self._args = (cache, image_id, source)
        self._outcome: dict[str, object] = {}
        # Not Thread.join(): a join cut short by a signal marks a live thread as ended.
        self._done = threading.Event()

    def __enter__(self) -> CacheLookup:
        if self._args[0] is None:
            self._done.set()
            return self
        with signals_deferred():  # a worker started is a worker waited for
            threading.Thread(target=self._look, name="minify-cache", daemon=True).start()
        return self

    def _look(self) -> None:
        cache, image_id, source = self._args
        try:
            self._outcome["found"] = cache.lookup(image_id, source.name,
                                                  contents=not source.random_access)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._outcome["error"] = exc
        finally:
            self._done.set()

    def take(self) -> Optional[Lookup]:
        """What the cache had (None: the cache is off); its index is the caller's now."""
        self._done.wait()
        if "error" in self._outcome:
            raise self._outcome.pop("error")  # type: ignore[misc]
        return self._outcome.pop("found", None)  # type: ignore[return-value]

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._done.wait()  # bounded: one sqlite check of one file
        found = self._outcome.pop("found", None)
        if found is not None and found.index is not None:
            found.index.close()


def index_image(source: ImageSource, image_id: str, cache: Optional[IndexCache],
                workdir: str, spool: Optional[Spool] = None,
                found: Optional[Lookup] = None) -> tuple[ImageFS, Indexed]:
    """The filesystem of `image_id` read through `source`; the cache is consulted first
    (`found`: already consulted, see CacheLookup). A hit from the export stream still
    needs its kept files' bytes: the layer writer reads them by path (one pass over the
    stream, stopped when all were seen)."""
    status = "off"
    if cache is not None:
        if found is None:
            found = cache.lookup(image_id, source.name, contents=not source.random_access)
        if found.index is not None:
            fs = source.attach(found.index, spool)
            return fs, Indexed(source.name, "hit", cache.path_for(image_id, source.name),
                               len(found.index))
        status = found.status
    path = (cache.new_file(image_id, source.name) if cache is not None
            else os.path.join(workdir, "index.db"))
    index: Optional[Index] = None
    try:
        # Inside the try: a signal while sqlite creates the file must not leave it behind.
        index = Index(path)
        fs = source.scan(index, spool, {"image": image_id})
        final = cache.store(path, image_id, source.name) if cache is not None else ""
    except BaseException:
        if index is not None:
            index.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return fs, Indexed(source.name, status, final, len(index))

"""The index stage: the image's index from the cache, else made by one pass of its source
(and then cached). A failed or interrupted pass leaves no half-written file behind."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Optional

from minifier.image.cache import IndexCache
from minifier.image.imagefs import ImageFS, Spool
from minifier.image.index import Index
from minifier.image.source import ImageSource

__all__ = ["Indexed", "index_image"]


@dataclass(frozen=True)
class Indexed:
    """How the index was obtained (the report's `index` part)."""

    reader: str  # "storage", "export" or "tar"
    cache: str  # "hit", "miss", "rebuilt: <why the entry was not used>" or "off"
    cache_file: str  # the cache entry used or written, "" when the cache is off
    entries: int
    why: str = ""  # why this reader (the source choice's reason)


def index_image(source: ImageSource, image_id: str, cache: Optional[IndexCache],
                workdir: str, spool: Optional[Spool] = None) -> tuple[ImageFS, Indexed]:
    """The filesystem of `image_id` read through `source`; the cache is consulted first.
    A hit from the export stream still needs its kept files' bytes: the layer writer
    reads them by path (one pass over the stream, stopped when all were seen)."""
    status = "off"
    if cache is not None:
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

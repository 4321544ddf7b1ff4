"""The index cache: one finished index file per image ID and reader, so a second build
skips indexing.

An image ID is the digest of the image's config, which names its layers: the same ID is
the same filesystem, so an index made once stays true. Each reader has its own entry
(the export stream also shows the container's init layer, the storage reader only the
image). An entry is used only when sqlite finds the file sound and it was written by
this index format, for this very image and reader, completely, with what the reader
needs; anything else is ignored (and replaced by the fresh index), never trusted.
Entries are written under a temporary name and renamed into place, so a reader never
sees half of one.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Optional

from minifier.errors import UsageError
from minifier.image.index import FORMAT, Index

__all__ = ["default_dir", "IndexCache", "Lookup", "check_dir", "open_cache"]


def default_dir(env: Optional[dict] = None) -> Optional[str]:
    """`$XDG_CACHE_HOME/minify`, else `~/.cache/minify`; None when neither is known."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        home = env.get("HOME") or ""
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "minify")


def _problem(path: str) -> str:
    """What keeps `path` from being a cache directory (created 0700 when missing)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        return f"cannot create it ({exc.strerror})"
    if not os.path.isdir(path):
        return "not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return ""


def check_dir(path: str) -> str:
    """A usable cache directory named by the user, or UsageError saying why not."""
    problem = _problem(path)
    if problem:
        raise UsageError(f"--cache-dir {path}: {problem}")
    return os.path.abspath(path)


def open_cache(directory: Optional[str], given: bool) -> tuple[Optional[IndexCache], str]:
    """The cache in `directory` and "", or (None, a warning) when the default directory
    cannot be used; a directory named by --cache-dir must work (UsageError)."""
    if directory is None:
        return None, ""
    if given:
        return IndexCache(check_dir(directory)), ""
    problem = _problem(directory)
    if problem:
        return None, f"index cache off: {directory}: {problem}"
    return IndexCache(os.path.abspath(directory)), ""


@dataclass(frozen=True)
class Lookup:
    """What the cache had for one image: an open index, or why there was none."""

    index: Optional[Index]
    status: str  # "hit", "miss", or "rebuilt: <why the entry was not used>"


class IndexCache:
    """Index files named by image ID in one directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path_for(self, image_id: str, reader: str) -> str:
        digest = image_id.split(":")[-1]
        if not digest.isalnum() or not reader.isalnum():  # never a path elsewhere
            raise ValueError(f"not an image ID and reader: {image_id!r}, {reader!r}")
        return os.path.join(self.directory, f"{digest}.{reader}.index")

    def lookup(self, image_id: str, reader: str, contents: bool) -> Lookup:
        """The index `reader` made of `image_id`; `contents`: the reader has no random
        access, so only an entry that also holds file heads, config files and ELF views
        will do."""
        path = self.path_for(image_id, reader)
        if not os.path.exists(path):
            return Lookup(None, "miss")
        index = None
        try:
            index = Index(path, readonly=True)
            why = _unusable(index, image_id, reader, contents)
        except sqlite3.DatabaseError as exc:
            why = f"corrupt ({exc})"
        if why:
            if index is not None:
                index.close()
            return Lookup(None, f"rebuilt: the cached index was {why}")
        return Lookup(index, "hit")

    def new_file(self, image_id: str, reader: str) -> str:
        """A temporary name in the cache directory for an index being written."""
        return f"{self.path_for(image_id, reader)}.{secrets.token_hex(4)}.tmp"

    def store(self, tmp_path: str, image_id: str, reader: str) -> str:
        """Move a finished index into place (atomically) and return its path."""
        final = self.path_for(image_id, reader)
        os.replace(tmp_path, final)
        return final


def _unusable(index: Index, image_id: str, reader: str, contents: bool) -> str:
    check = index.db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        return f"corrupt ({check})"
    meta = index.meta()
    if meta.get("format") != str(FORMAT):
        return f"written in index format {meta.get('format')!r}, this minify reads {FORMAT}"
    if meta.get("image") != image_id:
        return f"made for another image ({meta.get('image')})"
    if meta.get("reader") != reader:
        return f"made by the {meta.get('reader')} reader"
    if meta.get("complete") != "1" or meta.get("entries") != str(len(index)):
        return "incomplete"
    if contents and meta.get("contents") != "all":
        return "without the file heads a stream reader needs"
    return ""

"""The image index on disk: one sqlite file per image, so memory stays flat in image size.

Every entry of the image filesystem is one row (its metadata, and its first bytes when it
is an ELF or `#!` file); captured config files and the loader's view of ELF files have
tables of their own. Python holds only the entries it is looking at: a 500k-file image
costs the same memory as a 5k-file one. The same file, once written, is the index cache
(cache.py): a second build of the image opens it instead of reading the image again.

Paths, link targets and names are stored as bytes (UTF-8 with surrogate escapes), so any
name an image may hold round-trips, and sqlite's BLOB order is the byte order Docker's
export walks in. `seq` keeps the order in which entries were added (the stream order).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import NamedTuple, Optional

from minifier.image.elffile import ElfInfo

__all__ = ["FORMAT", "TYPES", "Entry", "Index", "ROOT"]

FORMAT = 4  # bump on any change of the schema or of what a row means
TYPES = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo")
_TYPE_NO = {t: i for i, t in enumerate(TYPES)}
_BATCH = 2000
_LOOKUP_CACHE = 20_000  # entries remembered between lookups (the closure asks repeatedly)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    path BLOB PRIMARY KEY, parent BLOB NOT NULL, seq INTEGER NOT NULL,
    type INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
    uname BLOB NOT NULL, gname BLOB NOT NULL, mtime NOT NULL, size INTEGER NOT NULL,
    linkname BLOB NOT NULL, devmajor INTEGER NOT NULL, devminor INTEGER NOT NULL,
    pax TEXT, artefact INTEGER NOT NULL, head BLOB
) WITHOUT ROWID;
CREATE TABLE captured (path BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE elves (path BLOB PRIMARY KEY, info TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE dirbytes (parent BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
"""
# Built after the bulk insert: one sorted pass instead of an index grown row by row.
_INDEXES = ("CREATE INDEX entries_parent ON entries (parent);"
            # Docker's artefacts are a handful of rows: found without a scan of them all.
            "CREATE INDEX entries_artefacts ON entries (path) WHERE artefact = 1;")
_COLUMNS = ("path, parent, seq, type, mode, uid, gid, uname, gname, mtime, size, linkname, "
            "devmajor, devminor, pax, artefact, head")
_UPSERT = (f"INSERT INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * 17)}) "
           "ON CONFLICT(path) DO UPDATE SET " + ", ".join(
               f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[3:]))
_ENTRY = ("SELECT path, type, mode, uid, gid, uname, gname, mtime, size, linkname, devmajor, "
          "devminor, pax, artefact FROM entries")


class Entry(NamedTuple):
    """Metadata of one image member. `linkname` is normalised for hard links. A named
    tuple: one is made per member an index pass sees, so it must be cheap to build."""

    path: str
    type: str  # file dir symlink hardlink char block fifo
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    size: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: Optional[Mapping[str, str]] = None  # extra PAX records (xattrs), None when none
    artefact: bool = False


# docker export has no root member; "/" gets a conventional entry for resolve().
ROOT = Entry("/", "dir", 0o755, 0, 0, "root", "root", 0, 0)


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _parent(path: str) -> bytes:
    """The parent directory of an absolute path ("/" for "/x"; "" for "/" itself)."""
    cut = path.rfind("/")
    if cut > 0:
        return path[:cut].encode("utf-8", "surrogateescape")
    return b"" if path == "/" else b"/"


def elf_to_json(info: ElfInfo | str) -> str:
    return json.dumps(info if isinstance(info, str) else asdict(info))


def elf_from_json(text: str) -> ElfInfo | str:
    data = json.loads(text)
    if isinstance(data, str):
        return data
    for key in ("needed", "rpath", "runpath"):
        data[key] = tuple(data[key])
    return ElfInfo(**data)


class Index:
    """The entries of one image filesystem: written once (`add`... `finish`), then read.

    `path` None keeps the database in memory (small views, tests)."""

    def __init__(self, path: Optional[str] = None, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            assert path is not None
            # A cached index is opened and checked in a worker thread (indexing.CacheLookup),
            # then used by the build's thread only.
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                      check_same_thread=False)
        else:
            self.db = sqlite3.connect(path or ":memory:")
        self.db.execute("PRAGMA cache_size = -4096")  # KiB: the page cache stays small
        self.db.execute("PRAGMA temp_store = FILE")
        self._names: dict[bytes, str] = {}
        self._raws: dict[str, bytes] = {}
        self._cache: dict[str, Optional[Entry]] = {}
        self._rows: list[tuple] = []
        self._seq = 0
        self.writable = not readonly
        if not readonly:
            # Written once into a fresh file and renamed into place: no journal needed.
            self.db.execute("PRAGMA journal_mode = OFF")
            self.db.execute("PRAGMA synchronous = OFF")
            self.db.executescript(_SCHEMA)

    # -- writing -------------------------------------------------------------------------

    def add(self, e: Entry, head: Optional[bytes] = None) -> None:
        (path, kind, mode, uid, gid, uname, gname, mtime, size, link, major, minor, pax,
         artefact) = e
        self._seq += 1
        self._rows.append((
            path.encode("utf-8", "surrogateescape"), _parent(path), self._seq, _TYPE_NO[kind],
            mode, uid, gid, self._raw(uname), self._raw(gname), mtime, size,
            link.encode("utf-8", "surrogateescape") if link else b"", major, minor,
            json.dumps(dict(pax)) if pax else None, int(artefact), head))
        if len(self._rows) >= _BATCH:
            self.flush()

    def add_captured(self, path: str, data: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO captured VALUES (?, ?)", (_b(path), data))

    def add_elf(self, path: str, info: ElfInfo | str) -> None:
        self.db.execute("INSERT OR REPLACE INTO elves VALUES (?, ?)",
                        (_b(path), elf_to_json(info)))

    def flush(self) -> None:
        """Write the added rows (so they can be looked up before `finish`)."""
        if self._rows:
            self.db.executemany(_UPSERT, self._rows)
            self._rows.clear()
        self._cache.clear()

    def set_names(self, users: Mapping[int, str], groups: Mapping[int, str]) -> None:
        """Give every entry the user and group name of its ids in these tables."""
        self.flush()
        uids = [u for u, in self.db.execute("SELECT DISTINCT uid FROM entries")]
        gids = [g for g, in self.db.execute("SELECT DISTINCT gid FROM entries")]
        self.db.executemany("UPDATE entries SET uname = ? WHERE uid = ?",
                            [(_b(users[u]), u) for u in uids if u in users])
        self.db.executemany("UPDATE entries SET gname = ? WHERE gid = ?",
                            [(_b(groups[g]), g) for g in gids if g in groups])
        self._cache.clear()

    def finish(self, meta: Mapping[str, str]) -> None:
        """End the writing: the root entry, the parent index, the metadata (with the
        entry count and the mark of a complete pass), one commit."""
        self.flush()
        if self.get("/") is None:
            self.add(ROOT)
            self.flush()
        self.db.executescript(_INDEXES)
        # The report's sums, made once with the index (and cached with it): a directory's
        # bytes of regular files, and the image's own totals.
        self.db.execute("INSERT INTO dirbytes SELECT parent, TOTAL(size) FROM entries "
                        "WHERE type = 0 AND artefact = 0 GROUP BY parent")
        count, size = self.db.execute(
            "SELECT COUNT(*), TOTAL(CASE WHEN type = 0 THEN size ELSE 0 END) FROM entries "
            "WHERE artefact = 0 AND path != X'2F'").fetchone()
        done = {"format": FORMAT, **meta, "entries": len(self), "complete": 1,
                "image_entries": count, "image_bytes": int(size)}
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            [(k, str(v)) for k, v in done.items()])
        self.db.commit()
        self._cache.clear()

    def close(self) -> None:
        self.db.close()

    # -- reading -------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def _raw(self, name: str) -> bytes:
        raw = self._raws.get(name)
        if raw is None:
            raw = self._raws.setdefault(name, _b(name))
        return raw

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names.setdefault(raw, _s(raw))
        return name

    def _entry(self, row: tuple) -> Entry:
        (path, kind, mode, uid, gid, uname, gname, mtime, size, link, major, minor, pax,
         artefact) = row
        return Entry(_s(path), TYPES[kind], mode, uid, gid, self._name(uname),
                     self._name(gname), mtime, size, _s(link), major, minor,
                     json.loads(pax) if pax else None, bool(artefact))

    def get(self, path: str) -> Optional[Entry]:
        if path in self._cache:
            return self._cache[path]
        row = self.db.execute(_ENTRY + " WHERE path = ?", (_b(path),)).fetchone()
        entry = self._entry(row) if row is not None else None
        if len(self._cache) >= _LOOKUP_CACHE:
            self._cache.clear()
        self._cache[path] = entry
        return entry

    def children(self, path: str) -> list[str]:
        rows = self.db.execute("SELECT path FROM entries WHERE parent = ? ORDER BY path",
                               (_b(path),))
        return [_s(p) for p, in rows if p != b"/"]

    def head(self, path: str) -> Optional[bytes]:
        row = self.db.execute("SELECT head FROM entries WHERE path = ?", (_b(path),)).fetchone()
        return row[0] if row is not None else None

    def captured(self, path: str) -> Optional[bytes]:
        row = self.db.execute("SELECT data FROM captured WHERE path = ?", (_b(path),)).fetchone()
        return row[0] if row is not None else None

    def elf(self, path: str) -> Optional[ElfInfo | str]:
        row = self.db.execute("SELECT info FROM elves WHERE path = ?", (_b(path),)).fetchone()
        return elf_from_json(row[0]) if row is not None else None

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def iter_entries(self, where: str = "", args: tuple = ()) -> Iterator[Entry]:
        """Entries in path byte order (a parent before its children), read as they go."""
        cur = self.db.execute(f"{_ENTRY} {where} ORDER BY path", args)
        for row in cur:
            yield self._entry(row)

    def totals(self) -> tuple[int, int]:
        """(entries, bytes of regular files) of the image itself: no root, no artefacts."""
        meta = self.meta()
        return int(meta["image_entries"]), int(meta["image_bytes"])

    def file_sizes(self) -> Iterator[tuple[str, int]]:
        """(path, size) of every regular file of the image itself, read as they go."""
        for path, size in self.db.execute(
                "SELECT path, size FROM entries WHERE type = 0 AND artefact = 0"):
            yield _s(path), size

    def file_bytes_by_dir(self) -> Iterator[tuple[str, int]]:
        """(directory, bytes of the regular files directly in it) for the image itself:
        one row per directory, summed when the index was finished."""
        for parent, size in self.db.execute("SELECT parent, size FROM dirbytes"):
            yield _s(parent), int(size)

    def paths(self, artefacts: bool = False) -> Iterator[str]:
        """Every path in byte order; the artefacts `docker export` adds only when asked."""
        where = "" if artefacts else "WHERE artefact = 0"
        for path, in self.db.execute(f"SELECT path FROM entries {where} ORDER BY path"):
            yield _s(path)

    def stream_order(self, paths: Collection[str]) -> list[str]:
        """These paths (those in the index) in the order they were added."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (path BLOB PRIMARY KEY) "
                        "WITHOUT ROWID")
        self.db.execute("DELETE FROM wanted")
        self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((_b(p),) for p in paths))
        # CROSS JOIN keeps the few wanted paths as the outer loop: one primary-key lookup
        # each, where the planner, knowing nothing of the temp table, would scan entries.
        rows = self.db.execute("SELECT e.path FROM wanted w CROSS JOIN entries e "
                               "ON e.path = w.path ORDER BY e.seq").fetchall()
        self.db.execute("DELETE FROM wanted")
        return [_s(p) for p, in rows]


class EntriesView(Mapping[str, Entry]):
    """`Mapping` access to an index's entries (iteration in path byte order)."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __getitem__(self, path: str) -> Entry:
        e = self._index.get(path)
        if e is None:
            raise KeyError(path)
        return e

    def get(self, path: str, default=None):  # noqa: D102 - Mapping.get, without a KeyError
        e = self._index.get(path)
        return default if e is None else e

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._index.get(path) is not None

    def __iter__(self) -> Iterator[str]:
        return self._index.paths(artefacts=True)

    def __len__(self) -> int:
        return len(self._index)

    def items(self):  # type: ignore[override] - a stream, not a set-like view
        return ((e.path, e) for e in self._index.iter_entries())

    def values(self):  # type: ignore[override]
        return self._index.iter_entries()


def in_memory(entries: Iterable[Entry]) -> Index:
    """A small index of these entries (a view of part of an image)."""
    index = Index()
    for e in entries:
        index.add(e)
    index.finish({"origin": "view"})
    return index


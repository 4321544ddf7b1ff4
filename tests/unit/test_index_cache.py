"""The index cache (one sqlite file per image ID) and the choice of the image reader.

A cache entry is used only when it is sound, of this format, for this image, complete
and holds what the reader needs; every other entry is rebuilt and replaced."""

from __future__ import annotations

import os
import sqlite3

import pytest

from minifier.errors import ImageError, UsageError
from minifier.image.cache import IndexCache, default_dir, open_cache
from minifier.image.index import FORMAT
from minifier.image.indexing import CacheLookup, index_image
from minifier.image.source import TarFileSource, storage_decision
from tests.unit.fixtures import make_tar, member

IMAGE = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
MEMBERS = [member("etc", "dir"), member("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
           member("usr", "dir"), member("usr/bin", "dir"),
           member("usr/bin/run", data=b"#!/bin/sh\n", mode=0o755),
           *(member(f"usr/share/f{i:04d}", data=b"x" * 10) for i in range(3000))]


@pytest.fixture()
def source(tmp_path):
    return TarFileSource(make_tar(tmp_path / "image.tar", [member("usr/share", "dir"),
                                                           *MEMBERS]))


def _index(source, cache, tmp_path, image=IMAGE):
    """As the build does it: the cache consulted in a worker thread, the index stage
    taking what it found."""
    with CacheLookup(cache, image, source) as cached:
        return index_image(source, image, cache, str(tmp_path), found=cached.take())


def _open_files() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


def test_miss_then_hit_gives_the_same_index(source, tmp_path):
    cache = IndexCache(str(tmp_path / "cache"))
    os.makedirs(cache.directory)
    fs, first = _index(source, cache, tmp_path)
    assert first.cache == "miss" and first.cache_file == cache.path_for(IMAGE, "tar")
    assert first.entries == len(MEMBERS) + 2  # + /usr/share + the root
    again, second = _index(source, cache, tmp_path)
    assert second.cache == "hit"
    assert list(again.entries.items()) == list(fs.entries.items())
    assert again.head("/usr/bin/run") == b"#!/bin/sh\n"  # heads came with the entry
    assert again.content("/etc/passwd") == b"root:x:0:0::/:/bin/sh\n"
    assert os.listdir(cache.directory) == [os.path.basename(cache.path_for(IMAGE, "tar"))]


def _damaged(source, tmp_path, damage) -> str:
    cache = IndexCache(str(tmp_path / "cache"))
    os.makedirs(cache.directory)
    _index(source, cache, tmp_path)
    damage(cache.path_for(IMAGE, "tar"))
    fs, indexed = _index(source, cache, tmp_path)
    # rebuilt, replaced, and then trusted again
    assert fs.lookup("/usr/bin/run").mode == 0o755
    assert _index(source, cache, tmp_path)[1].cache == "hit"
    assert os.listdir(cache.directory) == [os.path.basename(cache.path_for(IMAGE, "tar"))]
    return indexed.cache


def test_a_lookup_not_taken_closes_its_index(source, tmp_path):
    """A build that fails before its index stage leaves no cached index open."""
    cache = IndexCache(str(tmp_path / "cache"))
    os.makedirs(cache.directory)
    _index(source, cache, tmp_path)[0].index.close()
    entry = cache.path_for(IMAGE, "tar")
    assert entry not in _open_files()
    with CacheLookup(cache, IMAGE, source):
        pass
    assert entry not in _open_files()
    with CacheLookup(cache, IMAGE, source) as cached:
        found = cached.take()
    assert found.status == "hit"
    assert entry in _open_files()  # taken: the caller's to close
    found.index.close()
    assert entry not in _open_files()


def test_without_a_cache_the_lookup_finds_nothing(source, tmp_path):
    with CacheLookup(None, IMAGE, source) as cached:
        assert cached.take() is None


def test_truncated_entry_is_rebuilt(source, tmp_path):
    def truncate(path):
        os.truncate(path, os.path.getsize(path) // 2)
    status = _damaged(source, tmp_path, truncate)
    assert status.startswith("rebuilt: the cached index was corrupt (")


def test_garbage_entry_is_rebuilt(source, tmp_path):
    def garbage(path):
        with open(path, "wb") as f:
            f.write(b"not an index at all" * 100)
    assert _damaged(source, tmp_path, garbage) == (
        "rebuilt: the cached index was corrupt (file is not a database)")


def _set_meta(key, value):
    def change(path):
        db = sqlite3.connect(path)
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        db.commit()
        db.close()
    return change


def test_entry_of_another_image_is_rebuilt(source, tmp_path):
    assert _damaged(source, tmp_path, _set_meta("image", OTHER)) == (
        f"rebuilt: the cached index was made for another image ({OTHER})")


def test_other_format_version_is_rebuilt(source, tmp_path):
    assert _damaged(source, tmp_path, _set_meta("format", str(FORMAT - 1))) == (
        f"rebuilt: the cached index was written in index format '{FORMAT - 1}', this minify "
        f"reads {FORMAT}")


def test_entry_missing_rows_is_rebuilt(source, tmp_path):
    def drop(path):
        db = sqlite3.connect(path)
        db.execute("DELETE FROM entries WHERE path = ?", (b"/etc/passwd",))
        db.commit()
        db.close()
    assert _damaged(source, tmp_path, drop) == "rebuilt: the cached index was incomplete"


def test_metadata_only_entry_is_not_used_by_a_stream_reader(source, tmp_path):
    assert _damaged(source, tmp_path, _set_meta("contents", "metadata")) == (
        "rebuilt: the cached index was without the file heads a stream reader needs")


def test_entry_of_another_reader_is_rebuilt(source, tmp_path):
    assert _damaged(source, tmp_path, _set_meta("reader", "storage")) == (
        "rebuilt: the cached index was made by the storage reader")


def test_failed_pass_leaves_no_file(tmp_path):
    cache = IndexCache(str(tmp_path / "cache"))
    os.makedirs(cache.directory)
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"x" * 100 + b"not a tar" * 200)
    with pytest.raises(ImageError, match="not a readable tar stream"):
        index_image(TarFileSource(str(broken)), IMAGE, cache, str(tmp_path))
    assert os.listdir(cache.directory) == []


def test_no_cache_writes_in_the_work_dir(source, tmp_path):
    fs, indexed = index_image(source, IMAGE, None, str(tmp_path))
    assert (indexed.cache, indexed.cache_file) == ("off", "")
    assert os.path.exists(tmp_path / "index.db")


def test_default_dir_follows_xdg():
    assert default_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == "/c/minify"
    assert default_dir({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == "/h/.cache/minify"
    assert default_dir({"HOME": "/h"}) == "/h/.cache/minify"
    assert default_dir({}) is None


def test_unusable_cache_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache, warning = open_cache(str(blocker / "minify"), given=False)
    assert cache is None
    assert warning == f"index cache off: {blocker / 'minify'}: cannot create it (Not a directory)"
    with pytest.raises(UsageError, match=r"^--cache-dir .*: cannot create it \(Not a directory\)$"):
        open_cache(str(blocker / "minify"), given=True)
    cache, warning = open_cache(str(tmp_path / "new"), given=True)
    assert warning == "" and os.stat(tmp_path / "new").st_mode & 0o777 == 0o700


def test_cache_names_only_image_ids(tmp_path):
    with pytest.raises(ValueError):
        IndexCache(str(tmp_path)).path_for("sha256:../../etc/passwd", "tar")


GOOD = {"UpperDir": "/s/3/diff", "LowerDir": "/s/2/diff:/s/1/diff"}


def decide(**kw):
    args = dict(requested="auto", docker_host="", driver="overlay2", graph_data=GOOD,
                layer_count=3, security_options=("name=seccomp,profile=default",),
                readable=lambda d: "")
    args.update(kw)
    return storage_decision(**args)


def test_storage_reader_where_it_applies():
    assert decide() == (("/s/3/diff", "/s/2/diff", "/s/1/diff"),
                        "the image's overlay2 layer directories, read in place")
    assert decide(docker_host="unix:///run/docker.sock")[0] is not None
    one = decide(graph_data={"UpperDir": "/s/1/diff"}, layer_count=1)
    assert one[0] == ("/s/1/diff",)


@pytest.mark.parametrize("kw, why", [
    ({"requested": "export"}, "--image-source export"),
    ({"docker_host": "tcp://10.0.0.5:2376"},
     "the engine is not on this machine (DOCKER_HOST=tcp://10.0.0.5:2376): its storage "
     "cannot be read in place"),
    ({"docker_host": "ssh://me@builder"},
     "the engine is not on this machine (DOCKER_HOST=ssh://me@builder): its storage "
     "cannot be read in place"),
    ({"driver": "vfs"}, "the engine's storage driver is vfs, not overlay2"),
    ({"driver": ""}, "the engine's storage driver is unknown, not overlay2"),
    ({"security_options": ("name=seccomp,profile=default", "name=rootless")},
     "the engine is rootless: its storage belongs to another user namespace"),
    ({"security_options": ("name=userns",)},
     "the engine remaps user namespaces (userns-remap): ids on disk differ"),
    ({"layer_count": 4}, "the engine names 3 layer directories for 4 layers"),
    ({"graph_data": {}}, "the engine names 0 layer directories for 3 layers"),
    ({"readable": lambda d: "no such directory" if d == "/s/2/diff" else ""},
     "the layer directories are not readable here (/s/2/diff: no such directory)"),
])
def test_export_stream_otherwise(kw, why):
    assert decide(**kw) == (None, why)


def test_the_reports_sums_are_made_with_the_index_and_cached_with_it(source, tmp_path):
    """Bytes per directory and the image's totals are summed once, when the index is
    finished; a cached index gives them without a pass over its entries."""
    cache = IndexCache(str(tmp_path / "cache"))
    os.makedirs(cache.directory)
    for expected_cache in ("miss", "hit"):
        fs, indexed = _index(source, cache, tmp_path)
        assert indexed.cache == expected_cache
        assert dict(fs.file_bytes_by_dir()) == {"/etc": 22, "/usr/bin": 10,
                                                "/usr/share": 3000 * 10}
        assert fs.totals() == (len(MEMBERS) + 1, 22 + 10 + 3000 * 10)  # + /usr/share
        fs.index.close()

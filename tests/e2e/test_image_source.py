"""The overlay2 storage reader against `docker export`, entry by entry, on real images.

A container created from the image (never started) is exported, and its layer
directories (the container's init layer on top of the image's layers) are read in place:
both indexes must be identical, entry for entry and in stream order, and a layer
written from each (same plan) byte for byte. The reader minify really uses reads the
image's layers only: it differs from the export exactly where the init layer puts
docker's own files (/.dockerenv, /etc/hosts, /etc itself, /dev, ...), nowhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tarfile

import docker
import pytest

from minifier.engine import image_info_from_attrs
from minifier.engineinfo import describe
from minifier.image.closure import plan
from minifier.image.imagefs import normalize
from minifier.image.index import Index
from minifier.image.overlay import walk
from minifier.image.rebuild import write_layer
from minifier.image.source import StorageSource, TarFileSource, choose_source
from minifier.options import KeepOptions

from . import helpers
from .conftest import SANDBOX

pytestmark = pytest.mark.e2e


def _all(fs) -> list:
    """Every entry, in the order the index received them (the stream order)."""
    by_path = {e.path: e for e in fs.index.iter_entries()}
    return [by_path[p] for p in fs.stream_order(by_path)]


def _members(path: str) -> dict:
    """A layer tar's members with their metadata and a digest of their bytes."""
    out = {}
    with tarfile.open(path) as tf:
        for m in tf:
            f = tf.extractfile(m) if m.isfile() else None
            digest = hashlib.sha256(f.read()).hexdigest() if f is not None else ""
            out[normalize(m.name)] = (m.type, m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime,
                                      m.size, m.linkname, m.devmajor, m.devminor,
                                      dict(m.pax_headers), digest)
    return out


def _accessed(fs) -> list[str]:
    """What a run might have touched: all of /etc and /srv (links, hard links, devices,
    capabilities in the layers sample) and the usual programs."""
    paths = [p for top in ("/etc", "/srv") if fs.lookup(top) for p in fs.walk(top)]
    return paths + ["/bin/sh", "/bin/busybox", "/usr/sbin/nginx", "/usr/bin/python3"]


@pytest.mark.parametrize("name", ["busybox", "quirks", "nginx", "python", "layers"])
def test_storage_reader_equals_export(client, tmp_path, name):
    ref = SANDBOX[name]
    info = image_info_from_attrs(ref, client.api.inspect_image(ref))
    chosen = choose_source(client, info.id)
    assert isinstance(chosen.source, StorageSource), chosen.why
    image_layers = chosen.source.layers
    # What the build passes on from the CLI's look at the engine decides the same.
    told = choose_source(client, info.id, engine=describe(client))
    assert (told.source.layers, told.why) == (image_layers, chosen.why)
    saved = tmp_path / "export.tar"
    cid = client.api.create_container(ref, command=["/none"], labels={"minify.run": "test"})
    try:
        lower = client.api.inspect_container(cid)["GraphDriver"]["Data"]["LowerDir"]
        init_layer, *rest = lower.split(":")
        assert tuple(rest) == image_layers and init_layer.endswith("-init/diff")
        with open(saved, "wb") as f:
            for chunk in client.api.export(cid, chunk_size=1 << 20):
                f.write(chunk)
        exported_src = TarFileSource(str(saved))
        exported = exported_src.scan(Index(str(tmp_path / "e.db")), None, {})
        container_src = StorageSource((init_layer, *image_layers))
        in_place = container_src.scan(Index(str(tmp_path / "c.db")), None, {})
        init_paths = {e.path for e in walk([init_layer])}
        image_src = StorageSource(image_layers)
        image_only = image_src.scan(Index(str(tmp_path / "i.db")), None, {})

        # 1. the container's layers read in place ARE its export, in the same order
        assert _all(in_place) == _all(exported)

        # 2. a layer written from each, for the same plan, is the same to the byte
        p = plan(exported, _accessed(exported), info, KeepOptions(), exported_src)
        assert plan(in_place, _accessed(in_place), info, KeepOptions(), container_src) == p
        a = write_layer(exported, p, exported_src, str(tmp_path / "a.tar"))
        b = write_layer(in_place, p, container_src, str(tmp_path / "b.tar"))
        assert (b.sha256, b.size, b.files) == (a.sha256, a.size, a.files)
    finally:
        client.api.remove_container(cid, force=True, v=True)

    # 3. the image alone: the export minus docker's init layer, and nothing else differs
    exp = {e.path: e for e in _all(exported) if e.path not in init_paths}
    img = {e.path: e for e in _all(image_only) if e.path not in init_paths}
    assert img == exp
    assert [p for p in image_only.stream_order(img)] == [p for p in exported.stream_order(exp)]
    p_img = plan(image_only, _accessed(image_only), info, KeepOptions(), image_src)
    c = write_layer(image_only, p_img, image_src, str(tmp_path / "c.tar"))
    layer_a, layer_c = _members(a.path), _members(c.path)
    assert {k: v for k, v in layer_c.items() if k not in init_paths} == {
        k: v for k, v in layer_a.items() if k not in init_paths}
    assert p_img.total_files == p.total_files - sum(
        1 for path in init_paths if (e := exported.lookup(path)) and not e.artefact
        and not image_only.lookup(path))
    os.unlink(saved)


# -- minify build end to end: cache miss, hit, corrupt entry, the export fallback --------

LAYERS = SANDBOX["layers"]
CAPBOX = "/usr/local/bin/capbox"


def _build(tmp_path, name: str, *extra: str, prefix: tuple[str, ...] = ()) -> tuple[dict, str]:
    """`minify build` of the layers sample (output tagged by `name`): report, tag."""
    report = tmp_path / f"{name}.json"
    tag = f"minify-test/layers.min:{name}"
    args = ["build", LAYERS, "--tag", tag, "--report-file", str(report), *extra]
    proc = subprocess.Popen([*prefix, *helpers.MINIFY, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=helpers.ENV)
    helpers.STARTED.append(proc.pid)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(report.read_text()), tag


@pytest.fixture(scope="module")
def builds(client, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("source")
    cache = str(tmp / "cache")
    runs, tags = {}, []
    try:
        for name in ("miss", "hit"):
            runs[name], tag = _build(tmp, name, "--cache-dir", cache)
            tags.append(tag)
        entry = runs["miss"]["index"]["cache_file"]
        runs["entry_size"] = os.path.getsize(entry)
        os.truncate(entry, runs["entry_size"] // 3)
        runs["corrupt"], tag = _build(tmp, "corrupt", "--cache-dir", cache)
        tags.append(tag)
        for name in ("export", "export-hit"):
            runs[name], tag = _build(tmp, name, "--cache-dir", cache, "--image-source",
                                     "export")
            tags.append(tag)
        # minify in a mount namespace where the engine's storage is not visible (as in a
        # container without /var/lib/docker): the export stream, and why
        runs["hidden"], tag = _build(tmp, "hidden", "--no-cache", prefix=HIDE_STORAGE)
        tags.append(tag)
        runs["files"] = {t: _files(client, t) for t in tags}
        runs["image"] = _files(client, LAYERS)
        runs["cache_dir"] = sorted(os.listdir(cache))
        yield runs
    finally:
        for tag in tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True)


def _files(client, ref: str) -> dict:
    """path -> (type, mode, uid, gid, bytes, capability) of every member of `ref`."""
    with helpers.exported(client, ref) as tf:
        return {normalize(m.name): (m.type, m.mode, m.uid, m.gid,
                                    tf.extractfile(m).read() if m.isfile() else m.linkname,
                                    m.pax_headers.get("SCHILY.xattr.security.capability"))
                for m in tf}


STORAGE_WHY = "the image's overlay2 layer directories, read in place"


def test_first_build_indexes_the_layers_in_place_and_caches(builds):
    index = builds["miss"]["index"]
    assert (index["reader"], index["why"], index["cache"]) == ("storage", STORAGE_WHY, "miss")
    assert index["cache_file"].endswith(".storage.index") and index["entries"] > 6000
    assert builds["miss"]["verify"]["status"] == "passed"


def test_second_build_hits_the_cache(builds):
    hit, miss = builds["hit"], builds["miss"]
    assert hit["index"] == {**miss["index"], "cache": "hit"}
    assert hit["files"] == miss["files"] and hit["verify"]["status"] == "passed"
    assert hit["timings"]["index"] < miss["timings"]["index"]


def test_corrupt_entry_is_rebuilt(builds):
    index = builds["corrupt"]["index"]
    # sqlite's own diagnosis of the truncated file follows in parentheses
    assert index["cache"].startswith("rebuilt: the cached index was corrupt (")
    assert index["entries"] == builds["miss"]["index"]["entries"]
    assert builds["corrupt"]["files"] == builds["miss"]["files"]


def test_forced_export_stream_is_said_and_cached_apart(builds):
    index = builds["export"]["index"]
    assert (index["reader"], index["why"], index["cache"]) == (
        "export", "--image-source export", "miss")
    assert index["cache_file"].endswith(".export.index")
    assert [n.split(".", 1)[1] for n in builds["cache_dir"]] == ["export.index",
                                                                 "storage.index"]
    assert builds["export"]["verify"]["status"] == "passed"
    # a hit of the export stream's entry: the kept files' bytes come from one more pass
    assert builds["export-hit"]["index"] == {**index, "cache": "hit"}
    assert builds["export-hit"]["verify"]["status"] == "passed"


def test_unreadable_storage_falls_back_to_the_export_stream(builds):
    index = builds["hidden"]["index"]
    assert index["reader"] == "export" and index["cache"] == "off"
    assert index["why"].startswith("the layer directories are not readable here (/")
    assert index["why"].endswith("/diff: no such directory)")


def test_every_reader_builds_the_same_image_from_the_image_itself(builds):
    """Kept files, bytes, owners and the file capability agree whichever reader indexed
    the image (the export shows the container's /etc, so /etc's own mtime may differ),
    and the file the app rewrote while traced has the image's bytes."""
    files = builds["files"]
    storage = files["minify-test/layers.min:miss"]
    assert storage["/srv/www/state.txt"][4] == b"original\n"
    assert storage[CAPBOX][5] == builds["image"][CAPBOX][5] is not None
    assert storage["/srv/data/fourth"][0] == tarfile.LNKTYPE  # still linked to first
    for path in ("/srv/data/first", "/srv/data/third", "/srv/data/opaque/new",
                 "/srv/data/file-to-dir/z", "/srv/data/dir-to-file", "/srv/data/owned",
                 "/srv/data/bigid", "/srv/data/future", CAPBOX):
        assert storage[path] == builds["image"][path], path
    for tag, other in files.items():
        assert other.keys() == storage.keys(), tag
        assert {p: v for p, v in other.items() if p != "/etc"} == {
            p: v for p, v in storage.items() if p != "/etc"}, tag


HIDE_STORAGE = ("unshare", "-m", "sh", "-c",
                'mount -t tmpfs none /var/lib/docker && exec "$@"', "sh")


@pytest.mark.parametrize("command, option", [("build", "--image-source"),
                                             ("xray", "--layer-source")])
def test_storage_reader_asked_for_where_it_cannot_work(client, command, option):
    """The storage reader asked for where the layer directories are not visible (minify in
    a mount namespace without the engine's storage): refused before anything starts."""
    proc = subprocess.Popen([*HIDE_STORAGE, *helpers.MINIFY, command, SANDBOX["busybox"],
                             option, "storage"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=helpers.ENV)
    helpers.STARTED.append(proc.pid)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"minify: error: {option} storage: the layer directories are "
                           "not readable here (/var/lib/docker/overlay2/")
    assert last.endswith("/diff: no such directory)")

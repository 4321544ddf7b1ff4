"""rebuild: the layer holds exactly the planned members with their original metadata."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from minifier.errors import ImageError, UsageError
from minifier.image.closure import plan
from minifier.image.imagefs import normalize, scan
from minifier.image.rebuild import check_tag, default_tag, load_image, output_config, write_layer
from minifier.image.source import TarFileSource
from minifier.options import KeepOptions
from minifier.records import BuildPlan, KeptFile
from tests.unit.fixtures import LIBDIR, elf_members, image_info, make_tar, member

XATTR = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
BASE = [
    member("etc", "dir", mode=0o750, uid=7, gid=8, mtime=1234),
    member("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
    member("etc/os-release", data=b"ID=image-only\n"),
    member("etc/hosts", data=b"127.0.0.1 stale\n"),
    member("etc/hostname", data=b"abc\n"),
    member(".dockerenv", data=b""),
    member("proc", "dir"),
    member("proc/cpuinfo", data=b"x"),
    member("sys", "dir"),
    member("dev", "dir"),
    member("dev/null", "char", dev=(1, 3), mode=0o666),
    member("srv", "dir", mode=0o711, uid=1000, gid=1000, mtime=999),
    member("srv/os.txt", "symlink", link="/etc/os-release"),
    member("srv/ping", data=b"PING", mode=0o4755, pax=XATTR),
    member("srv/sgid dir", "dir", mode=0o2775),
    member("srv/sgid dir/caf\udce9", data=b"bytes"),
    member("srv/ttyX", "char", dev=(4, 64), mode=0o620, gid=5),
    member("srv/sdX", "block", dev=(8, 0), mode=0o660, gid=6),
    member("srv/fifo", "fifo", mode=0o600),
    member("srv/one", data=b"ONE"),
    member("srv/hl1", "hardlink", link="srv/one"),
    member("srv/hl2", "hardlink", link="srv/one"),
    member("srv/skip", data=b"not kept"),
]
ALL = ["/srv/os.txt", "/srv/ping", "/srv/sgid dir/caf\udce9", "/srv/ttyX", "/srv/sdX",
       "/srv/fifo", "/dev/null", "/proc/cpuinfo", "/.dockerenv"]


def build(tmp_path, members, accessed, keep=None):
    source = TarFileSource(make_tar(tmp_path / "image.tar", members))
    with source.open() as f:
        fs = scan(f)
    p = plan(fs, accessed, image_info(), keep or KeepOptions(), source)
    layer = write_layer(fs, p, source, str(tmp_path / "layer.tar"))
    with tarfile.open(layer.path) as tf:
        members = {normalize(m.name): m for m in tf.getmembers()}
        data = {normalize(m.name): tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
        order = [normalize(m.name) for m in tf.getmembers()]
    return p, layer, members, data, order


def test_layer_contents_and_metadata(tmp_path):
    p, layer, m, data, order = build(tmp_path, BASE, ALL)
    assert set(m) == {k.path for k in p.kept}
    assert layer.files == len(m)
    with open(layer.path, "rb") as f:
        raw = f.read()
    assert layer.sha256 == hashlib.sha256(raw).hexdigest() and layer.size == len(raw)
    etc, srv = m["/etc"], m["/srv"]
    assert (etc.mode, etc.uid, etc.gid, etc.mtime) == (0o750, 7, 8, 1234)
    assert (srv.mode, srv.uid, srv.gid, srv.mtime, srv.uname) == (0o711, 1000, 1000, 999, "app")
    assert m["/srv/ping"].mode == 0o4755 and data["/srv/ping"] == b"PING"
    assert m["/srv/ping"].pax_headers == XATTR
    assert m["/srv/sgid dir"].mode == 0o2775
    assert data["/srv/sgid dir/caf\udce9"] == b"bytes"
    assert m["/srv/ttyX"].ischr() and (m["/srv/ttyX"].devmajor, m["/srv/ttyX"].devminor) == (4, 64)
    assert m["/srv/sdX"].isblk() and m["/srv/sdX"].devminor == 0
    assert m["/srv/fifo"].isfifo() and m["/srv/fifo"].mode == 0o600
    # the absolute symlink kept as-is, the IMAGE's file behind it
    assert m["/srv/os.txt"].issym() and m["/srv/os.txt"].linkname == "/etc/os-release"
    assert data["/etc/os-release"] == b"ID=image-only\n"


def test_no_docker_artefacts_and_placeholders(tmp_path):
    _, _, m, data, order = build(tmp_path, BASE, ALL)
    assert not [p for p in m if p.startswith(("/proc", "/sys", "/dev", "/.dockerenv"))]
    assert "/etc/hostname" not in m
    assert data["/etc/hosts"] == b"" and data["/etc/resolv.conf"] == b""
    assert m["/tmp"].isdir() and m["/tmp"].mode == 0o1777
    # parents come first
    for i, path in enumerate(order):
        parent = path.rsplit("/", 1)[0] or "/"
        assert parent == "/" or parent in order[:i], path


def test_placeholders_in_an_image_without_etc(tmp_path):
    """A FROM-scratch image has no /etc (the export stream showed the container's): the
    placeholders still get a directory to live in."""
    _, _, m, data, order = build(tmp_path, [member("app", data=b"APP", mode=0o755)], ["/app"])
    assert m["/etc"].isdir() and m["/etc"].mode == 0o755
    assert data["/etc/hosts"] == b"" and data["/etc/resolv.conf"] == b""
    assert order.index("/etc") < order.index("/etc/hosts")


def test_existing_tmp_keeps_its_metadata(tmp_path):
    members = BASE + [member("tmp", "dir", mode=0o1777, mtime=42)]
    _, _, m, _, _ = build(tmp_path, members, [])
    assert (m["/tmp"].mode, m["/tmp"].mtime) == (0o1777, 42)


def test_hardlinks(tmp_path):
    _, _, m, data, _ = build(tmp_path, BASE, ["/srv/one", "/srv/hl1"])
    assert m["/srv/hl1"].islnk() and m["/srv/hl1"].linkname == "srv/one"
    # only link names kept: the first carries the content, the second links to it
    _, _, m, data, _ = build(tmp_path, BASE, ["/srv/hl1", "/srv/hl2"])
    assert "/srv/one" not in m
    assert m["/srv/hl1"].isfile() and data["/srv/hl1"] == b"ONE"
    assert m["/srv/hl2"].islnk() and m["/srv/hl2"].linkname == "srv/hl1"


def test_exclude_not_written(tmp_path):
    p, _, m, _, _ = build(tmp_path, BASE, ALL, KeepOptions(exclude_patterns=("/srv/**/caf*",)))
    assert p.excluded == ("/srv/sgid dir/caf\udce9",) and "/srv/sgid dir/caf\udce9" not in m
    assert "/srv/sgid dir" in m


def test_elf_closure_in_layer(tmp_path):
    _, _, m, data, _ = build(tmp_path, elf_members(), ["/bin/true"])
    assert m["/lib"].issym() and m["/bin"].issym()
    with open("/usr/lib/x86_64-linux-gnu/libc.so.6", "rb") as f:
        assert data[f"/{LIBDIR}/libc.so.6"] == f.read()


def test_missing_parent_synthesised(tmp_path):
    """A plan naming a path the stream lacks (here /etc itself) gets a 0755 dir first."""
    source = TarFileSource(make_tar(tmp_path / "i.tar", [member("x", data=b"x")]))
    with source.open() as f:
        fs = scan(f)
    p = BuildPlan(kept=(KeptFile("/etc", 0, "dir", ("parent",)),
                        KeptFile("/etc/hosts", 0, "file", ("runtime",)),
                        KeptFile("/x", 1, "file", ("accessed",))), total_files=1, total_size=1)
    layer = write_layer(fs, p, source, str(tmp_path / "l.tar"))
    with tarfile.open(layer.path) as tf:
        names = [(t.name, t.mode) for t in tf.getmembers()]
    assert names == [("x", 0o644), ("etc", 0o755), ("etc/hosts", 0o644)]


def test_output_config_preserves_fields():
    cfg = {"Entrypoint": ["/e"], "Cmd": ["-x"], "Env": ["A=1"], "WorkingDir": "/w", "User": "1:2",
           "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}}, "Labels": {"a": "b"},
           "StopSignal": "SIGQUIT", "Healthcheck": {"Test": ["CMD", "x"]}, "OnBuild": ["RUN x"],
           "Shell": ["/bin/bash", "-c"], "Hostname": "abc", "Image": "sha256:x"}
    out = output_config(image_info(config=cfg), {"minify.source": "t:latest"})
    expected = {k: v for k, v in cfg.items() if k not in ("Hostname", "Image")}
    expected["Labels"] = {"a": "b", "minify.source": "t:latest"}
    assert out == {"architecture": "amd64", "os": "linux", "config": expected}
    assert cfg["Labels"] == {"a": "b"}  # the source record is not mutated


def test_default_and_check_tag():
    mk = lambda ref, tags=(): image_info(ref=ref, repo_tags=tags)  # noqa: E731
    assert default_tag(mk("minify-sandbox/nginx")) == "minify-sandbox/nginx.min:latest"
    assert default_tag(mk("localhost:5000/a/b:1.2")) == "localhost:5000/a/b.min:1.2"
    assert default_tag(mk("aaaaaaaaaaaa")) == "minified-aaaaaaaaaaaa:latest"
    assert default_tag(mk("repo@sha256:" + "b" * 64)) == "repo.min:latest"
    with pytest.raises(ImageError):
        check_tag("t", mk("t:latest", ("t:latest",)))
    with pytest.raises(ImageError):
        check_tag("x:1", mk("aaaa", ("x:1",)))
    with pytest.raises(UsageError):
        check_tag("Bad Tag", mk("t"))
    check_tag("t.min:latest", mk("t:latest", ("t:latest",)))


class FakeImages:
    def __init__(self):
        self.loaded = b""

    def load(self, data):
        self.loaded = b"".join(data)
        return []

    def get(self, tag):
        with tarfile.open(fileobj=io.BytesIO(self.loaded)) as tf:
            manifest = json.load(tf.extractfile("manifest.json"))
            cfg = tf.extractfile(manifest[0]["Config"]).read()
        return type("Img", (), {"id": "sha256:" + hashlib.sha256(cfg).hexdigest(),
                                "attrs": {"Size": 123}})()


def test_load_image_archive(tmp_path):
    _, layer, _, _, _ = build(tmp_path, BASE, ALL)
    client = type("C", (), {"images": FakeImages()})()
    res = load_image(client, output_config(image_info()), layer, "t.min:latest")
    with tarfile.open(fileobj=io.BytesIO(client.images.loaded)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        assert manifest == [{"Config": res.image_id[7:] + ".json", "RepoTags": ["t.min:latest"],
                             "Layers": [f"{layer.sha256}/layer.tar"]}]
        cfg = json.load(tf.extractfile(manifest[0]["Config"]))
        with open(layer.path, "rb") as f:
            assert tf.extractfile(manifest[0]["Layers"][0]).read() == f.read()
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{layer.sha256}"]}
    assert cfg["history"] == [{"created_by": "minify"}] and cfg["architecture"] == "amd64"
    assert res.size == 123 and res.tag == "t.min:latest" and res.layer_path == layer.path


def test_full_tag_adds_latest_like_the_engine():
    from minifier.image.rebuild import full_tag

    assert full_tag("minify-bench/x") == "minify-bench/x:latest"
    assert full_tag("host:5000/app") == "host:5000/app:latest"
    assert full_tag("app:1.2") == "app:1.2"


class _NoPass:
    """A source that must not be read: the index pass already kept every needed byte."""

    def __init__(self, source):
        self.source = source

    def open(self):
        raise AssertionError("an extra pass over the image was made")


def test_layer_from_the_index_pass_equals_the_streamed_layer(tmp_path):
    from minifier.image.imagefs import Spool

    source = TarFileSource(make_tar(tmp_path / "image.tar", BASE))
    # As the monitors report them: names used and, from fanotify, the real files behind.
    accessed = [*ALL, "/srv/one", "/srv/hl1", "/srv/hl2", "/etc/os-release"]
    with source.open() as f:
        streamed_fs = scan(f)
    p = plan(streamed_fs, accessed, image_info(), KeepOptions(), source)
    streamed = write_layer(streamed_fs, p, source, str(tmp_path / "streamed.tar"))

    spool = Spool(str(tmp_path / "spool"), accessed)
    with source.open() as f:
        spooled_fs = scan(f, spool=spool)
    p2 = plan(spooled_fs, accessed, image_info(), KeepOptions(), _NoPass(source))
    assert p2 == p
    indexed = write_layer(spooled_fs, p2, _NoPass(source), str(tmp_path / "indexed.tar"))
    assert (indexed.sha256, indexed.size, indexed.files) == (
        streamed.sha256, streamed.size, streamed.files)


def test_elf_closure_from_the_index_pass_needs_no_extra_pass(tmp_path):
    from minifier.image.imagefs import Spool

    members = elf_members()
    source = TarFileSource(make_tar(tmp_path / "image.tar", members))
    # The loader's and libc's real paths, as /proc/PID/maps and fanotify report them.
    accessed = ["/usr/bin/true", f"/{LIBDIR}/libc.so.6", f"/{LIBDIR}/ld-linux-x86-64.so.2"]
    with source.open() as f:
        fs = scan(f, spool=Spool(str(tmp_path / "spool"), accessed))
    p = plan(fs, accessed[:1], image_info(), KeepOptions(), _NoPass(source))
    kept = {k.path: k.reasons for k in p.kept}
    assert "elf-dep" in kept[f"/{LIBDIR}/libc.so.6"]

"""closure: what the output keeps and why, over synthetic image tars."""

from __future__ import annotations

import pytest

from minifier.errors import UsageError
from minifier.image.closure import glob_to_regex, plan
from minifier.image.imagefs import scan
from minifier.image.source import TarFileSource
from minifier.options import KeepOptions
from minifier.records import ImageInfo
from tests.unit.test_elfdeps import LIBDIR, elf_members
from tests.unit.test_imagefs import make_tar, member

PY = b"\x7fELF-not-parsed-python"  # only heads matter unless kept ELF content is parsed


def image_info(entrypoint=(), cmd=(), env=("PATH=/usr/local/bin:/usr/bin:/bin",), workdir=""):
    return ImageInfo(ref="t:latest", id="sha256:" + "a" * 64, repo_tags=("t:latest",), size=0,
                     architecture="amd64", os="linux", entrypoint=tuple(entrypoint),
                     cmd=tuple(cmd), env=tuple(env), workdir=workdir, user="",
                     exposed_ports=(), volumes=(), labels={}, stop_signal="", healthcheck=None,
                     config={})


def run_plan(tmp_path, members, accessed, keep=None, image=None):
    source = TarFileSource(make_tar(tmp_path / "image.tar", members))
    with source.open() as f:
        fs = scan(f)
    return plan(fs, accessed, image or image_info(), keep or KeepOptions(), source)


def kept(p):
    return {k.path: k for k in p.kept}


BASE = [
    member("etc", "dir", mode=0o750, uid=7, gid=8, mtime=1234),
    member("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
    member("etc/group", data=b"root:x:0:\n"),
    member("etc/os-release", data=b"ID=image-only\n"),
    member("etc/hosts", data=b""),
    member("etc/hostname", data=b""),
    member(".dockerenv", data=b""),
    member("proc", "dir"),
    member("srv", "dir"),
    member("srv/os.txt", "symlink", link="/etc/os-release"),
    member("srv/escape", "symlink", link="../../../etc/os-release"),
    member("srv/a", "symlink", link="b"),
    member("srv/b", "symlink", link="a"),
    member("srv/data", "dir"),
    member("srv/data/one", data=b"1"),
    member("srv/data/two", data=b"22"),
    member("srv/data/hl", "hardlink", link="srv/data/one"),
    member("srv/caf\udce9 x", data=b"odd name"),
]


def test_accessed_parents_symlinks_runtime(tmp_path):
    p = run_plan(tmp_path, BASE, ["/srv/os.txt"])
    k = kept(p)
    assert k["/srv/os.txt"].reasons == ("symlink",)
    assert k["/etc/os-release"].reasons == ("accessed",)
    assert k["/etc"].reasons == ("parent",) and k["/srv"].reasons == ("parent",)
    assert k["/etc/passwd"].reasons == ("runtime",) and "/etc/group" in k
    assert k["/etc/hosts"] == k["/etc/hosts"].__class__("/etc/hosts", 0, "file", ("runtime",))
    assert k["/etc/resolv.conf"].kind == "file"  # placeholder, absent from the image
    assert k["/tmp"].kind == "dir" and k["/tmp"].reasons == ("runtime",)
    assert not {"/.dockerenv", "/proc", "/etc/hostname", "/srv/data"} & set(k)
    assert p.total_files == 14  # everything but root and the docker artefacts
    assert p.total_size == sum(len(d) for ti, d in BASE if ti.isfile() and not
                               ti.name.startswith((".docker", "etc/host")))


def test_escaping_symlink_clamped_and_loop_warned(tmp_path):
    p = run_plan(tmp_path, BASE, ["/srv/escape", "/srv/a"])
    k = kept(p)
    assert "/etc/os-release" in k and "/srv/escape" in k
    assert {"/srv/a", "/srv/b"} <= set(k)
    assert any("symlink loop" in w for w in p.warnings)


def test_hardlink_only_link_name_kept(tmp_path):
    k = kept(run_plan(tmp_path, BASE, ["/srv/data/hl"]))
    assert k["/srv/data/hl"].kind == "file" and k["/srv/data/hl"].size == 1
    assert "hardlink" in k["/srv/data/hl"].reasons and "/srv/data/one" not in k
    k = kept(run_plan(tmp_path, BASE, ["/srv/data/hl", "/srv/data/one"]))
    assert k["/srv/data/hl"].kind == "hardlink" and k["/srv/data/hl"].size == 0


def test_include_path_tree_and_exclude_last(tmp_path):
    keep = KeepOptions(include_paths=("/srv",), exclude_patterns=("/srv/data/**", "**/*.txt"))
    p = run_plan(tmp_path, BASE, [], keep)
    k = kept(p)
    assert "/srv/data" in k and "/srv/data/two" not in k
    assert p.excluded == ("/srv/data/hl", "/srv/data/one", "/srv/data/two", "/srv/os.txt")
    assert "/srv/caf\udce9 x" in k and k["/srv/caf\udce9 x"].reasons == ("include-path",)
    # the link target was kept through the tree's symlink before the exclude ran
    assert k["/etc/os-release"].reasons == ("include-path",)


def test_exclude_directory_removes_subtree(tmp_path):
    p = run_plan(tmp_path, BASE, ["/srv/data/one"], KeepOptions(exclude_patterns=("/srv/data",)))
    assert p.excluded == ("/srv/data", "/srv/data/one")


def test_include_path_missing_is_usage_error(tmp_path):
    with pytest.raises(UsageError):
        run_plan(tmp_path, BASE, [], KeepOptions(include_paths=("/nope",)))


def test_glob_to_regex():
    assert glob_to_regex("/usr/**/*.pyc").match("/usr/lib/a/b/c.pyc")
    assert glob_to_regex("/usr/**/*.pyc").match("/usr/c.pyc")
    assert not glob_to_regex("/usr/*.pyc").match("/usr/lib/c.pyc")
    assert glob_to_regex("/a/**").match("/a/b/c") and not glob_to_regex("/a/**").match("/a")
    assert glob_to_regex("/x/[!a]?").match("/x/bc") and not glob_to_regex("/x/[!a]?").match("/x/ac")


def test_elf_deps_exact(tmp_path):
    p = run_plan(tmp_path, elf_members(), ["/bin/true"])
    k = kept(p)
    assert k["/bin"].reasons == ("symlink",) and k["/usr/bin/true"].reasons == ("accessed",)
    deps = {path for path, f in k.items() if "elf-dep" in f.reasons}
    assert deps == {f"/{LIBDIR}/ld-linux-x86-64.so.2", f"/{LIBDIR}/libc.so.6"}
    assert k["/lib64/ld-linux-x86-64.so.2"].reasons == ("symlink",)
    assert k["/lib"].reasons == ("symlink",)
    assert not p.warnings


def test_elf_deps_earlier_in_stream_need_another_pass(tmp_path):
    members = elf_members()
    true = members.pop(6)
    p = run_plan(tmp_path, members + [true], ["/usr/bin/true"])
    assert not p.warnings
    assert "elf-dep" in kept(p)[f"/{LIBDIR}/libc.so.6"].reasons


def test_shebang_env_chain(tmp_path):
    members = elf_members([
        member("usr/bin/env", data=open("/usr/bin/env", "rb").read(), mode=0o755),
        member("usr/bin/python3", "symlink", link="python3.11"),
        member("usr/bin/python3.11", data=open("/usr/bin/true", "rb").read(), mode=0o755),
        member("app", "dir"),
        member("app/run.sh", data=b"#!/bin/sh -e\nexec /app/main.py\n", mode=0o755),
        member("app/main.py", data=b"#!/usr/bin/env python3\nprint(1)\n", mode=0o755),
        member("usr/bin/sh", "symlink", link="dash"),
        member("usr/bin/dash", data=b"#!/usr/bin/python3.11\n", mode=0o755),
    ])
    image = image_info(entrypoint=["/app/run.sh"])
    k = kept(run_plan(tmp_path, members, ["/app/main.py"], image=image))
    assert k["/app/run.sh"].reasons == ("entrypoint",)
    assert k["/usr/bin/dash"].reasons == ("shebang",) and k["/bin"].reasons == ("symlink",)
    assert k["/usr/bin/env"].reasons == ("shebang",)
    assert k["/usr/bin/python3"].reasons == ("symlink",)
    assert k["/usr/bin/python3.11"].reasons == ("shebang",)
    assert "elf-dep" in k[f"/{LIBDIR}/libc.so.6"].reasons


def test_include_bin_and_shell(tmp_path):
    members = elf_members([member("usr/bin/sh", "symlink", link="true")])
    k = kept(run_plan(tmp_path, members, [], KeepOptions(include_shell=True)))
    assert k["/usr/bin/sh"].reasons == ("symlink",) and k["/bin"].reasons == ("symlink",)
    assert "include-shell" in k["/usr/bin/true"].reasons
    k = kept(run_plan(tmp_path, members, [], KeepOptions(include_bins=("true",))))
    assert k["/usr/bin/true"].reasons == ("include-bin",) and f"/{LIBDIR}/libc.so.6" in k
    with pytest.raises(UsageError):
        run_plan(tmp_path, members, [], KeepOptions(include_bins=("nope",)))


def test_certs_kept_when_accessed(tmp_path):
    members = BASE + [
        member("etc/ssl", "dir"), member("etc/ssl/certs", "dir"),
        member("etc/ssl/certs/ca.pem", "symlink", link="/usr/share/ca-certificates/m/ca.crt"),
        member("etc/ssl/certs/ca-certificates.crt", data=b"PEM"),
        member("usr", "dir"), member("usr/share", "dir"),
        member("usr/share/ca-certificates", "dir"), member("usr/share/ca-certificates/m", "dir"),
        member("usr/share/ca-certificates/m/ca.crt", data=b"CRT"),
    ]
    k = kept(run_plan(tmp_path, members, ["/etc/ssl/certs/ca-certificates.crt"]))
    assert k["/usr/share/ca-certificates/m/ca.crt"].reasons == ("certs",)
    assert "certs" in k["/etc/ssl/certs/ca.pem"].reasons
    k = kept(run_plan(tmp_path, members, ["/etc/os-release"]))
    assert "/usr/share/ca-certificates/m/ca.crt" not in k
    k = kept(run_plan(tmp_path, members, [], KeepOptions(include_cert_all=True)))
    assert "/usr/share/ca-certificates/m/ca.crt" in k


def test_entrypoint_via_path_and_missing_warning(tmp_path):
    p = run_plan(tmp_path, elf_members(), [], image=image_info(cmd=["true", "x"]))
    assert kept(p)["/usr/bin/true"].reasons == ("entrypoint",)
    p = run_plan(tmp_path, elf_members(), [], image=image_info(cmd=["nope"]))
    assert p.warnings == ("entrypoint nope not found in the image",)

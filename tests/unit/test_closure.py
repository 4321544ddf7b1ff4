"""closure: what the output keeps and why, over synthetic image tars."""

from __future__ import annotations

import pytest

from minifier.errors import UsageError
from minifier.image import closure
from minifier.image.closure import glob_to_regex, plan, served_dirs
from minifier.image.imagefs import scan
from minifier.image.source import TarFileSource
from minifier.options import KeepOptions
from tests.unit.elves import gcc_elf, tiny_elf
from tests.unit.fixtures import LIBDIR, chain_members, elf_members, image_info, make_tar, member

PY = b"\x7fELF-not-parsed-python"  # only heads matter unless kept ELF content is parsed


PATH_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin",)


def run_plan(tmp_path, members, accessed, keep=None, image=None, served=()):
    source = TarFileSource(make_tar(tmp_path / "image.tar", members))
    with source.open() as f:
        fs = scan(f)
    return plan(fs, accessed, image or image_info(env=PATH_ENV), keep or KeepOptions(), source,
                served=served)


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
    # What the image lacks (or has only as Docker's artefacts) is made empty, and told apart
    # from what is kept of the image, so that kept never exceeds the image's total.
    assert p.placeholders == ("/etc/hosts", "/etc/resolv.conf", "/tmp")


def test_a_scratch_image_keeps_all_of_its_entries_and_gets_placeholders(tmp_path):
    members = [member("server", data=b"\x7fELF static", mode=0o755), member("www", "dir"),
               member("www/index.html", data=b"<p>hi</p>")]
    p = run_plan(tmp_path, members, ["/server", "/www/index.html"],
                 image=image_info(env=PATH_ENV, entrypoint=("/server",)))
    assert p.total_files == 3
    assert len(p.kept) - len(p.placeholders) == 3  # all of the image, not more
    assert p.placeholders == ("/etc", "/etc/hosts", "/etc/resolv.conf", "/tmp")


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
    image = image_info(entrypoint=["/app/run.sh"], env=PATH_ENV)
    k = kept(run_plan(tmp_path, members, ["/app/main.py"], image=image))
    assert k["/app/run.sh"].reasons == ("entrypoint",)
    assert k["/usr/bin/dash"].reasons == ("shebang",) and k["/bin"].reasons == ("symlink",)
    assert k["/usr/bin/env"].reasons == ("shebang",)
    assert k["/usr/bin/python3"].reasons == ("symlink",)
    assert k["/usr/bin/python3.11"].reasons == ("shebang",)
    assert "elf-dep" in k[f"/{LIBDIR}/libc.so.6"].reasons


def test_only_an_executable_file_s_shebang_is_followed(tmp_path):
    """qa/mojo: Debian's Perl modules begin `#! perl` or `#!perl -w`, are not executable
    and never run through that line: no interpreter is looked for, nothing is said."""
    members = elf_members([
        member("usr/share/perl", "dir"),
        member("usr/share/perl/version.pm", data=b"#!perl -w\npackage version;\n"),
        member("usr/share/perl/Long.pm", data=b"#! perl\npackage Getopt::Long;\n"),
        member("usr/share/perl/tool.pl", data=b"#!/usr/bin/perl\n"),
        member("app", "dir"),
        member("app/run", data=b"#!perl\n", mode=0o755),  # relative: from the caller's cwd
        member("app/gone", data=b"#!/usr/bin/python9\n", mode=0o755),
    ])
    opened = ["/usr/share/perl/version.pm", "/usr/share/perl/Long.pm",
              "/usr/share/perl/tool.pl", "/app/run", "/app/gone"]
    p = run_plan(tmp_path, members, opened)
    assert p.warnings == ("/app/gone: interpreter /usr/bin/python9 not found in the image",)
    assert not {"/usr/bin/perl", "/perl", "/app/perl"} & set(kept(p))


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
    p = run_plan(tmp_path, elf_members(), [], image=image_info(cmd=["true", "x"], env=PATH_ENV))
    assert kept(p)["/usr/bin/true"].reasons == ("entrypoint",)
    p = run_plan(tmp_path, elf_members(), [], image=image_info(cmd=["nope"], env=PATH_ENV))
    assert p.warnings == ("entrypoint nope not found in the image",)


class _CountingSource:
    """The image tar, recording every pass made over it for content (`read`)."""

    def __init__(self, source):
        self.source, self.reads = source, []

    def open(self):
        raise AssertionError("a full pass over the image was made")

    def read(self, paths):
        self.reads.append(sorted(paths))
        return self.source.read(paths)


CHAIN = {"/usr/bin/a", f"/{LIBDIR}/libb.so.1", f"/{LIBDIR}/libc2.so.1", f"/{LIBDIR}/libc.so.6",
         f"/{LIBDIR}/ld-linux-x86-64.so.2"}


@pytest.mark.parametrize("how", ["accessed", "include-bin"])
def test_dependency_chain_against_stream_order(tmp_path, how):
    """C, B, A in the stream, A needs B needs C: all kept, the index alone answering."""
    source = TarFileSource(make_tar(tmp_path / "image.tar", chain_members(tmp_path)))
    with source.open() as f:
        fs = scan(f)
    counting = _CountingSource(source)
    keep = KeepOptions(include_bins=("a",)) if how == "include-bin" else KeepOptions()
    accessed = ["/usr/bin/a"] if how == "accessed" else []
    p = plan(fs, accessed, image_info(env=PATH_ENV), keep, counting)
    k = kept(p)
    assert CHAIN <= set(k) and not p.warnings
    assert k[f"/{LIBDIR}/libc2.so.1"].reasons == ("elf-dep",)
    assert counting.reads == []


def test_dependency_chain_read_by_path_without_the_index(tmp_path):
    """Without the index's ELF store each round reads exactly the files it discovered."""
    source = TarFileSource(make_tar(tmp_path / "image.tar", chain_members(tmp_path)))
    with source.open() as f:
        fs = scan(f, elf_index=False)
    counting = _CountingSource(source)
    p = plan(fs, [], image_info(env=PATH_ENV), KeepOptions(include_bins=("/usr/bin/a",)), counting)
    assert CHAIN <= set(kept(p)) and not p.warnings
    assert counting.reads == [
        ["/usr/bin/a"],
        [f"/{LIBDIR}/ld-linux-x86-64.so.2", f"/{LIBDIR}/libb.so.1", f"/{LIBDIR}/libc.so.6"],
        [f"/{LIBDIR}/libc2.so.1"],
    ]


USRMERGED = [
    member("bin", "symlink", link="usr/bin"),
    member("sbin", "symlink", link="usr/sbin"),
    member("lib32", "symlink", link="usr/lib32"),
    member("usr", "dir"), member("usr/bin", "dir"), member("usr/sbin", "dir"),
    member("usr/lib32", "dir"),
    member("usr/bin/dash", data=b"#!/usr/bin/dash-real\n", mode=0o755),
    member("usr/bin/dash-real", data=b"\x7fELF-x", mode=0o755),
    member("usr/bin/sh", "symlink", link="dash"),
    member("usr/sbin/daemon", data=b"x", mode=0o755),
]


def test_program_on_path_keeps_the_spelling_docker_shell_form_needs(tmp_path):
    """`sh` on PATH is /usr/bin/sh first; `docker run IMAGE /bin/sh -c` needs /bin too."""
    p = run_plan(tmp_path, USRMERGED, [], KeepOptions(include_bins=("sh",)))
    k = kept(p)
    assert k["/bin"].reasons == ("symlink",)
    assert k["/usr/bin/sh"].reasons == ("symlink",)
    assert k["/usr/bin/dash"].reasons == ("include-bin",)
    assert "/sbin" not in k and "/lib32" not in k


def test_top_level_links_to_kept_directories(tmp_path):
    k = kept(run_plan(tmp_path, USRMERGED, ["/usr/sbin/daemon"]))
    assert k["/sbin"].reasons == ("dir-symlink",)
    assert "/lib32" not in k and "/bin" not in k


def test_argv_env_and_workdir_overrides_seed_the_closure(tmp_path):
    members = elf_members([
        member("opt", "dir"), member("opt/app", "dir"),
        member("opt/app/run", data=b"#!/bin/true\n", mode=0o755),
        member("opt/lib", "dir"),
        member("opt/lib/libextra.so.1", data=tiny_elf(soname="libextra.so.1")),
        member("usr/bin/needs-extra", data=tiny_elf(needed=("libextra.so.1",)), mode=0o755),
    ])
    keep = KeepOptions(argv=("/opt/app/run", "x"), env=("LD_LIBRARY_PATH=/opt/lib",),
                       workdir="/opt", include_paths=("app",), include_bins=("needs-extra",))
    p = run_plan(tmp_path, members, [], keep, image=image_info(cmd=["nope"], env=PATH_ENV))
    k = kept(p)
    assert k["/opt/app/run"].reasons == ("entrypoint", "include-path")
    assert k["/opt/lib/libextra.so.1"].reasons == ("elf-dep",)
    assert "/usr/bin/true" in k and not p.warnings  # the script's interpreter
    p = run_plan(tmp_path, members, [], KeepOptions(include_bins=("needs-extra",)))
    assert p.warnings == ("/usr/bin/needs-extra: library libextra.so.1 not found in the image",)


def test_hwcaps_copies_and_inherited_rpath_kept(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    gcc_elf(lib, "libdeep.so.1", shared=True, soname="libdeep.so.1")
    gcc_elf(lib, "libmid.so.1", shared=True, soname="libmid.so.1", needs=["libdeep.so.1"],
            link_dirs=[lib])
    gcc_elf(tmp_path, "prog", needs=["libmid.so.1"], link_dirs=[lib],
            flags=["-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib"])
    hw = "app/lib/glibc-hwcaps/x86-64-v3"
    members = elf_members([
        member("app", "dir"), member("app/bin", "dir"), member("app/lib", "dir"),
        member("app/lib/glibc-hwcaps", "dir"), member(hw, "dir"),
        member("app/bin/prog", data=(tmp_path / "prog").read_bytes(), mode=0o755),
        member("app/lib/libmid.so.1", data=(lib / "libmid.so.1").read_bytes()),
        member(f"{hw}/libmid.so.1", data=(lib / "libmid.so.1").read_bytes()),
        member("app/lib/libdeep.so.1", data=(lib / "libdeep.so.1").read_bytes()),
        member("app/lib/unused.so", data=(lib / "libdeep.so.1").read_bytes()),
    ])
    p = run_plan(tmp_path, members, ["/app/bin/prog"])
    k = kept(p)
    # libdeep is found only through prog's RPATH, inherited by libmid (which has none).
    assert {"/app/lib/libmid.so.1", f"/{hw}/libmid.so.1", "/app/lib/libdeep.so.1"} <= set(k)
    assert "/app/lib/unused.so" not in k and not p.warnings


def test_musl_loader_and_its_path_file(tmp_path):
    members = [
        member("lib", "dir"), member("etc", "dir"), member("opt", "dir"),
        member("opt/m", "dir"), member("bin", "dir"),
        member("lib/ld-musl-x86_64.so.1", data=tiny_elf(soname="libc.so"), mode=0o755),
        member("etc/ld-musl-x86_64.path", data=b"/opt/m\n"),
        member("opt/m/libq.so", data=tiny_elf(soname="libq.so")),
        member("bin/app", data=tiny_elf(interp="/lib/ld-musl-x86_64.so.1",
                                        needed=("libq.so", "libc.so")), mode=0o755),
    ]
    p = run_plan(tmp_path, members, ["/bin/app"], image=image_info(env=()))
    k = kept(p)
    assert k["/etc/ld-musl-x86_64.path"].reasons == ("loader-config",)
    assert k["/opt/m/libq.so"].reasons == ("elf-dep",)
    assert k["/lib/ld-musl-x86_64.so.1"].reasons == ("elf-dep",) and not p.warnings


def test_preloaded_libraries_kept(tmp_path):
    members = elf_members([
        member("etc", "dir"), member("etc/ld.so.preload", data=b"/usr/lib/libfile.so\n"),
        member("usr/lib/libfile.so", data=tiny_elf(needed=("libc.so.6",))),
        member("usr/lib/libenv.so", data=tiny_elf()),
    ])
    p = run_plan(tmp_path, members, ["/usr/bin/true"],
                 image=image_info(env=("LD_PRELOAD=libenv.so",)))
    k = kept(p)
    assert k["/etc/ld.so.preload"].reasons == ("loader-config",)
    assert k["/usr/lib/libfile.so"].reasons == ("preload",)
    assert k["/usr/lib/libenv.so"].reasons == ("preload",) and not p.warnings


def test_a_need_met_by_an_object_the_app_loaded_by_path(tmp_path):
    members = [
        member("jdk", "dir"), member("jdk/lib", "dir"), member("jdk/lib/server", "dir"),
        member("jdk/lib/server/libjvm.so", data=tiny_elf(soname="libjvm.so")),
        member("jdk/lib/libjava.so", data=tiny_elf(needed=("libjvm.so",))),
    ]
    p = run_plan(tmp_path, members, ["/jdk/lib/libjava.so", "/jdk/lib/server/libjvm.so"])
    assert not p.warnings
    p = run_plan(tmp_path, members, ["/jdk/lib/libjava.so"])
    assert p.warnings == ("/jdk/lib/libjava.so: library libjvm.so not found in the image",)


def test_a_library_loaded_on_its_own_and_through_its_program(tmp_path):
    """libmid's need is found only through prog's RPATH: taken on its own (the app opened
    it) it is unresolved, through prog it is found; only a need no way finds is warned."""
    members = [
        member("app", "dir"), member("app/bin", "dir"), member("app/lib", "dir"),
        member("app/bin/prog", data=tiny_elf(needed=("libmid.so",), rpath="$ORIGIN/../lib")),
        member("app/lib/libmid.so", data=tiny_elf(needed=("libdeep.so", "libgone.so"))),
        member("app/lib/libdeep.so", data=tiny_elf()),
    ]
    p = run_plan(tmp_path, members, ["/app/lib/libmid.so", "/app/bin/prog"])
    assert "/app/lib/libdeep.so" in kept(p)
    assert p.warnings == ("/app/lib/libmid.so: library libgone.so not found in the image",)


def test_a_file_that_is_only_the_elf_magic_is_kept_with_a_warning(tmp_path):
    # Four bytes of magic and nothing else: indexing and planning must not crash on it.
    members = [*BASE, member("srv/odd", data=b"\x7fELF", mode=0o755)]
    p = run_plan(tmp_path, members, ["/srv/odd"])
    assert "/srv/odd" in kept(p)
    assert any("/srv/odd" in w and "not a valid ELF file" in w for w in p.warnings)


# -- mounts: what the image has below a mountpoint --------------------------------------

MOUNTED = [
    member("etc", "dir"),
    member("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
    member("etc/app", "symlink", link="/config"),  # the app's spelling of the mountpoint
    member("config", "dir", mode=0o750, uid=5),
    member("config/app.conf", data=b"image default"),
    member("config/current", "symlink", link="/srv/v1"),  # the mount hides this link
    member("config/extra", "dir"),
    member("config/extra/big.bin", data=b"x" * 100),
    member("srv", "dir"),
    member("srv/v1", "dir"),
    member("srv/v1/data.txt", data=b"v1"),
    member("srv/data.txt", data=b"needed"),
    member("var", "dir"),
    member("var/lib", "dir"),
    member("var/lib/app", "dir"),
    member("var/lib/app/seed.db", data=b"seed"),
]


def test_a_bind_mount_hides_the_image_below_its_mountpoint(tmp_path):
    keep = KeepOptions(mountpoints=("/etc/app", "/var/lib/app", "/run/new"),
                       hidden=("/etc/app",))
    p = run_plan(tmp_path, MOUNTED, ["/etc/app/app.conf", "/etc/app/current/data.txt",
                                     "/srv/data.txt", "/var/lib/app/seed.db"], keep)
    k = kept(p)
    # The mountpoint (through the image's link to it) is kept, without what it holds.
    assert k["/etc/app"].reasons == ("symlink",)
    assert k["/config"].reasons == ("mountpoint",) and k["/config"].kind == "dir"
    assert not {p for p in k if p.startswith("/config/")}
    assert "/srv/v1" not in k  # reached only through a link the mount hides
    assert k["/srv/data.txt"].reasons == ("accessed",)  # needed outside the mount
    # A volume gets the image's files (the engine copies them into an empty one).
    assert k["/var/lib/app"].reasons == ("parent", "mountpoint")
    assert k["/var/lib/app/seed.db"].reasons == ("accessed",)
    assert "/run" not in k  # a mountpoint the image lacks is the engine's to create


def test_a_file_bind_mount_keeps_the_directory_not_the_images_file(tmp_path):
    keep = KeepOptions(mountpoints=("/config/app.conf",), hidden=("/config/app.conf",))
    k = kept(run_plan(tmp_path, MOUNTED, ["/etc/app/app.conf"], keep))
    assert "/config/app.conf" not in k  # the engine makes that mountpoint, empty
    assert k["/config"].kind == "dir" and k["/etc/app"].kind == "symlink"


def test_a_path_below_a_hidden_mount_cannot_be_included(tmp_path):
    keep = KeepOptions(mountpoints=("/config",), hidden=("/config",),
                       include_paths=("/config/extra",))
    with pytest.raises(UsageError, match="--include-path /config/extra: it is below the "
                                         "mount at /config, which hides the image's files"):
        run_plan(tmp_path, MOUNTED, [], keep)
    # A tree around a mount keeps everything but what the mount hides.
    keep = KeepOptions(mountpoints=("/config/extra",), hidden=("/config/extra",),
                       include_paths=("/config",))
    k = kept(run_plan(tmp_path, MOUNTED, [], keep))
    assert {"/config/app.conf", "/config/current", "/config/extra"} <= set(k)
    assert "/config/extra/big.bin" not in k


# -- --include-zoneinfo ---------------------------------------------------------------

ZONES = [
    member("etc", "dir"),
    member("etc/localtime", "symlink", link="/usr/share/zoneinfo/Etc/UTC"),
    member("etc/timezone", data=b"Etc/UTC\n"),
    member("usr", "dir"), member("usr/share", "dir"),
    member("usr/share/zoneinfo", "dir"),
    member("usr/share/zoneinfo/Europe", "dir"),
    member("usr/share/zoneinfo/Europe/Paris", data=b"TZif2 paris"),
    member("usr/share/zoneinfo/Etc", "dir"),
    member("usr/share/zoneinfo/Etc/UTC", data=b"TZif2 utc"),
    member("usr/share/zoneinfo/posix", "symlink", link="."),
    member("opt", "dir"), member("opt/go", "dir"), member("opt/go/lib", "dir"),
    member("opt/go/lib/time", "dir"),
    member("opt/go/lib/time/zoneinfo.zip", data=b"PK zones"),
]


def test_zoneinfo_is_kept_only_when_asked(tmp_path):
    image = image_info(env=(*PATH_ENV, "GOROOT=/opt/go"))
    k = kept(run_plan(tmp_path, ZONES, [], image=image))
    assert not {p for p in k if "zoneinfo" in p or p.startswith("/etc/time")}
    p = run_plan(tmp_path, ZONES, [], KeepOptions(include_zoneinfo=True), image)
    k = kept(p)
    assert {path for path, f in k.items() if "zoneinfo" in f.reasons} == {
        "/usr/share/zoneinfo", "/usr/share/zoneinfo/Europe", "/usr/share/zoneinfo/Europe/Paris",
        "/usr/share/zoneinfo/Etc", "/usr/share/zoneinfo/Etc/UTC", "/usr/share/zoneinfo/posix",
        "/etc/timezone", "/opt/go/lib/time/zoneinfo.zip"}
    assert k["/etc/localtime"].reasons == ("symlink",)  # to Etc/UTC, kept above
    assert p.warnings == ()


def test_zoneinfo_asked_of_an_image_without_it_is_a_warning(tmp_path):
    p = run_plan(tmp_path, BASE, [], KeepOptions(include_zoneinfo=True))
    assert p.warnings == ("--include-zoneinfo: the image has no time zone database (looked "
                          "in /usr/share/zoneinfo, /usr/share/lib/zoneinfo, /usr/lib/zoneinfo, "
                          "/usr/lib/locale/TZ, /etc/zoneinfo, /etc/localtime, /etc/timezone)",)


def test_served_dirs_are_found_from_urls_and_the_files_that_answered_them():
    files = ["/usr/lib/rabbitmq/plugins/mgmt/priv/www/js/main.js",
             "/usr/lib/rabbitmq/plugins/mgmt/priv/www/index.html",
             "/usr/share/prometheus/web/static/js/graph/index.js",
             "/srv/site/about.html", "/app/app.py", "/proc/self/status",
             # one file opened through a link and seen at its target too
             "/usr/share/prometheus/web/static/jquery/jquery.min.js",
             "/usr/share/javascript/jquery/jquery.min.js"]
    urls = ["/js/main.js",  # the app's root path
            "/classic/static/js/graph/index.js",  # a route prefix the directory lacks
            "/about.html?x=1",  # one component: a file name with an extension
            "/api/status",  # one component in common, a name without a dot: no
            "/app.py/",  # nothing but the name in common... and a single component: yes
            "/", "/index.html%3F", "/classic/static/jquery/jquery.min.js"]
    assert served_dirs(urls, files) == {
        "/usr/lib/rabbitmq/plugins/mgmt/priv/www": "/js/main.js",
        "/usr/share/prometheus/web": "/classic/static/js/graph/index.js",
        "/srv/site": "/about.html", "/app": "/app.py/"}


WEB = [
    member("srv", "dir"), member("srv/www", "dir"), member("srv/www/js", "dir"),
    member("srv/www/js/main.js", data=b"load('tmpl/' + name + '.ejs')"),
    member("srv/www/js/tmpl", "dir"),
    member("srv/www/js/tmpl/login.ejs", data=b"<form>"),  # fetched only by the script
    member("srv/www/index.html", data=b"<script src=js/main.js>"),
    member("srv/data.bin", data=b"x" * 100),  # beside the web root: not served
    member("tmp", "dir"), member("tmp/x.html", data=b"<p>"),
]


def test_a_served_directory_is_kept_whole(tmp_path):
    """qa/rabbitmq: the UI's script builds its templates' names; only the directory its
    files were served from tells they belong to the site."""
    accessed = ["/srv/www/index.html", "/srv/www/js/main.js", "/tmp/x.html"]
    urls = ["/", "/index.html", "/js/main.js", "/x.html"]
    k = kept(run_plan(tmp_path, elf_members(WEB), accessed, served=urls))
    assert k["/srv/www/js/tmpl/login.ejs"].reasons == ("served-dir",)
    assert k["/srv/www/js/main.js"].reasons == ("accessed", "served-dir")
    assert "/srv/data.bin" not in k
    assert "served-dir" not in k["/tmp/x.html"].reasons  # /tmp is never a site
    off = run_plan(tmp_path, elf_members(WEB), accessed, served=urls,
                   keep=KeepOptions(include_served_dirs=False))
    assert "/srv/www/js/tmpl/login.ejs" not in kept(off)


def test_a_served_directory_too_big_to_keep_whole_is_said(tmp_path, monkeypatch):
    monkeypatch.setattr(closure, "WHOLE_DIR_MAX_FILES", 3)
    p = run_plan(tmp_path, elf_members(WEB), ["/srv/www/js/main.js"], served=["/js/main.js"])
    assert p.warnings == (
        "/srv/www: the app served /js/main.js from it, but with 5 entries and 58 bytes it is "
        "not kept whole (--include-path /srv/www keeps it)",)
    assert "/srv/www/js/tmpl/login.ejs" not in kept(p)


PACKAGES = [
    member("usr/lib/python3", "dir"), member("usr/lib/python3/dist-packages", "dir"),
    member("usr/lib/python3/dist-packages/django", "dir"),
    member("usr/lib/python3/dist-packages/django/__init__.py", data=b""),
    member("usr/lib/python3/dist-packages/django/contrib", "dir"),
    member("usr/lib/python3/dist-packages/django/contrib/admin.py", data=b""),
    member("usr/lib/python3/dist-packages/django/templates", "dir"),
    member("usr/lib/python3/dist-packages/django/templates/index.html", data=b"{{ x }}"),
    member("usr/lib/python3/dist-packages/six.py", data=b""),  # a module, not a package
    member("usr/lib/python3/dist-packages/yaml", "dir"),
    member("usr/lib/python3/dist-packages/yaml/__init__.py", data=b""),  # never loaded
    member("usr/share", "dir"),
    member("usr/share/nodejs", "dir"), member("usr/share/nodejs/iconv-lite", "dir"),
    member("usr/share/nodejs/iconv-lite/lib", "dir"),
    member("usr/share/nodejs/iconv-lite/lib/index.js", data=b""),
    member("usr/share/nodejs/iconv-lite/encodings", "dir"),
    member("usr/share/nodejs/iconv-lite/encodings/index.js", data=b""),
    member("app", "dir"), member("app/node_modules", "dir"),
    member("app/node_modules/@scope", "dir"), member("app/node_modules/@scope/pkg", "dir"),
    member("app/node_modules/@scope/pkg/a.js", data=b""),
    member("app/node_modules/@scope/pkg/b.js", data=b""),
    member("usr/share/perl5", "dir"), member("usr/share/perl5/Mojolicious", "dir"),
    member("usr/share/perl5/Mojolicious/Lite.pm", data=b""),
    member("usr/share/perl5/Mojolicious/Command", "dir"),
    member("usr/share/perl5/Mojolicious/Command/get.pm", data=b""),
]


def test_include_packages_keeps_each_loaded_package_whole(tmp_path):
    """qa/django, qa/express, qa/mojo: the templates, encodings and commands a framework
    loads only when a page or a command first needs them."""
    accessed = ["/usr/lib/python3/dist-packages/django/contrib/admin.py",
                "/usr/lib/python3/dist-packages/six.py",
                "/usr/share/nodejs/iconv-lite/lib/index.js",
                "/app/node_modules/@scope/pkg/a.js", "/usr/share/perl5/Mojolicious/Lite.pm"]
    members = elf_members(PACKAGES)
    assert "/usr/lib/python3/dist-packages/django/templates/index.html" not in kept(
        run_plan(tmp_path, members, accessed))  # off by default
    p = run_plan(tmp_path, members, accessed, keep=KeepOptions(include_packages=True))
    k = kept(p)
    for path in ("/usr/lib/python3/dist-packages/django/templates/index.html",
                 "/usr/share/nodejs/iconv-lite/encodings/index.js",
                 "/app/node_modules/@scope/pkg/b.js",
                 "/usr/share/perl5/Mojolicious/Command/get.pm"):
        assert k[path].reasons == ("package",), path
    assert "/usr/lib/python3/dist-packages/yaml/__init__.py" not in k
    assert k["/usr/lib/python3/dist-packages/six.py"].reasons == ("accessed",)
    assert not p.warnings

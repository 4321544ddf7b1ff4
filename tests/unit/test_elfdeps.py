"""elfdeps: library search the way the image's loader does it, entirely inside the image."""

from __future__ import annotations

import struct

import pytest

from minifier.image.elfdeps import (
    CacheEntry,
    LdCache,
    Needed,
    Search,
    child_search,
    load_ld_cache,
    musl_path_file,
    parse_ld_cache,
    preload_names,
    resolve_needed,
    root_search,
)
from minifier.image.elffile import ElfInfo, elf_info
from tests.unit.elves import tiny_elf
from tests.unit.fixtures import LIBDIR, elf_members, host_bytes, member, scan_members

LIB = b"\x7fELF-not-parsed"  # a library file whose content the test does not need


def dirs(*paths):
    """Directory members for every parent of `paths` (a tar needs no order for them)."""
    out = set()
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return [member(d, "dir") for d in sorted(out)]


def libs(*paths, data=LIB):
    return [*dirs(*paths), *(member(p.lstrip("/"), data=data) for p in paths)]


def info(needed, rpath=(), runpath=(), interp=None, machine="EM_X86_64", bits=64, **kw):
    return ElfInfo(interp, tuple(needed), tuple(rpath), tuple(runpath), machine,
                   interp is None and not needed, bits=bits, **kw)


def test_resolve_needed_true_default_dirs(tmp_path):
    fs = scan_members(tmp_path, elf_members())
    true = fs.elf("/usr/bin/true")
    with open("/usr/bin/true", "rb") as f:
        assert true == elf_info(f)  # parsed by the index pass itself
    cache = load_ld_cache(fs)
    assert cache == LdCache({}, ())
    assert resolve_needed(fs, "/usr/bin/true", true, cache) == [
        Needed("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", (), "default")]
    assert fs.resolve(true.interp).final == f"/{LIBDIR}/ld-linux-x86-64.so.2"


def test_missing_library_is_none(tmp_path):
    fs = scan_members(tmp_path, elf_members()[:7])
    assert resolve_needed(fs, "/usr/bin/true", info(["libc.so.6"]), LdCache()) == [
        Needed("libc.so.6", None)]


def make_cache(entries, old_prefix=False) -> bytes:
    """A glibc-ld.so.cache1.1 file with (flags, name, path, hwcap) entries."""
    strings, offsets = b"", []
    header = 48 + 24 * len(entries)
    for _, name, path, _ in entries:
        offsets.append((header + len(strings), header + len(strings) + len(name) + 1))
        strings += name.encode() + b"\0" + path.encode() + b"\0"
    out = struct.pack("<20sIIB3xI12x", b"glibc-ld.so.cache1.1", len(entries), len(strings), 2, 0)
    for (flags, _, _, hwcap), (k, v) in zip(entries, offsets):
        out += struct.pack("<iIIIQ", flags, k, v, 0, hwcap)
    data = out + strings
    if old_prefix:  # old "ld.so-1.7.0" section first: new-format offsets stay relative
        data = b"ld.so-1.7.0" + b"\0" + struct.pack("<I", 0) + data
    return data


@pytest.mark.parametrize("old_prefix", [False, True])
def test_parse_ld_cache(old_prefix):
    data = make_cache([
        (0x0303, "libz.so.1", "/opt/hw/libz.so.1", 1 << 62),
        (0x0303, "libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", 0),
        (0x0003, "libz.so.1", "/usr/lib/i386-linux-gnu/libz.so.1", 0),
    ], old_prefix)
    assert parse_ld_cache(data) == {"libz.so.1": (
        CacheEntry(0x0303, "/usr/lib/x86_64-linux-gnu/libz.so.1"),
        CacheEntry(0x0003, "/usr/lib/i386-linux-gnu/libz.so.1"),
        CacheEntry(0x0303, "/opt/hw/libz.so.1", True),
    )}
    assert parse_ld_cache(b"not a cache") == {}


def test_host_ld_cache_parses():
    entries = parse_ld_cache(host_bytes("/etc/ld.so.cache"))
    assert CacheEntry(0x0303, "/lib/x86_64-linux-gnu/libc.so.6") in entries["libc.so.6"]


def test_cache_wins_over_default_dirs_arch_filtered_hwcaps_kept(tmp_path):
    cache = make_cache([
        (0x0003, "libc.so.6", "/opt/i386/libc.so.6", 0),
        (0x0303, "libc.so.6", "/opt/libc/libc.so.6", 0),
        (0x0303, "libc.so.6", "/opt/libc/glibc-hwcaps/x86-64-v3/libc.so.6", 1 << 62),
    ])
    fs = scan_members(tmp_path, elf_members([
        member("etc", "dir"), member("etc/ld.so.cache", data=cache),
        *libs("/opt/libc/libc.so.6", "/opt/i386/libc.so.6",
              "/opt/libc/glibc-hwcaps/x86-64-v3/libc.so.6"),
    ]))
    assert resolve_needed(fs, "/usr/bin/true", info(["libc.so.6"]), load_ld_cache(fs)) == [
        Needed("libc.so.6", "/opt/libc/libc.so.6",
               ("/opt/libc/glibc-hwcaps/x86-64-v3/libc.so.6",), "cache")]


def test_ld_so_conf_fallback_with_include(tmp_path):
    fs = scan_members(tmp_path, [
        member("etc", "dir"),
        member("etc/ld.so.conf", data=b"include /etc/ld.so.conf.d/*.conf\n"),
        member("etc/ld.so.conf.d", "dir"),
        member("etc/ld.so.conf.d/a.conf", data=b"# comment\n/opt/a/lib\n"),
        *libs("/opt/a/lib/liba.so"),
    ])
    cache = load_ld_cache(fs)
    assert cache.dirs == ("/opt/a/lib",)
    assert resolve_needed(fs, "/x", info(["liba.so"]), cache) == [
        Needed("liba.so", "/opt/a/lib/liba.so", (), "default")]


def test_musl_own_names_path_file_and_prefix(tmp_path):
    fs = scan_members(tmp_path, [
        member("etc", "dir"),
        member("etc/ld-musl-x86_64.path", data=b"/opt/m:/usr/lib\n"),
        *libs("/lib/ld-musl-x86_64.so.1", "/opt/m/libm2.so", "/usr/lib/libz.so.1",
              "/usr/local/musl/lib/ld-musl-x86_64.so.1", "/usr/local/musl/etc/ld-musl-x86_64.path",
              "/usr/local/lib/libz.so.1", "/custom/libz.so.1", "/opt/m/libz.so.1"),
    ])
    cache = load_ld_cache(fs)
    assert cache.musl
    prog = info(["libc.so", "libm2.so", "libz.so.1", "libm.so.6"],
                interp="/lib/ld-musl-x86_64.so.1")
    search = root_search(fs, prog, (), "/", cache)
    assert search.musl and search.interp == "/lib/ld-musl-x86_64.so.1"
    assert resolve_needed(fs, "/x", prog, cache, search) == [
        Needed("libc.so", "/lib/ld-musl-x86_64.so.1", (), "musl"),  # the loader itself
        Needed("libm2.so", "/opt/m/libm2.so", (), "musl"),  # libm2 is not musl's libm
        Needed("libz.so.1", "/opt/m/libz.so.1", (), "musl"),
        Needed("libm.so.6", "/lib/ld-musl-x86_64.so.1", (), "musl"),
    ]
    # A loader elsewhere reads <its prefix>/etc/ld-musl-ARCH.path; here that file is empty
    # of entries the loader could use, so nothing but its own names resolves.
    assert musl_path_file("/usr/local/musl/lib/ld-musl-x86_64.so.1") == (
        "/usr/local/musl/etc/ld-musl-x86_64.path")
    assert musl_path_file("/lib/ld-musl-x86_64.so.1") == "/etc/ld-musl-x86_64.path"
    other = info(["libz.so.1"], interp="/usr/local/musl/lib/ld-musl-x86_64.so.1")
    assert resolve_needed(fs, "/x", other, cache, root_search(fs, other, (), "/", cache)) == [
        Needed("libz.so.1", None)]


def test_musl_default_dirs_without_path_file(tmp_path):
    fs = scan_members(tmp_path, libs("/lib/ld-musl-x86_64.so.1", "/usr/local/lib/libz.so.1"))
    prog = info(["libz.so.1"], interp="/lib/ld-musl-x86_64.so.1")
    cache = load_ld_cache(fs)
    assert resolve_needed(fs, "/x", prog, cache, root_search(fs, prog, (), "/", cache)) == [
        Needed("libz.so.1", "/usr/local/lib/libz.so.1", (), "musl")]


def test_rpath_runpath_ld_library_path_origin(tmp_path):
    fs = scan_members(tmp_path, libs("/app/lib/libr.so", "/env/libr.so", "/env/libe.so"))
    rpath = info(["libr.so", "libe.so"], rpath=["$ORIGIN/../lib"])
    env = root_search(fs, rpath, ("LD_LIBRARY_PATH=/nope", "LD_LIBRARY_PATH=/env"), "/",
                      LdCache())
    assert env.ld_library_path == ("/env",)  # the last definition wins, like docker -e
    # RPATH comes before LD_LIBRARY_PATH ...
    assert resolve_needed(fs, "/app/bin/x", rpath, LdCache(), env) == [
        Needed("libr.so", "/app/lib/libr.so", (), "rpath"),
        Needed("libe.so", "/env/libe.so", (), "ld_library_path")]
    # ... RUNPATH after it, and RUNPATH disables RPATH.
    runpath = info(["libr.so"], rpath=["/nope"], runpath=["${ORIGIN}/../lib"])
    assert resolve_needed(fs, "/app/bin/x", runpath, LdCache(), env) == [
        Needed("libr.so", "/env/libr.so", (), "ld_library_path")]
    assert resolve_needed(fs, "/app/bin/x", runpath, LdCache()) == [
        Needed("libr.so", "/app/lib/libr.so", (), "runpath")]


def test_rpath_of_the_loading_chain_but_never_runpath(tmp_path):
    """glibc searches the RPATH of every object up the chain that loaded this one, unless
    this one has a RUNPATH; a RUNPATH never serves the needs of the objects it loads."""
    fs = scan_members(tmp_path, libs("/app/lib/liba.so", "/app/lib/libb.so"))
    prog = info(["liba.so"], rpath=["$ORIGIN/../lib"])
    search = root_search(fs, prog, (), "/", LdCache())
    child = child_search(search, "/app/bin/prog", prog)
    assert child.inherited == ("/app/lib",)
    liba = info(["libb.so"])
    assert resolve_needed(fs, "/app/lib/liba.so", liba, LdCache(), child) == [
        Needed("libb.so", "/app/lib/libb.so", (), "rpath")]
    with_runpath = info(["libb.so"], runpath=["/elsewhere"])
    assert resolve_needed(fs, "/app/lib/liba.so", with_runpath, LdCache(), child) == [
        Needed("libb.so", None)]
    prog_runpath = info(["liba.so"], runpath=["$ORIGIN/../lib"])
    assert child_search(search, "/app/bin/prog", prog_runpath).inherited == ()
    assert resolve_needed(fs, "/app/lib/liba.so", liba, LdCache(), search) == [
        Needed("libb.so", None)]


def test_hwcaps_subdirectories_before_each_dir(tmp_path):
    fs = scan_members(tmp_path, libs(
        "/opt/x/glibc-hwcaps/x86-64-v3/libx.so.1", "/opt/x/glibc-hwcaps/x86-64-v2/libx.so.1",
        "/opt/y/libx.so.1", "/opt/only/glibc-hwcaps/x86-64-v4/libv.so.1"))
    search = Search(ld_library_path=("/opt/x", "/opt/y", "/opt/only"))
    assert resolve_needed(fs, "/p", info(["libx.so.1", "libv.so.1"]), LdCache(), search) == [
        Needed("libx.so.1", "/opt/y/libx.so.1", ("/opt/x/glibc-hwcaps/x86-64-v3/libx.so.1",
                                                  "/opt/x/glibc-hwcaps/x86-64-v2/libx.so.1"),
               "ld_library_path"),
        Needed("libv.so.1", "/opt/only/glibc-hwcaps/x86-64-v4/libv.so.1", (), "hwcaps")]
    # No hwcaps subdirectories for other machines.
    arm = info(["libx.so.1"], machine="EM_AARCH64")
    assert resolve_needed(fs, "/p", arm, LdCache(), search)[0].variants == ()


def test_other_class_or_machine_is_skipped(tmp_path):
    fs = scan_members(tmp_path, [
        *dirs("/a/libq.so", "/b/libq.so"),
        member("a/libq.so", data=tiny_elf(bits=32, machine=3)),
        member("b/libq.so", data=tiny_elf(bits=64, machine=62)),
    ])
    search = Search(ld_library_path=("/a", "/b"))
    assert resolve_needed(fs, "/p", info(["libq.so"]), LdCache(), search)[0].path == "/b/libq.so"
    i386 = info(["libq.so"], machine="EM_386", bits=32)
    assert resolve_needed(fs, "/p", i386, LdCache(), search)[0].path == "/a/libq.so"


def test_tokens_relative_dirs_and_nodeflib(tmp_path):
    fs = scan_members(tmp_path, libs("/opt/lib/x86_64-linux-gnu/liba.so", "/opt/x86_64/libb.so",
                                     "/srv/app/rel/libc2.so", "/usr/lib/libd.so"))
    prog = info(["liba.so", "libb.so", "libc2.so", "libd.so"],
                runpath=["/opt/$LIB", "/opt/${PLATFORM}", "rel"])
    search = Search(workdir="/srv/app")
    assert [n.path for n in resolve_needed(fs, "/p", prog, LdCache(), search)] == [
        "/opt/lib/x86_64-linux-gnu/liba.so", "/opt/x86_64/libb.so", "/srv/app/rel/libc2.so",
        "/usr/lib/libd.so"]
    nodeflib = info(["libd.so"], nodeflib=True)
    assert resolve_needed(fs, "/p", nodeflib, LdCache(), search) == [Needed("libd.so", None)]


def test_already_loaded_objects_satisfy_a_need(tmp_path):
    """libjava.so needs libjvm.so, found by no search: the JVM dlopen'ed it by path first."""
    fs = scan_members(tmp_path, libs("/jdk/lib/server/libjvm.so"))
    need = info(["libjvm.so"])
    assert resolve_needed(fs, "/jdk/lib/libjava.so", need, LdCache()) == [Needed("libjvm.so", None)]
    glibc = Search(loaded={"libjvm.so": "/jdk/lib/server/libjvm.so"})
    assert resolve_needed(fs, "/jdk/lib/libjava.so", need, LdCache(), glibc) == [
        Needed("libjvm.so", "/jdk/lib/server/libjvm.so", (), "loaded")]
    # musl matches the name it loaded an object by (the file name), not its DT_SONAME.
    musl = Search(musl=True, interp="/lib/ld-musl-x86_64.so.1",
                  loaded={"libjvm-soname.so": "/jdk/lib/server/libjvm.so"})
    assert resolve_needed(fs, "/jdk/lib/libjava.so", need, LdCache(), musl)[0].how == "loaded"


def test_slash_names_and_preload(tmp_path):
    fs = scan_members(tmp_path, [
        *libs("/srv/app/plug/p.so", "/usr/lib/libpre.so", "/usr/lib/libetc.so"),
        member("etc", "dir"), member("etc/ld.so.preload", data=b"libetc.so\n"),
    ])
    prog = info(["plug/p.so", "/usr/lib/libpre.so"])
    assert [n.path for n in resolve_needed(fs, "/p", prog, LdCache(),
                                           Search(workdir="/srv/app"))] == [
        "/srv/app/plug/p.so", "/usr/lib/libpre.so"]
    assert preload_names(fs, ("LD_PRELOAD=libpre.so:/x.so",)) == ("libpre.so", "/x.so",
                                                                  "libetc.so")

"""elfdeps: ELF parsing and ld.so-style library search entirely inside the image."""

from __future__ import annotations

import io
import struct
import subprocess

import pytest

from minifier.errors import ImageError
from minifier.image.elfdeps import (
    ElfInfo,
    LdCache,
    elf_info,
    load_ld_cache,
    parse_ld_cache,
    resolve_needed,
)
from tests.unit.test_imagefs import member, scan_members

LIBDIR = "usr/lib/x86_64-linux-gnu"


def host_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def elf_members(extra=()):
    """A merged-/usr Debian-like tree holding the host's /usr/bin/true and its libs."""
    return [
        member("bin", "symlink", link="usr/bin"),
        member("lib", "symlink", link="usr/lib"),
        member("lib64", "dir"),
        member("lib64/ld-linux-x86-64.so.2", "symlink",
               link="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        member("usr", "dir"),
        member("usr/bin", "dir"),
        member("usr/bin/true", data=host_bytes("/usr/bin/true"), mode=0o755),
        member("usr/lib", "dir"),
        member(LIBDIR, "dir"),
        member(f"{LIBDIR}/ld-linux-x86-64.so.2",
               data=host_bytes("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), mode=0o755),
        member(f"{LIBDIR}/libc.so.6", data=host_bytes("/lib/x86_64-linux-gnu/libc.so.6"),
               mode=0o755),
        *extra,
    ]


def test_elf_info_of_true():
    with open("/usr/bin/true", "rb") as f:
        info = elf_info(f)
    assert info == ElfInfo("/lib64/ld-linux-x86-64.so.2", ("libc.so.6",), (), (), "EM_X86_64",
                           False)


def test_elf_info_rejects_garbage():
    with pytest.raises(ImageError):
        elf_info(io.BytesIO(b"\x7fELF garbage"))


def test_resolve_needed_true_default_dirs(tmp_path):
    fs = scan_members(tmp_path, elf_members())
    with open("/usr/bin/true", "rb") as f:
        info = elf_info(f)
    cache = load_ld_cache(fs)
    assert cache == LdCache({}, ())
    assert resolve_needed(fs, "/usr/bin/true", info, cache) == [
        ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")]
    assert fs.resolve(info.interp).final == f"/{LIBDIR}/ld-linux-x86-64.so.2"


def test_missing_library_is_none(tmp_path):
    fs = scan_members(tmp_path, elf_members()[:7])
    info = ElfInfo(None, ("libc.so.6",), (), (), "EM_X86_64", False)
    assert resolve_needed(fs, "/usr/bin/true", info, LdCache()) == [("libc.so.6", None)]


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
        (0x0303, "/usr/lib/x86_64-linux-gnu/libz.so.1"),
        (0x0003, "/usr/lib/i386-linux-gnu/libz.so.1"),
        (0x0303, "/opt/hw/libz.so.1"),
    )}
    assert parse_ld_cache(b"not a cache") == {}


def test_host_ld_cache_parses():
    entries = parse_ld_cache(host_bytes("/etc/ld.so.cache"))
    assert (0x0303, "/lib/x86_64-linux-gnu/libc.so.6") in entries["libc.so.6"]


def test_cache_wins_over_default_dirs_and_arch_filtered(tmp_path):
    cache = make_cache([
        (0x0003, "libc.so.6", "/opt/i386/libc.so.6", 0),
        (0x0303, "libc.so.6", "/opt/libc/libc.so.6", 0),
    ])
    fs = scan_members(tmp_path, elf_members([
        member("etc", "dir"), member("etc/ld.so.cache", data=cache),
        member("opt", "dir"), member("opt/libc", "dir"), member("opt/i386", "dir"),
        member("opt/libc/libc.so.6", data=b"\x7fELF"), member("opt/i386/libc.so.6", data=b"x"),
    ]))
    info = ElfInfo(None, ("libc.so.6",), (), (), "EM_X86_64", False)
    assert resolve_needed(fs, "/usr/bin/true", info, load_ld_cache(fs)) == [
        ("libc.so.6", "/opt/libc/libc.so.6")]


def test_ld_so_conf_fallback_with_include(tmp_path):
    fs = scan_members(tmp_path, [
        member("etc", "dir"),
        member("etc/ld.so.conf", data=b"include /etc/ld.so.conf.d/*.conf\n"),
        member("etc/ld.so.conf.d", "dir"),
        member("etc/ld.so.conf.d/a.conf", data=b"# comment\n/opt/a/lib\n"),
        member("opt", "dir"), member("opt/a", "dir"), member("opt/a/lib", "dir"),
        member("opt/a/lib/liba.so", data=b"\x7fELF"),
    ])
    cache = load_ld_cache(fs)
    assert cache.dirs == ("/opt/a/lib",)
    info = ElfInfo(None, ("liba.so",), (), (), "EM_X86_64", False)
    assert resolve_needed(fs, "/x", info, cache) == [("liba.so", "/opt/a/lib/liba.so")]


def test_musl_path_file(tmp_path):
    fs = scan_members(tmp_path, [
        member("etc", "dir"),
        member("etc/ld-musl-x86_64.path", data=b"/opt/m:/usr/lib\n"),
        member("lib", "dir"), member("lib/ld-musl-x86_64.so.1", data=b"\x7fELF"),
        member("opt", "dir"), member("opt/m", "dir"), member("opt/m/libm.so", data=b"\x7fELF"),
    ])
    cache = load_ld_cache(fs)
    assert cache.musl and cache.dirs == ("/opt/m", "/usr/lib")
    info = ElfInfo("/lib/ld-musl-x86_64.so.1", ("libm.so",), (), (), "EM_X86_64", False)
    assert resolve_needed(fs, "/x", info, cache) == [("libm.so", "/opt/m/libm.so")]


def test_rpath_runpath_ld_library_path_origin(tmp_path):
    fs = scan_members(tmp_path, [
        member("app", "dir"), member("app/bin", "dir"), member("app/lib", "dir"),
        member("app/lib/libr.so", data=b"\x7fELF"),
        member("env", "dir"), member("env/libr.so", data=b"\x7fELF"),
        member("env/libe.so", data=b"\x7fELF"),
    ])
    rpath = ElfInfo(None, ("libr.so", "libe.so"), ("$ORIGIN/../lib",), (), "EM_X86_64", False)
    env = ("LD_LIBRARY_PATH=/env",)
    # RPATH comes before LD_LIBRARY_PATH ...
    assert resolve_needed(fs, "/app/bin/x", rpath, LdCache(), env) == [
        ("libr.so", "/app/lib/libr.so"), ("libe.so", "/env/libe.so")]
    # ... RUNPATH after it, and RUNPATH disables RPATH.
    runpath = ElfInfo(None, ("libr.so",), ("/nope",), ("${ORIGIN}/../lib",), "EM_X86_64", False)
    assert resolve_needed(fs, "/app/bin/x", runpath, LdCache(), env) == [
        ("libr.so", "/env/libr.so")]
    assert resolve_needed(fs, "/app/bin/x", runpath, LdCache()) == [
        ("libr.so", "/app/lib/libr.so")]


def test_compiled_rpath_and_runpath(tmp_path):
    (tmp_path / "foo.c").write_text("int foo(void) { return 1; }\n")
    (tmp_path / "main.c").write_text("int foo(void); int main(void) { return foo(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o",
                    str(tmp_path / "libfoo.so"), str(tmp_path / "foo.c")], check=True)
    for name, tags in (("rp", "--disable-new-dtags"), ("rn", "--enable-new-dtags")):
        subprocess.run(["gcc", "-o", str(tmp_path / name), str(tmp_path / "main.c"),
                        f"-L{tmp_path}", "-lfoo", f"-Wl,{tags},-rpath,$ORIGIN/../lib"],
                       check=True)
    with open(tmp_path / "rp", "rb") as f:
        rp = elf_info(f)
    with open(tmp_path / "rn", "rb") as f:
        rn = elf_info(f)
    assert rp.needed == ("libfoo.so.1", "libc.so.6") and rp.rpath == ("$ORIGIN/../lib",)
    assert rn.runpath == ("$ORIGIN/../lib",) and rn.rpath == ()

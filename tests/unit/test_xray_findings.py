"""Package databases, the findings rules, lighter bases and the base image, on layer
records written out by hand (the e2e test measures the same on a real image)."""

from __future__ import annotations

import gzip
import os
import struct
import sys
import tempfile
from pathlib import Path

from minifier.xray.base import (
    STATIC,
    BaseCandidate,
    Program,
    elf_interp,
    entry_program,
    find_base,
    lighter_bases,
)
from minifier.xray.findings import evaluate_rules as rules_on
from minifier.xray.findings import layer_count_finding, union_bytes, waste_findings
from minifier.xray.layers import DIR, FILE, SYMLINK, WHITEOUT, Entry, LayerScan
from minifier.xray.overlay import stack
from minifier.xray.packages import (
    PackageDB,
    parse_apk_installed,
    parse_dpkg_status,
    parse_rpm_header,
    read_packages,
)

FIXTURES = Path(__file__).parent / "data"
STATUS = """Package: gcc-12
Status: install ok installed
Version: 12.2.0-14

Package: removed-one
Status: deinstall ok config-files
Version: 1

Package: libssl-dev
Status: install ok installed
Version: 3.0.11-1
Description: headers
 continued line
"""


def layer(*entries, captured=None) -> LayerScan:
    return LayerScan(tuple(Entry(*e) for e in entries), dict(captured or {}), 0)


def f(path, size, mode=0o644):
    return (path, FILE, size, mode)


def _debian_layers():
    base = layer(("/lib", SYMLINK, 0, 0o777, "usr/lib"), ("/usr", DIR, 0),
                 f("/usr/lib/x86_64-linux-gnu/libc.so.6", 2000),
                 f("/usr/share/doc/libc6/copyright", 50), f("/usr/share/doc/libc6/changelog", 70),
                 f("/usr/share/locale/de/LC_MESSAGES/libc.mo", 300),
                 f("/usr/share/locale/locale.alias", 9),
                 captured={"/etc/os-release": b'ID=debian\nVERSION_CODENAME=bookworm\n'
                                              b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'})
    tools = layer(
        f("/usr/bin/gcc-12", 1000, 0o755), f("/usr/lib/gcc/x86_64-linux-gnu/12/cc1", 5000, 0o755),
        f("/usr/include/openssl/ssl.h", 400), f("/usr/lib/x86_64-linux-gnu/libssl.a", 800),
        f("/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", 150),
        f("/var/cache/apt/archives/gcc-12.deb", 3000), f("/var/cache/apt/pkgcache.bin", 100),
        f("/home/app/.cache/pip/wheels/ab/x.whl", 60), f("/root/.npm/_cacache/x", 70),
        f("/var/lib/dpkg/status", len(STATUS)),
        f("/var/lib/dpkg/info/gcc-12.list", 1), f("/var/lib/dpkg/info/libssl-dev:amd64.list", 1),
        captured={
            "/var/lib/dpkg/status": STATUS.encode(),
            # dpkg lists /lib/gcc/... (merged /usr: really /usr/lib/gcc/...)
            "/var/lib/dpkg/info/gcc-12.list": b"/.\n/usr/bin/gcc-12\n/lib/gcc/x86_64-linux-gnu/"
                                              b"12/cc1\n",
            "/var/lib/dpkg/info/libssl-dev:amd64.list":
                b"/usr/include/openssl/ssl.h\n/usr/lib/x86_64-linux-gnu/libssl.a\n"})
    later = layer(f("/var/cache/apt/pkgcache.bin", 120), ("/home/app/.cache", WHITEOUT, 0))
    return [base, tools, later]


def _captured(layers, st):
    return {p: layers[v.layer].captured[p] for p, v in st.view.items()
            if p in layers[v.layer].captured}


def test_dpkg_status_keeps_installed_packages_only():
    assert parse_dpkg_status(STATUS) == {"gcc-12": "12.2.0-14", "libssl-dev": "3.0.11-1"}


def test_package_files_resolve_through_the_image_symlinks():
    layers = _debian_layers()
    st = stack(layers)
    db = read_packages(_captured(layers, st), st.view)
    assert db.manager == "dpkg" and [p.name for p in db.packages] == ["gcc-12", "libssl-dev"]
    assert db.owner("/usr/lib/gcc/x86_64-linux-gnu/12/cc1") == "gcc-12"
    assert db.owner("/usr/lib/x86_64-linux-gnu/libssl.a") == "libssl-dev"
    assert db.owner("/usr/lib/x86_64-linux-gnu/libc.so.6") == ""


def test_rules_measure_every_version_in_every_layer():
    layers = _debian_layers()
    st = stack(layers)
    db = read_packages(_captured(layers, st), st.view)
    found = {x.id: x for x in rules_on(layers, db)}
    assert {k: (v.bytes, v.files, v.layers) for k, v in found.items()} == {
        "apt-lists": (150, 1, ((1, 150),)),
        "apt-archives": (3000 + 100 + 120, 3, ((1, 3100), (2, 120))),
        "pip-cache": (60, 1, ((1, 60),)),  # deleted by layer 2, still in layer 1
        "npm-yarn-cache": (70, 1, ((1, 70),)),
        "toolchain": (6000, 2, ((1, 6000),)),
        "dev-packages": (1200, 2, ((1, 1200),)),
        "static-libraries": (800, 1, ((1, 800),)),
        "docs": (70, 1, ((0, 70),)),  # copyright files are kept
        "locales": (300, 1, ((0, 300),)),  # locale.alias is kept
    }
    assert found["toolchain"].packages == (("gcc-12", 6000),)
    assert found["dev-packages"].packages == (("libssl-dev", 1200),)
    hidden = {x.id: x for x in waste_findings(st)}
    assert hidden["deleted-later"].pairs == ((1, 2, 60),)
    assert hidden["overwritten-later"].pairs == ((1, 2, 100),)
    everything = [*found.values(), *hidden.values()]
    # libssl.a is in two findings, pip's wheel in two: each counted once
    assert union_bytes(everything, layers) == 150 + 3220 + 60 + 70 + 6000 + 1200 + 70 + 300


def test_apk_and_rpm_databases():
    apk = parse_apk_installed("P:musl\nV:1.2.4-r2\nF:lib\nR:ld-musl-x86_64.so.1\n\n"
                              "P:busybox\nV:1.36\nF:bin\nR:busybox\nF:etc\nR:securetty\n")
    assert [(p.name, p.files) for p in apk] == [("musl", ("/lib/ld-musl-x86_64.so.1",)),
                                                ("busybox", ("/bin/busybox", "/etc/securetty"))]
    # An rpm header as rpm stores it: index entries (tag, type, offset, count) + data.
    store = b"bash\x005.2\x00" + b"bash\x00sh\x00" + b"/usr/bin/\x00"
    store += b"\x00" * (-len(store) % 4) + struct.pack(">ii", 0, 0)
    index = [(1000, 6, 0, 1), (1001, 6, 5, 1), (1117, 8, 9, 2), (1118, 8, 17, 1),
             (1116, 4, len(store) - 8, 2)]
    blob = struct.pack(">ii", len(index), len(store)) + b"".join(
        struct.pack(">iiii", *e) for e in index) + store
    pkg = parse_rpm_header(blob)
    assert (pkg.name, pkg.version, pkg.files) == ("bash", "5.2", ("/usr/bin/bash", "/usr/bin/sh"))


def test_a_real_rpm_database(tmp_path, monkeypatch):
    # made by rpm 4.18 itself (tests/unit/data/README.md says how)
    data = gzip.decompress((FIXTURES / "rpmdb.sqlite.gz").read_bytes())
    view = {"/usr/bin/hello-xray": _Placed(FILE), "/usr/share/hello-xray/data.txt": _Placed(FILE)}
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    db = read_packages({"/var/lib/rpm/rpmdb.sqlite": data}, view)
    assert os.listdir(tmp_path) == []  # the copy it was read from, and nothing next to it
    assert db.manager == "rpm"
    assert [(p.name, p.version, p.files) for p in db.packages] == [
        ("hello-xray", "1.0", ("/usr/bin/hello-xray", "/usr/share/hello-xray/data.txt"))]
    assert db.owner("/usr/share/hello-xray/data.txt") == "hello-xray"


class _Placed:
    def __init__(self, kind):
        self.entry = Entry("/", kind, 0)


def test_elf_interpreter_of_real_and_static_programs():
    with open(sys.executable, "rb") as f:
        head = f.read(4096)
    assert elf_interp(head).startswith("/lib")  # this Python is dynamically linked
    # a minimal static ELF64: no program headers at all means no interpreter
    static = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1,
                                                                 0x401000, 64, 0, 0, 64, 56, 0,
                                                                 64, 0, 0)
    assert elf_interp(static) == STATIC
    assert elf_interp(b"#!/bin/sh\n") == "not-elf"


def test_base_from_local_images_and_lighter_bases():
    layers = _debian_layers()
    candidates = (BaseCandidate("sha256:beef", ("sha256:l0",), 1),
                  BaseCandidate("debian:bookworm", ("sha256:l0",), 1),
                  BaseCandidate("other:1", ("sha256:xx",), 1))
    base = find_base(("sha256:l0", "sha256:l1", "sha256:l2"), candidates, [], layers)
    assert (base.image, base.layers, base.bytes) == ("debian:bookworm", 1, 2429)
    static = lighter_bases(base, Program("app", "/usr/bin/app", STATIC, ""),
                           {"ID": "debian", "VERSION_CODENAME": "bookworm"}, layers)
    assert [(x.id, x.bytes) for x in static] == [("base-scratch", 2429)]
    dynamic = lighter_bases(base, Program("nginx", "/usr/sbin/nginx", "/lib64/ld-linux.so.2", ""),
                            {"ID": "debian", "VERSION_CODENAME": "bookworm"}, layers)
    # the slim variant drops the base's changelog and .mo file, not copyright/locale.alias
    assert [(x.id, x.bytes) for x in dynamic] == [("base-distroless", None), ("base-slim", 370)]
    python = lighter_bases(base, Program("python3", "/usr/bin/python3.11", "/lib64/ld.so", ""),
                           {}, layers)
    assert [(x.id, x.bytes) for x in python] == [("base-runtime", None)]
    # an image that only added metadata steps to its base: every layer is the base's
    same = find_base(("sha256:l0",), candidates, [{}, {"empty_layer": True}], layers[:1])
    assert (same.image, same.layers, same.history) == ("debian:bookworm", 1, 1)
    assert find_base(("sha256:l0",), candidates, [{}], layers[:1]).layers == 0
    unknown = find_base(("sha256:zz", "sha256:l1"), candidates, [{"comment": ""}], layers[:2])
    assert unknown.layers == 0 and lighter_bases(unknown, Program("", "", None, ""), {},
                                                 layers) == []


def test_entry_program_follows_path_and_symlinks():
    layers = [layer(("/usr/bin/python3", SYMLINK, 0, 0o777, "python3.11"),
                    f("/usr/bin/python3.11", 10, 0o755), f("/app/run.sh", 10, 0o755),
                    captured={"/usr/bin/python3.11": b"\x7fELF", "/app/run.sh":
                              b"#!/usr/bin/env python3\nprint()\n"})]
    st = stack(layers)
    cap = _captured(layers, st)
    prog = entry_program({"Cmd": ["python3", "app.py"]}, st, cap)
    assert (prog.path, prog.shebang) == ("/usr/bin/python3.11", "")
    prog = entry_program({"Entrypoint": ["/app/run.sh"]}, st, cap)
    assert (prog.path, prog.shebang) == ("/app/run.sh", "python3")


def test_many_layers():
    layers = [layer(f(f"/f{i}", i)) for i in range(12)]
    found = layer_count_finding(layers, first_own=1)
    assert found.title.startswith("12 layers with content (11 of them")
    assert layer_count_finding(layers[:10], first_own=1) is None


def test_empty_package_db():
    assert PackageDB("").owner("/x") == ""


def test_cache_rules_of_other_package_managers_and_build_tools():
    paths = {
        "apk-cache": "/var/cache/apk/APKINDEX.tar.gz",
        "dnf-yum-cache": "/var/cache/dnf/fedora.solv",
        "go-cache": "/root/.cache/go-build/00/abc-d",
        "maven-gradle-cache": "/home/dev/.m2/repository/org/x/1.0/x-1.0.jar",
        "npm-yarn-cache": "/usr/local/share/.cache/yarn/v6/npm-x.tgz",
        "pip-cache": "/root/.cache/pip/http-v2/a/b",
    }
    misses = ("/var/cache/apkfoo", "/root/.cache/pipx/x", "/home/dev/x/.m2/repository/a",
              "/go/src/app/main.go")
    layers = [layer(*(f(p, 10) for p in (*paths.values(), *misses)))]
    found = {x.id: x for x in rules_on(layers, PackageDB(""))}
    assert {k: v.paths for k, v in found.items()} == {k: ((p, 10),) for k, p in paths.items()}

"""selfcheck: the planned filesystem must resolve what the original resolves for kept files."""

from __future__ import annotations

from minifier.image.closure import plan
from minifier.image.imagefs import scan
from minifier.image.selfcheck import check
from minifier.image.source import TarFileSource
from minifier.options import KeepOptions
from minifier.records import BuildPlan, Finding, KeptFile
from tests.unit.elves import tiny_elf
from tests.unit.fixtures import LIBDIR, chain_members, elf_members, image_info, make_tar, member

LIBC, LDSO = f"/{LIBDIR}/libc.so.6", f"/{LIBDIR}/ld-linux-x86-64.so.2"


def planned(tmp_path, members, accessed, keep=None, image=None):
    source = TarFileSource(make_tar(tmp_path / "image.tar", members))
    with source.open() as f:
        fs = scan(f)
    keep = keep or KeepOptions()
    image = image or image_info()
    p = plan(fs, accessed, image, keep, source)
    return fs, p, check(fs, p, image, keep).findings


def test_a_complete_plan_has_no_findings(tmp_path):
    _, _, findings = planned(tmp_path, chain_members(tmp_path), ["/usr/bin/a"])
    assert findings == ()


def test_excluded_library_and_interpreter(tmp_path):
    keep = KeepOptions(exclude_patterns=("**/libc.so.6", "**/ld-linux-x86-64.so.2"))
    _, _, findings = planned(tmp_path, elf_members(), ["/bin/true"], keep)
    assert findings == (
        Finding("interpreter", "/usr/bin/true", "/lib64/ld-linux-x86-64.so.2", LDSO, True),
        Finding("library", "/usr/bin/true", "libc.so.6", LIBC, True),
    )
    assert findings[1].text() == (
        f"/usr/bin/true: library libc.so.6 is {LIBC} in the original image but missing from "
        "the minified one (removed by --exclude-pattern)")


def test_a_closure_that_missed_a_deep_library_is_caught(tmp_path):
    """The check is independent of the closure: a plan lacking C (needed by B, needed by
    A) is caught two levels down the tree."""
    fs, p, _ = planned(tmp_path, chain_members(tmp_path), ["/usr/bin/a"])
    missing = f"/{LIBDIR}/libc2.so.1"
    broken = BuildPlan(tuple(k for k in p.kept if k.path != missing), p.total_files,
                       p.total_size)
    assert check(fs, broken, image_info(), KeepOptions()).findings == (
        Finding("library", f"/{LIBDIR}/libb.so.1", "libc2.so.1", missing),)


def test_inherited_rpath_followed_down_the_tree(tmp_path):
    members = [
        member("app", "dir"), member("app/bin", "dir"), member("app/lib", "dir"),
        member("app/bin/prog", data=tiny_elf(needed=("libmid.so",), rpath="$ORIGIN/../lib")),
        member("app/lib/libmid.so", data=tiny_elf(needed=("libdeep.so",))),
        member("app/lib/libdeep.so", data=tiny_elf()),
    ]
    keep = KeepOptions(exclude_patterns=("/app/lib/libdeep.so",))
    _, p, findings = planned(tmp_path, members, ["/app/bin/prog"], keep)
    assert not p.warnings  # the closure found libdeep through the chain too
    assert findings == (Finding("library", "/app/lib/libmid.so", "libdeep.so",
                                "/app/lib/libdeep.so", True),)


def test_dangling_links_and_script_interpreters(tmp_path):
    members = elf_members([
        member("etc", "dir"), member("etc/os-release", data=b"ID=x\n"),
        member("etc/hostname", data=b""),
        member("srv", "dir"),
        member("srv/os.txt", "symlink", link="/etc/os-release"),
        member("srv/name", "symlink", link="/etc/hostname"),  # docker mounts it
        member("srv/mounts", "symlink", link="/proc/self/mounts"),  # never resolves
        member("srv/run.sh", data=b"#!/bin/true\n", mode=0o755),
        member("srv/env.py", data=b"#!/usr/bin/env true\n", mode=0o755),
        member("usr/bin/env", data=b"#!/bin/true\n", mode=0o755),
        member("proc", "dir"),
    ])
    accessed = ["/srv/os.txt", "/srv/name", "/srv/mounts", "/srv/run.sh", "/srv/env.py"]
    _, _, findings = planned(tmp_path, members, accessed)
    assert findings == ()
    keep = KeepOptions(exclude_patterns=("/etc/os-release", "/usr/bin/true"))
    _, _, findings = planned(tmp_path, members, accessed, keep)
    assert findings == (  # in path order
        Finding("interpreter", "/srv/env.py", "true", "/usr/bin/true", True),
        Finding("symlink", "/srv/os.txt", "/etc/os-release", "/etc/os-release", True),
        Finding("interpreter", "/srv/run.sh", "/bin/true", "/usr/bin/true", True),
        Finding("interpreter", "/usr/bin/env", "/bin/true", "/usr/bin/true", True),
    )


def test_a_script_that_is_not_executable_needs_no_interpreter(tmp_path):
    """qa/rabbitmq: its management UI's directory, kept whole, holds the 0644 Python
    script rabbitmqadmin (`#!/usr/bin/env python3`), served as a download, never run:
    the closure does not follow its #! line, so the self-check must not ask for it."""
    members = elf_members([
        member("srv", "dir"),
        member("srv/rabbitmqadmin", data=b"#!/usr/bin/env python3\n"),
        member("srv/run.sh", data=b"#!/usr/bin/python9\n"),
        member("usr/bin/env", data=b"#!/bin/true\n", mode=0o755),
        member("usr/bin/python9", data=b"#!/bin/true\n", mode=0o755),
    ])
    _, p, findings = planned(tmp_path, members, ["/srv/rabbitmqadmin", "/srv/run.sh"])
    kept = {k.path for k in p.kept}
    assert "/usr/bin/env" not in kept and "/usr/bin/python9" not in kept
    assert findings == () and not p.warnings


def test_what_the_original_lacks_is_no_finding(tmp_path):
    members = [member("bin", "dir"),
               member("bin/app", data=tiny_elf(needed=("libgone.so",)), mode=0o755)]
    _, p, findings = planned(tmp_path, members, ["/bin/app"])
    assert p.warnings == ("/bin/app: library libgone.so not found in the image",)
    assert findings == ()


def test_placeholders_count_as_present(tmp_path):
    members = [member("etc", "dir"), member("etc/hosts", data=b""),
               member("srv", "dir"), member("srv/hosts", "symlink", link="/etc/hosts"),
               member("srv/tmp", "symlink", link="/tmp")]
    fs, p, findings = planned(tmp_path, members, ["/srv/hosts", "/srv/tmp"])
    assert findings == ()
    assert KeptFile("/tmp", 0, "dir", ("runtime",)) in p.kept


def test_what_a_mount_provides_is_no_finding(tmp_path):
    """A script whose interpreter lies below a bind mount (/opt/venv from the host): the
    mount provides it at run time, so neither the closure nor the self-check asks the
    image for it; without the mount the plan keeps it."""
    members = [member("opt", "dir"), member("opt/venv", "dir"),
               member("opt/venv/python", data=b"#!/bin/sh\n", mode=0o755),
               member("app", "dir"),
               member("app/run.py", data=b"#!/opt/venv/python\n", mode=0o755)]
    keep = KeepOptions(mountpoints=("/opt/venv",), hidden=("/opt/venv",))
    _, p, findings = planned(tmp_path, members, ["/app/run.py"], keep)
    assert findings == () and p.warnings == ()
    assert "/opt/venv" in {k.path for k in p.kept}
    assert "/opt/venv/python" not in {k.path for k in p.kept}
    _, p, _ = planned(tmp_path, members, ["/app/run.py"])
    assert "/opt/venv/python" in {k.path for k in p.kept}


def test_a_link_to_a_file_a_mount_covers_is_no_finding(tmp_path):
    members = [member("etc", "dir"), member("etc/app.conf", "symlink", link="/srv/app.conf"),
               member("srv", "dir"), member("srv/app.conf", data=b"default")]
    keep = KeepOptions(mountpoints=("/srv/app.conf",), hidden=("/srv/app.conf",))
    _, p, findings = planned(tmp_path, members, ["/etc/app.conf"], keep)
    assert findings == ()
    assert "/etc/app.conf" in {k.path for k in p.kept}
    assert "/srv/app.conf" not in {k.path for k in p.kept}

"""Confinement like `docker run`: the pure rules (cgroup paths on cgroup v1 and v2
layouts, mountinfo, limits, LSM exec labels) and, on real processes, a launch that takes
every confinement of its target: seccomp filters stacked under the tracer's, cgroups,
capability sets, no_new_privs, rlimits, umask, oom score, ignored signals, user namespace.

The process tests need root and gcc (like test_tracer.py); no Docker.
"""

from __future__ import annotations

import os
import resource
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from minifier.records import LaunchSpec
from minifier.sensor import cgroups, confine
from minifier.sensor.tracer import trace
from tests.unit.fixtures import unshared

PROGRAMS = Path(__file__).parent / "programs"
ENV = ("PATH=/usr/local/bin:/usr/bin:/bin",)
DOCKER_ID = "3c1c2f7026f1dd709d89d295af42b5144ad749199e312a3c551c7b65dd31a94c"

# This machine's layout: cgroup v1, one hierarchy per controller, a hybrid v2 mount.
V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_OWN = "5:pids:/\n4:memory:/process_api/b78f\n3:cpu,cpuacct:/\n2:name=systemd:/\n0::/\n"
V1_CONTAINER = "".join(f"{h}:/docker/{DOCKER_ID}\n" for h in (
    "5:pids", "4:memory", "3:cpu,cpuacct", "2:name=systemd", "0:"))

# A cgroup v2 host (systemd driver): one unified hierarchy.
V2_MOUNTINFO = ("25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - "
                "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n")
V2_OWN = "0::/user.slice/user-0.slice/session-3.scope\n"
V2_CONTAINER = f"0::/system.slice/docker-{DOCKER_ID}.scope\n"


def _procs(target: str, own: str, mountinfo: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return cgroups.cgroup_procs(target, own, cgroups.parse_mountinfo(mountinfo))


def test_cgroup_v1_every_hierarchy_that_differs():
    files, missing = _procs(V1_CONTAINER, V1_OWN, V1_MOUNTINFO)
    assert files == tuple(f"/sys/fs/cgroup/{d}/docker/{DOCKER_ID}/cgroup.procs" for d in (
        "pids", "memory", "cpu,cpuacct", "systemd", "unified"))
    assert missing == ()


def test_cgroup_v1_same_cgroup_is_left_alone():
    target = V1_OWN.replace("5:pids:/", f"5:pids:/docker/{DOCKER_ID}")
    assert _procs(target, V1_OWN, V1_MOUNTINFO) == (
        (f"/sys/fs/cgroup/pids/docker/{DOCKER_ID}/cgroup.procs",), ())


def test_cgroup_v2_unified():
    assert _procs(V2_CONTAINER, V2_OWN, V2_MOUNTINFO) == (
        (f"/sys/fs/cgroup/system.slice/docker-{DOCKER_ID}.scope/cgroup.procs",), ())


def test_cgroup_minify_in_a_container():
    # In its own container minify's cgroup mounts are read-only binds of its own cgroup:
    # they reach nothing, so it mounts the hierarchies itself (at their roots) and the
    # second lookup finds them there.
    own_v1 = "".join(f"{n} 31 0:{n} /docker/minify /sys/fs/cgroup/{d} ro,nosuid - cgroup "
                     f"cgroup rw,{c}\n" for n, d, c in ((39, "pids", "pids"),
                                                        (40, "systemd", "name=systemd")))
    own = "5:pids:/docker/minify\n2:name=systemd:/docker/minify\n"
    target = f"5:pids:/docker/{DOCKER_ID}\n2:name=systemd:/docker/{DOCKER_ID}\n"
    assert _procs(target, own, own_v1) == ((), ("pids", "name=systemd"))
    mounted = own_v1 + "".join(
        f"{n} 60 0:{n} / /sys/fs/cgroup/{h} rw,nosuid,nodev - cgroup cgroup rw,{h}\n"
        for n, h in ((39, "pids"), (40, "name=systemd")))
    assert _procs(target, own, mounted) == (
        (f"/sys/fs/cgroup/pids/docker/{DOCKER_ID}/cgroup.procs",
         f"/sys/fs/cgroup/name=systemd/docker/{DOCKER_ID}/cgroup.procs"), ())


def test_cgroup_v2_outside_our_cgroup_namespace_needs_cgroupns_host():
    # With a cgroup namespace of its own (Docker's default on cgroup v2), minify reads
    # the app container's path relative to its own cgroup: no move can cross that.
    with pytest.raises(cgroups.CgroupError, match="--cgroupns=host"):
        _procs(f"0::/../docker-{DOCKER_ID}.scope\n", "0::/\n", V2_MOUNTINFO)


def test_cgroup_mount_of_a_subtree_reaches_only_below_its_root():
    sub = "50 31 0:36 /docker/minify /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    own = "5:pids:/docker/minify\n"
    assert _procs("5:pids:/docker/minify/child\n", own, sub) == (
        ("/sys/fs/cgroup/pids/child/cgroup.procs",), ())
    assert _procs(f"5:pids:/docker/{DOCKER_ID}\n", own, sub) == ((), ("pids",))


def test_cgroup_unmounted_or_read_only_hierarchy_is_missing():
    assert _procs(V2_CONTAINER, V2_OWN, "") == ((), ("",))
    assert _procs(V2_CONTAINER, V2_OWN, V2_MOUNTINFO.replace("rw,nosuid", "ro,nosuid")) == (
        (), ("",))


def test_mountinfo_unescapes_and_merges_options():
    (m,) = cgroups.parse_mountinfo(
        r"60 1 0:40 /a\040b /mnt/x\040y ro,nosuid shared:1 master:2 - cgroup none rw,pids" + "\n")
    assert (m.root, m.point, m.fstype) == ("/a b", "/mnt/x y", "cgroup")
    assert {"ro", "nosuid", "rw", "pids"} <= m.options


def test_limits_parse():
    text = ("Limit                     Soft Limit           Hard Limit           Units     \n"
            "Max stack size            8388608              unlimited            bytes     \n"
            "Max processes             96363                96363                processes \n"
            "Max open files            20000                20000                files     \n"
            "Max nice priority         0                    0                    \n")
    assert confine.parse_limits(text) == {
        "RLIMIT_STACK": (8388608, resource.RLIM_INFINITY), "RLIMIT_NPROC": (96363, 96363),
        "RLIMIT_NOFILE": (20000, 20000), "RLIMIT_NICE": (0, 0)}


def test_rlimits_never_looser_than_minify_can_give():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    warnings: list[str] = []
    wanted = {"RLIMIT_NOFILE": (hard + 1, hard + 1), "RLIMIT_CORE": (0, 0)}
    assert confine._rlimits(wanted, True, warnings) == (
        (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_NOFILE, hard + 1, hard + 1))
    assert warnings == []
    # Without CAP_SYS_RESOURCE a hard limit cannot be raised: ours, the stricter, and said.
    assert confine._rlimits(wanted, False, warnings) == (
        (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_NOFILE, hard, hard))
    assert warnings == [f"RLIMIT_NOFILE is {hard + 1} in the container but at most {hard} "
                        "here (raising it needs CAP_SYS_RESOURCE): the app gets the lower"]


@pytest.mark.parametrize("labels,expected", [
    (("docker-default (enforce)\n", "unconfined\n", None, None, True),
     ("/proc/self/attr/apparmor/exec", b"exec docker-default")),
    (("my-profile (complain)\n", "unconfined\n", None, None, False),
     ("/proc/self/attr/exec", b"exec my-profile")),
    (("unconfined\n", "unconfined\n", None, None, True), None),
    (("docker-default (enforce)\n", "docker-default (enforce)\n", None, None, True), None),
    ((None, None, "system_u:system_r:container_t:s0:c1,c2\0",
      "unconfined_u:unconfined_r:unconfined_t:s0\0", False),
     ("/proc/self/attr/exec", b"system_u:system_r:container_t:s0:c1,c2")),
    ((None, None, None, None, False), None),
])
def test_exec_label(labels, expected):
    assert confine.exec_label(*labels) == expected


# -- real processes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def confined_exe(tmp_path_factory: pytest.TempPathFactory) -> str:
    exe = tmp_path_factory.mktemp("bin") / "confined"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(PROGRAMS / "confined.c")], check=True)
    return str(exe)


def _own_cgroup(hierarchy: str) -> tuple[str, str]:
    """(mount point, our path) of a hierarchy we can make a cgroup in: pids on cgroup v1,
    the unified one on v2."""
    own = cgroups.parse_cgroup(Path("/proc/self/cgroup").read_text())
    for m in cgroups.parse_mountinfo(Path("/proc/self/mountinfo").read_text()):
        if "ro" not in m.options and (m.fstype == "cgroup2" if not hierarchy
                                      else m.fstype == "cgroup" and hierarchy in m.options):
            return m.point, own[hierarchy]
    raise AssertionError(f"no writable {hierarchy or 'cgroup2'} mount")


@pytest.fixture
def target(confined_exe):
    """The confined program, moved into a cgroup of its own (pids hierarchy on v1)."""
    v1 = "pids" in cgroups.parse_cgroup(Path("/proc/self/cgroup").read_text())
    hierarchy = "pids" if v1 else ""
    point, path = _own_cgroup(hierarchy)
    name = f"minify-test-{secrets.token_hex(4)}"
    cgroup = Path(point, path.lstrip("/"), name)
    cgroup.mkdir()
    proc = subprocess.Popen([confined_exe], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        (cgroup / "cgroup.procs").write_text(str(proc.pid))
        yield proc.pid, hierarchy, f"{path.rstrip('/')}/{name}"
    finally:
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while (cgroup / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.02)
        cgroup.rmdir()


STATUS = "Umask|SigBlk|SigIgn|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters"


def _status(text: str) -> dict[str, str]:
    return {k: v for k, v in confine.parse_status(text).items()
            if k in STATUS.replace("Cap(Inh|Prm|Eff|Bnd|Amb)", "CapInh|CapPrm|CapEff|CapBnd|"
                                   "CapAmb").split("|")}


def test_launch_takes_the_targets_confinement(target, tmp_path):
    pid, hierarchy, cgroup = target
    theirs = confine.parse_status(Path(f"/proc/{pid}/status").read_text())
    script = (f"grep -E '^({STATUS}):' /proc/self/status; cat /proc/self/cgroup; "
              "cat /proc/self/oom_score_adj; ulimit -n; ulimit -Hn; "
              "uname -s; echo uname=$?; unshare -U true; echo unshare=$?")
    out_path = tmp_path / "out.txt"
    result = trace(LaunchSpec(argv=("/bin/sh", "-c", script), env=ENV, target_pid=pid,
                              output_path=str(out_path)))
    out = out_path.read_text()
    assert result.exit_status == 0, out
    mine = _status(out)
    bounding = theirs["CapBnd"]
    assert int(bounding, 16) & (1 << 12) == 0  # CAP_NET_ADMIN left the target's set
    ignored = int(theirs["SigIgn"], 16)
    assert ignored & (1 << (10 - 1)) and not ignored & (1 << (13 - 1))  # SIGUSR1, not SIGPIPE
    assert mine == {
        "Umask": "0027", "SigBlk": "0000000000000000",
        # The target's ignored signals: its SIGUSR1 and whatever it inherited from what ran
        # the tests (CI's runner ignores signal 32); Python's own SIGPIPE, not.
        "SigIgn": theirs["SigIgn"],
        "CapInh": "0000000000000001", "CapPrm": bounding, "CapEff": bounding,
        "CapBnd": bounding, "CapAmb": "0000000000000000", "NoNewPrivs": "1",
        "Seccomp": "2",
        # The target's filter and the tracer's own, on top.
        "Seccomp_filters": str(int(theirs["Seccomp_filters"]) + 1),
    }
    assert cgroups.parse_cgroup(out).get(hierarchy) == cgroup, out
    lines = out.splitlines()
    assert lines[lines.index("500") + 1:lines.index("500") + 3] == ["512", "1024"]
    # Denied by the target's filter, with its errno, under the tracer's filter.
    assert "uname: cannot get system name: Operation not supported" in out
    assert "uname=1" in out
    assert "unshare: unshare failed: Operation not permitted" in out
    assert "unshare=1" in out


def test_read_filters_returns_the_targets_program(target):
    pid, _, _ = target
    (program,) = confine.read_filters(pid)
    assert len(program) == 8 * 9  # the nine instructions of confined.c
    # The target runs on: it was only stopped while its filter was read.
    assert confine.parse_status(Path(f"/proc/{pid}/status").read_text())["TracerPid"] == "0"


def test_launch_joins_the_targets_user_namespace(tmp_path):
    # Like a container of an engine that remaps users (userns-remap).
    with unshared("--user", "--map-root-user", "--mount") as target:
        out_path = tmp_path / "out.txt"
        result = trace(LaunchSpec(argv=("/bin/sh", "-c", "readlink /proc/self/ns/user"),
                                  env=ENV, target_pid=target, output_path=str(out_path)))
        assert result.exit_status == 0, out_path.read_text()
        assert out_path.read_text().strip() == os.readlink(f"/proc/{target}/ns/user")
        assert os.readlink(f"/proc/{target}/ns/user") != os.readlink("/proc/self/ns/user")

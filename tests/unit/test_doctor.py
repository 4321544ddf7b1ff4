"""minify doctor's rules, on the facts other hosts would show (the e2e tests run it on
this one, on Podman, with no engine and inside the minify image)."""

import pytest

from minifier.doctor import (
    FAIL,
    OK,
    SKIP,
    WARN,
    HostFacts,
    ProbeFacts,
    cgroup_version,
    engine_checks,
    format_check,
    host_checks,
    probe_checks,
)
from minifier.engineinfo import EngineInfo
from minifier.errors import ExitStatus

ALL_CAPS = (1 << 19) | (1 << 21)
HOST = HostFacts(cap_eff=ALL_CAPS, seccomp=0, ptrace_scope=None, cgroup_version="2",
                 container="", own_netns="net:[4026531840]")
IN_CONTAINER = HostFacts(cap_eff=ALL_CAPS, seccomp=0, ptrace_scope=None, cgroup_version="2",
                         container="its cgroup is /docker/abc", own_netns="net:[4026532999]")
SEEN = ProbeFacts(pid=4242, pid_visible=True, parent="containerd-shim",
                  parent_netns="net:[4026531840]", cgroups={"files": 1}, root_fstype="overlay",
                  reader="storage", reader_why="the image's overlay2 layer directories, read "
                                               "in place")
ENGINE = EngineInfo(kind="docker", name="Docker Engine", version="24.0.7", api_version="1.43",
                    rootless=False, storage_driver="overlay2", backing_filesystem="extfs",
                    cgroup_version="2", cgroup_driver="systemd", root_dir="/var/lib/docker")


def _by_name(checks):
    return {c.name: c for c in checks}


def test_a_good_host_passes_everything(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    checks = engine_checks(ENGINE, "", HOST, SEEN) + host_checks(HOST) + probe_checks(SEEN,
                                                                                     HOST)
    assert [c.status for c in checks] == [OK] * len(checks)
    assert [c.name for c in checks] == [
        "engine", "storage", "cgroups", "capabilities", "ptrace_scope", "seccomp",
        "container", "containers", "pid", "network", "cgroup join", "fanotify"]
    assert format_check(checks[0]) == ("ok    engine        Docker Engine 24.0.7 (API 1.43) at "
                                       "unix:///var/run/docker.sock, rootful")
    assert checks[1].text == ("overlay2 on extfs: builds index the image's overlay2 layer "
                              "directories, read in place")
    assert checks[2].text == "cgroup v2 here, v2 (systemd driver) for the engine"


def test_storage_read_through_the_export_is_said_with_its_reason():
    podman = EngineInfo(**{**ENGINE.__dict__, "kind": "podman", "name": "Podman",
                           "storage_driver": "overlay"})
    seen = ProbeFacts(**{**SEEN.__dict__, "reader": "export", "reader_why":
                         "the engine's storage driver is overlay, not overlay2"})
    storage = engine_checks(podman, "", HOST, seen)[1]
    assert (storage.status, storage.text) == (OK, (
        "overlay on extfs: builds read images through the engine's export stream (the "
        "engine's storage driver is overlay, not overlay2)"))


@pytest.mark.parametrize("cap_eff,missing", [
    (1 << 21, ["CAP_SYS_PTRACE"]), (1 << 19, ["CAP_SYS_ADMIN"]),
    (0, ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"])])
def test_missing_capabilities_are_named(cap_eff, missing):
    c = _by_name(host_checks(HostFacts(cap_eff, 0, None, "1", "")))["capabilities"]
    assert c.status == FAIL and c.exit_status == ExitStatus.CAPABILITY
    assert [w for w in c.text.replace(";", " ").split() if w.startswith("CAP_")] == missing
    assert c.text.endswith("run as root, or in a container with --cap-add SYS_PTRACE "
                           "--cap-add SYS_ADMIN")


@pytest.mark.parametrize("scope,caps,status,words", [
    (None, ALL_CAPS, OK, "Yama is not enabled"),
    (0, ALL_CAPS, OK, "ptrace is not restricted"),
    (1, ALL_CAPS, OK, "minify's CAP_SYS_PTRACE may attach"),
    (2, ALL_CAPS, OK, "(CAP_SYS_PTRACE only)"),
    (1, 1 << 21, FAIL, "needs CAP_SYS_PTRACE, which minify lacks"),
    (3, ALL_CAPS, FAIL, "ptrace is disabled for everyone until the next reboot"),
])
def test_yama_ptrace_scope(scope, caps, status, words):
    c = _by_name(host_checks(HostFacts(caps, 0, scope, "1", "")))["ptrace_scope"]
    assert c.status == status and words in c.text


def test_a_seccomp_filter_on_minify_fails_naming_the_flag():
    c = _by_name(host_checks(HostFacts(ALL_CAPS, 2, None, "1", "")))["seccomp"]
    assert c.status == FAIL
    assert c.text.endswith("give it --security-opt seccomp=unconfined")


def test_in_a_container_without_pid_host_names_the_flag():
    checks = _by_name(probe_checks(ProbeFacts(pid=4242), IN_CONTAINER))
    assert checks["pid"].status == FAIL
    assert checks["pid"].text == (
        "the test container's PID 1 (pid 4242 in the engine's PID namespace) is not "
        "visible here: give minify's container --pid=host")
    assert [checks[n].status for n in ("network", "cgroup join", "fanotify")] == [SKIP] * 3


def test_a_remote_engine_is_not_told_to_add_pid_host():
    c = _by_name(probe_checks(ProbeFacts(pid=4242), HOST))["pid"]
    assert c.status == FAIL and "--pid=host" not in c.text
    assert "minify must run on the engine's host" in c.text


def test_another_network_namespace_names_network_host():
    seen = ProbeFacts(**{**SEEN.__dict__, "parent_netns": "net:[4026531840]"})
    c = _by_name(probe_checks(seen, IN_CONTAINER))["network"]
    assert c.status == FAIL
    assert c.text == ("minify's network namespace is not the one of the engine's "
                      "containerd-shim, where ports are published on 127.0.0.1: give "
                      "minify's container --network=host")


def test_cgroup_join_error_and_fanotify_warning():
    seen = ProbeFacts(**{**SEEN.__dict__, "cgroups": {"error": "the container's cgroup "
                         "(/../x) lies outside minify's cgroup namespace: give minify's "
                         "own container --cgroupns=host"},
                         "fanotify": "fanotify failed on /proc/4242/root: Invalid argument"})
    checks = _by_name(probe_checks(seen, HOST))
    assert checks["cgroup join"].status == FAIL
    assert checks["cgroup join"].text.endswith("--cgroupns=host")
    assert checks["fanotify"].status == WARN  # builds fall back to ptrace only
    assert "builds fall back to ptrace only" in checks["fanotify"].text


def test_an_engine_that_cannot_start_a_container_fails_with_exit_4():
    checks = probe_checks(ProbeFacts(error="the engine could not start a test container: "
                                           "runc: error setting rlimit type 7"), HOST)
    assert [(c.name, c.status, c.exit_status) for c in checks] == [
        ("containers", FAIL, ExitStatus.ENGINE)]


def test_no_engine_and_a_rootless_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    checks = engine_checks(None, "cannot reach the Docker engine at tcp://127.0.0.1:9", HOST)
    assert [(c.name, c.status) for c in checks] == [
        ("engine", FAIL), ("storage", SKIP), ("cgroups", OK)]
    assert checks[0].exit_status == ExitStatus.ENGINE
    rootless = EngineInfo(**{**ENGINE.__dict__, "rootless": True})
    engine = engine_checks(rootless, "", HOST)[0]
    assert engine.status == FAIL and "is a rootless Docker Engine 24.0.7" in engine.text


MOUNTS_V1 = """\
25 31 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup ro,nosuid shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/memory rw,nosuid shared:9 - cgroup cgroup rw,memory
"""
MOUNTS_HYBRID = MOUNTS_V1 + (
    "28 26 0:25 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n")
MOUNTS_V2 = "26 25 0:23 / /sys/fs/cgroup rw,nosuid shared:8 - cgroup2 cgroup2 rw\n"


@pytest.mark.parametrize("text,version", [(MOUNTS_V1, "1"), (MOUNTS_HYBRID, "1+2"),
                                          (MOUNTS_V2, "2"), ("", "")])
def test_cgroup_version_from_mountinfo(text, version):
    assert cgroup_version(text) == version


def test_cgroup_join_is_not_judged_without_cap_sys_admin():
    host = HostFacts(cap_eff=1 << 19, seccomp=0, ptrace_scope=None, cgroup_version="1",
                     container="its cgroup is /docker/abc", own_netns="net:[4026531840]")
    seen = ProbeFacts(**{**SEEN.__dict__, "cgroups": {"error": "unshare failed"}})
    c = _by_name(probe_checks(seen, host))["cgroup join"]
    assert (c.status, c.text) == (SKIP, "not checked: joining needs CAP_SYS_ADMIN (see "
                                        "capabilities)")

"""`minify doctor`: whether a build can work on this host, one line per check.

Host facts come from /proc (capabilities, seccomp mode, Yama, cgroup mounts, PID
namespace); engine facts from the engine's API (engineinfo.py); the rest from a test
container started the way a build starts its traced one (observe/hostprobe.py). The
checks are plain functions of those facts, unit-tested on other hosts' answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from minifier.engineinfo import EngineInfo, describe, engine_address, rootless_text
from minifier.errors import ExitStatus, MinifyError
from minifier.observe.hostprobe import ProbeFacts, probe_engine, read_text, status_field
from minifier.observe.preflight import NEEDED_CAPS

__all__ = ["Check", "HostFacts", "ProbeFacts", "read_host", "host_checks", "engine_checks",
           "probe_checks", "run_doctor", "format_check"]

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"

@dataclass(frozen=True)
class Check:
    """One line of the doctor's answer; `exit_status` is minify doctor's exit status
    when this check fails."""

    name: str
    status: str  # ok | warn | FAIL | skip
    text: str
    exit_status: ExitStatus = ExitStatus.CAPABILITY

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass(frozen=True)
class HostFacts:
    """What /proc and /sys say about minify's own process and host."""

    cap_eff: int
    seccomp: int  # 0 none, 1 strict, 2 filter
    ptrace_scope: Optional[int]  # None: Yama not enabled
    cgroup_version: str  # "1", "2" or "1+2" (hybrid)
    container: str  # "" or what says minify runs in a container
    own_netns: str = ""


def format_check(c: Check) -> str:
    return f"{c.status:<4}  {c.name:<12}  {c.text}"


# -- host -------------------------------------------------------------------------------


def cgroup_version(mountinfo: str) -> str:
    """"2" when /sys/fs/cgroup is cgroup2, "1" for v1 controllers, "1+2" for hybrid."""
    types = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and right:
            types[fields[4]] = right.split()[0]
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return "2"
    if types.get("/sys/fs/cgroup/unified") == "cgroup2":
        return "1+2"
    return "1" if any(t == "cgroup" for t in types.values()) else ""


_CGROUP_HINTS = ("/docker/", "/docker-", "/libpod-", "/libpod_parent/", "/kubepods")


def _container_marker() -> str:
    """What says minify runs in a container ("" when nothing does). Marker files such as
    /.dockerenv are not trusted alone: a VM made from a container image keeps them."""
    if (read_text("/proc/2/comm") or "").strip() != "kthreadd":
        return "its PID namespace is not the host's: no kernel threads are visible"
    for line in (read_text("/proc/self/cgroup") or "").splitlines():
        path = line.split(":", 2)[-1]
        if any(h in path + "/" for h in _CGROUP_HINTS):
            return f"its cgroup is {path}"
    return ""


def read_host() -> HostFacts:
    status = read_text("/proc/self/status") or ""
    scope = read_text("/proc/sys/kernel/yama/ptrace_scope")
    try:
        netns = os.readlink("/proc/self/ns/net")
    except OSError:
        netns = ""
    return HostFacts(cap_eff=int(status_field(status, "CapEff") or "0", 16),
                     seccomp=int(status_field(status, "Seccomp") or "0"),
                     ptrace_scope=int(scope) if scope and scope.strip().isdigit() else None,
                     cgroup_version=cgroup_version(read_text("/proc/self/mountinfo") or ""),
                     container=_container_marker(), own_netns=netns)


def _capabilities(h: HostFacts) -> Check:
    missing = [(n, why) for bit, n, why in NEEDED_CAPS if not h.cap_eff & (1 << bit)]
    if not missing:
        return Check("capabilities", OK, "CAP_SYS_PTRACE and CAP_SYS_ADMIN are effective")
    what = "; ".join(f"CAP_{n} ({why})" for n, why in missing)
    return Check("capabilities", FAIL, f"missing {what}: run as root, or in a container "
                 "with --cap-add SYS_PTRACE --cap-add SYS_ADMIN")


def _ptrace_scope(h: HostFacts) -> Check:
    has_ptrace = bool(h.cap_eff & (1 << 19))
    scope = h.ptrace_scope
    if scope is None:
        return Check("ptrace_scope", OK, "Yama is not enabled (no /proc/sys/kernel/yama/"
                     "ptrace_scope): ptrace is not restricted")
    if scope == 0:
        return Check("ptrace_scope", OK, "Yama ptrace_scope 0: ptrace is not restricted")
    if scope in (1, 2):
        rule = "descendants only" if scope == 1 else "CAP_SYS_PTRACE only"
        if has_ptrace:
            return Check("ptrace_scope", OK, f"Yama ptrace_scope {scope} ({rule}): "
                         "minify's CAP_SYS_PTRACE may attach to the container's PID 1")
        return Check("ptrace_scope", FAIL, f"Yama ptrace_scope {scope} ({rule}): attaching "
                     "to the container's PID 1 needs CAP_SYS_PTRACE, which minify lacks")
    return Check("ptrace_scope", FAIL, f"Yama ptrace_scope {scope}: ptrace is disabled "
                 "for everyone until the next reboot; minify cannot trace here")


def _seccomp(h: HostFacts) -> Check:
    if h.seccomp == 0:
        return Check("seccomp", OK, "minify runs under no seccomp filter")
    return Check("seccomp", FAIL, "minify runs under a seccomp filter, so the kernel hides "
                 "the container's filter from it: in a container, give it "
                 "--security-opt seccomp=unconfined")


def _container(h: HostFacts) -> Check:
    if h.container:
        return Check("container", OK, f"minify runs in a container ({h.container}): it "
                     "needs --pid=host and --network=host (the pid and network lines)")
    return Check("container", OK, "minify runs on the host, not in a container")


def host_checks(h: HostFacts) -> list[Check]:
    return [_capabilities(h), _ptrace_scope(h), _seccomp(h), _container(h)]


# -- engine -----------------------------------------------------------------------------


def _storage_check(engine: EngineInfo, probe: Optional[ProbeFacts]) -> Check:
    fs = f" on {engine.backing_filesystem}" if engine.backing_filesystem else ""
    driver = f"{engine.storage_driver or 'unknown driver'}{fs}"
    if probe is None or not probe.reader:
        return Check("storage", OK, f"{driver}; which image reader applies is not checked "
                     "(no test image)")
    if probe.reader == "storage":
        return Check("storage", OK, f"{driver}: builds index {probe.reader_why}")
    return Check("storage", OK, f"{driver}: builds read images through the engine's export "
                 f"stream ({probe.reader_why})")


def engine_checks(engine: Optional[EngineInfo], error: str, host: HostFacts,
                  probe: Optional[ProbeFacts] = None) -> list[Check]:
    """The engine line, its storage driver (and how the test image would be read) and
    the cgroup versions (host and engine)."""
    here = f"cgroup v{host.cgroup_version or '?'} here"
    if engine is None or engine.rootless:
        text = error if engine is None else rootless_text(engine)
        return [Check("engine", FAIL, text, ExitStatus.ENGINE),
                Check("storage", SKIP, "not checked: no usable engine"),
                Check("cgroups", OK, f"{here}; the engine's not checked: no usable engine")]
    where = f"{engine.name} {engine.version} (API {engine.api_version}) at {engine_address()}"
    if engine.cgroup_version:
        here += f", v{engine.cgroup_version} ({engine.cgroup_driver} driver) for the engine"
    return [Check("engine", OK, f"{where}, rootful"), _storage_check(engine, probe),
            Check("cgroups", OK, here)]


# -- the test container -----------------------------------------------------------------


def _pid_check(p: ProbeFacts, host: HostFacts) -> Check:
    if p.pid_visible:
        return Check("pid", OK, f"the test container's PID 1 (host pid {p.pid}) is visible "
                     "here, where the tracer looks for it")
    fix = ("give minify's container --pid=host" if host.container else
           "minify must run on the engine's host (a remote engine's containers cannot be "
           "traced)")
    return Check("pid", FAIL, f"the test container's PID 1 (pid {p.pid} in the engine's "
                 f"PID namespace) is not visible here: {fix}")


def _network_check(p: ProbeFacts, host: HostFacts) -> Check:
    if not p.pid_visible or not p.parent_netns:
        return Check("network", SKIP, "not checked: it needs the test container's PID 1 "
                     "and its parent visible here")
    if p.parent_netns == host.own_netns:
        return Check("network", OK, f"minify shares the network namespace of the engine's "
                     f"{p.parent or 'container runtime'}: ports published on 127.0.0.1 "
                     "reach the app")
    fix = "give minify's container --network=host" if host.container else \
        "run minify in the engine's network namespace"
    return Check("network", FAIL, f"minify's network namespace is not the one of the "
                 f"engine's {p.parent or 'container runtime'}, where ports are published on "
                 f"127.0.0.1: {fix}")


def _cgroup_check(p: ProbeFacts, host: HostFacts) -> Check:
    if not p.pid_visible:
        return Check("cgroup join", SKIP, "not checked: the test container is not visible")
    if not host.cap_eff & (1 << 21):  # without it the failure says nothing new
        return Check("cgroup join", SKIP, "not checked: joining needs CAP_SYS_ADMIN (see "
                     "capabilities)")
    if p.cgroups.get("error"):
        return Check("cgroup join", FAIL, str(p.cgroups["error"]))
    n = p.cgroups.get("files", 0)
    return Check("cgroup join", OK, f"a child process can join the test container's cgroups "
                 f"({n} hierarch{'y' if n == 1 else 'ies'} to move into), as the tracer does")


def _fanotify_check(p: ProbeFacts) -> Check:
    if not p.pid_visible:
        return Check("fanotify", SKIP, "not checked: the test container is not visible")
    fs = f" ({p.root_fstype})" if p.root_fstype else ""
    if not p.fanotify:
        return Check("fanotify", OK, f"the test container's root filesystem{fs} can be "
                     "watched with fanotify")
    return Check("fanotify", WARN, f"{p.fanotify}: builds fall back to ptrace only (files "
                 "opened by processes started with docker exec are not seen)")


def probe_checks(p: ProbeFacts, host: HostFacts) -> list[Check]:
    if p.error:
        return [Check("containers", FAIL, p.error, ExitStatus.ENGINE)]
    return [Check("containers", OK, "the engine loaded a test image and started a "
                  "container from it"),
            _pid_check(p, host), _network_check(p, host), _cgroup_check(p, host),
            _fanotify_check(p)]


def _skipped(why: str) -> list[Check]:
    return [Check(name, SKIP, f"not checked: {why}")
            for name in ("containers", "pid", "network", "cgroup join", "fanotify")]


def run_doctor() -> list[Check]:
    """Every check, engine first; the engine's are skipped when it cannot be used."""
    from minifier.engine import connect

    host = read_host()
    engine, error, client = None, "", None
    try:
        client = connect(timeout=30)
        engine = describe(client)
    except MinifyError as exc:
        error = exc.message
    if engine is None or engine.rootless:
        return engine_checks(engine, error, host) + host_checks(host) + _skipped(
            "no usable engine")
    probe = probe_engine(client)
    return engine_checks(engine, error, host, probe) + host_checks(host) + probe_checks(
        probe, host)

"""Plain typed records that the pipeline's stages take and return.

Every stage output is a frozen dataclass so each stage can be tested alone and the
pipeline reads as one chain of calls. Records own no behaviour beyond small derivations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:  # only for annotations: the sensor process never imports probes
    from probes import ProbeSummary, ReadyInfo, Target

__all__ = [
    "DEFAULT_PATH",
    "ImageInfo",
    "LaunchSpec",
    "FileEvent",
    "TraceResult",
    "WatchResult",
    "Access",
    "AccessRecord",
    "KeptFile",
    "BuildPlan",
    "Finding",
    "SelfCheck",
    "BuildResult",
    "ExecOutcome",
    "Observation",
]

# The PATH Docker gives a container whose image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageInfo:
    """What `docker image inspect` says about the source image, normalised."""

    ref: str  # what the user typed
    id: str  # sha256:...
    repo_tags: tuple[str, ...]
    size: int
    architecture: str
    os: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]  # "NAME=value"
    workdir: str
    user: str
    exposed_ports: tuple[str, ...]  # "80/tcp"
    volumes: tuple[str, ...]
    labels: Mapping[str, str]
    stop_signal: str
    healthcheck: Optional[Mapping[str, object]]
    config: Mapping[str, object]  # the raw Config block, carried into the output image


@dataclass(frozen=True)
class LaunchSpec:
    """How the tracer starts one program: inside a container's namespaces or on the host.

    `target_pid` is the host pid of a process whose namespaces (mnt, pid, net, ipc, uts,
    cgroup) and root the program joins; None runs it on the host (unit tests).
    """

    argv: tuple[str, ...]
    env: tuple[str, ...] = ()  # "NAME=value"
    workdir: str = "/"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    target_pid: Optional[int] = None
    output_path: Optional[str] = None  # stdout+stderr go here; None inherits the tracer's
    stdin_path: str = "/dev/null"
    keep_caps: Optional[tuple[str, ...]] = None  # bounding set to keep ("CHOWN", ...); None: all
    all_syscalls: bool = False  # stop on every syscall (exact syscall counts) instead of seccomp


@dataclass(frozen=True)
class FileEvent:
    """One observed file access, with an absolute path as the container sees it."""

    path: str
    op: str  # syscall name ("openat", "execve", ...) or fanotify kind ("open", "access", "exec")
    ok: bool  # the syscall succeeded (fanotify events are always True)
    exe: str  # the executable that made the access (container path)
    pid: int = 0
    source: str = "ptrace"  # "ptrace" | "fanotify"
    errno: int = 0


@dataclass(frozen=True)
class TraceResult:
    """What the ptrace tracer saw of one launched program and all its descendants."""

    events: tuple[FileEvent, ...]
    syscall_counts: Mapping[str, int]
    exit_status: Optional[int]  # of the launched process: exit code, or -signal
    processes: int = 0  # how many tasks were traced in total
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class WatchResult:
    """What the fanotify watcher saw on the container's root filesystem."""

    events: tuple[FileEvent, ...]
    overflows: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Access:
    """Everything known about one container path after merging all monitors."""

    path: str
    ops: frozenset[str]
    exes: frozenset[str]
    sources: frozenset[str]
    exists: bool  # at least one access to it succeeded


@dataclass(frozen=True)
class AccessRecord:
    """The merged record of every path the app touched; saved as access.json."""

    accesses: Mapping[str, Access]
    syscall_counts: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def existing(self) -> list[str]:
        return sorted(p for p, a in self.accesses.items() if a.exists)


@dataclass(frozen=True)
class KeptFile:
    """One path of the output image and why it is there."""

    path: str
    size: int
    kind: str  # "file", "dir", "symlink", "hardlink", "char", "block", "fifo"
    reasons: tuple[str, ...]  # "accessed", "parent", "symlink", "elf-dep", "shebang", ...


@dataclass(frozen=True)
class BuildPlan:
    """The closure of the access record over the image filesystem."""

    kept: tuple[KeptFile, ...]
    total_files: int
    total_size: int
    excluded: tuple[str, ...] = ()  # paths removed by --exclude-pattern
    warnings: tuple[str, ...] = ()

    @property
    def kept_size(self) -> int:
        return sum(k.size for k in self.kept)


@dataclass(frozen=True)
class Finding:
    """Something a kept file needs that the original image resolves and the plan lacks."""

    kind: str  # "interpreter" (PT_INTERP or #!), "library" (DT_NEEDED), "symlink"
    path: str  # the kept file (or link) that needs it
    missing: str  # the interpreter path, the library name, or the link's target
    original: str  # what it resolves to in the original image
    excluded: bool = False  # it was removed by --exclude-pattern

    def text(self) -> str:
        what = {"interpreter": f"its interpreter {self.missing}",
                "library": f"library {self.missing}",
                "symlink": f"its target {self.missing}"}.get(self.kind, self.missing)
        note = " (removed by --exclude-pattern)" if self.excluded else ""
        return (f"{self.path}: {what} is {self.original} in the original image but missing "
                f"from the minified one{note}")


@dataclass(frozen=True)
class SelfCheck:
    """The planned filesystem, walked before the image is written."""

    findings: tuple[Finding, ...] = ()

    @property
    def status(self) -> str:
        return "incomplete" if self.findings else "passed"


@dataclass(frozen=True)
class BuildResult:
    """The image that was built."""

    image_id: str
    tag: str
    size: int
    layer_path: str  # the layer tar kept in the artifacts dir


@dataclass(frozen=True)
class ExecOutcome:
    """One exec probe run inside the traced container: its exit code, output and trace."""

    argv: tuple[str, ...]
    exit_code: Optional[int]
    output: str
    trace: Optional[TraceResult]


@dataclass(frozen=True)
class Observation:
    """What exercising the traced app gave: its HTTP answers and exec outcomes."""

    http: Optional[ProbeSummary]
    execs: tuple[ExecOutcome, ...]
    target: Optional[Target]  # the ports that speak HTTP(S), as probed and replayed
    app_alive_after_probes: bool = True  # checked right after HTTP probing, before any stop
    ports: tuple[ReadyInfo, ...] = ()  # every probe port: http, https or not-http
    warnings: tuple[str, ...] = ()

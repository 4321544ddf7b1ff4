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
    "HealthSpec",
    "HealthOutcome",
    "AppLife",
    "RestartTrace",
    "Observation",
    "ComparedRequest",
    "ComparedExec",
    "Mismatch",
    "HealthVerdict",
    "LivenessVerdict",
    "VerifyResult",
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
    # The container's main process: when it exits, every process it leaves behind is
    # killed, as the kernel does when a container's PID 1 exits (docker exec's are not).
    container_main: bool = False
    # A mount of minify's own in the container (the stand-in PID 1, bind-mounted), taken
    # out of the container's mount table before the program starts: the app then sees
    # the mounts `docker run` makes, no more.
    detach_mount: str = ""


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
    launch_error: str = ""  # why the program could not start ("": it did)


@dataclass(frozen=True)
class WatchResult:
    """What the fanotify watcher saw on the container's root filesystem."""

    events: tuple[FileEvent, ...]
    overflows: int = 0
    warnings: tuple[str, ...] = ()
    received: int = 0  # events read from the kernel (with an fd), before de-duplication

    @property
    def syscall_counts(self) -> Mapping[str, int]:
        """fanotify sees file events, not syscalls."""
        return {}


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
    # Of `kept`, the paths the image does not have, made empty by the layer writer:
    # Docker's run-time files (/etc/hosts, /etc/resolv.conf...), their parents, /tmp.
    placeholders: tuple[str, ...] = ()

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
class HealthSpec:
    """The image's HEALTHCHECK with Docker's semantics: the argv the engine runs (CMD as
    given, CMD-SHELL through the image's Shell) and its timing in seconds."""

    argv: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    retries: int

    @property
    def bound(self) -> float:
        """How long Docker may take to decide healthy or unhealthy: the start period, then
        `retries` failed checks an interval apart, the last one running until its timeout."""
        return self.start_period + self.retries * self.interval + self.timeout


@dataclass(frozen=True)
class HealthOutcome:
    """What became of the image's health command during observation."""

    spec: HealthSpec
    status: str  # "passed" | "skipped" (--no-healthcheck) | "not-run" (the app had exited)
    attempts: int = 0
    exit_code: Optional[int] = None  # of the last attempt
    output: str = ""  # of the last attempt


@dataclass(frozen=True)
class AppLife:
    """How the original app lived while observed: what liveness verification asks of the
    minified one."""

    ran_seconds: float  # from its start until minify stopped it, or until it was seen ended
    exit_code: Optional[int]  # it ended by itself with this status (exit code or -signal)
    listening: tuple[int, ...]  # TCP ports its network namespace listened on before the stop
    output: str = ""  # a one-shot command's output (stdout and stderr, its last 64 kB)

    @property
    def one_shot(self) -> bool:
        """A command that ends by itself (a CLI), not a service that minify had to stop."""
        return self.exit_code is not None


@dataclass(frozen=True)
class RestartTrace:
    """The app's traced restart after probing (observe/restart.py)."""

    status: str  # "traced" | "skipped"
    note: str = ""  # why it was skipped, or what did not go as on the first start
    seconds: float = 0.0  # from the stop before it to the end of the replay
    requests: int = 0  # recorded HTTP requests sent again
    execs: int = 0  # exec probes run again

    @property
    def restarts(self) -> int:
        return 1 if self.status == "traced" else 0

    @property
    def warnings(self) -> tuple[str, ...]:
        """What did not go as on the first start, for the report's warnings."""
        return (self.note,) if self.restarts and self.note else ()


@dataclass(frozen=True)
class Observation:
    """What exercising the traced app gave: its HTTP answers, exec outcomes, health
    command, its traced restart and (once it is stopped) how it lived."""

    http: Optional[ProbeSummary]
    execs: tuple[ExecOutcome, ...]
    target: Optional[Target]  # the ports that speak HTTP(S), as probed and replayed
    app_alive_after_probes: bool = True  # checked right after HTTP probing, before any stop
    ports: tuple[ReadyInfo, ...] = ()  # every probe port: http, https or not-http
    warnings: tuple[str, ...] = ()
    health: Optional[HealthOutcome] = None  # None: the image has no HEALTHCHECK
    life: Optional[AppLife] = None  # known after the stop
    notes: tuple[str, ...] = ()  # how probing was decided (e.g. HTTP skipped: no port)
    restart: Optional[RestartTrace] = None  # known after the restart


# -- verification --------------------------------------------------------------------


@dataclass(frozen=True)
class ComparedRequest:
    """One HTTP request replayed against the minified app, compared with the original's."""

    round: int  # 1: first start, 2: after `docker restart`
    method: str
    path: str
    port: int
    compared: str  # "status+body", or "status" when the original's answers differed
    original_status: Optional[int]
    minified_status: Optional[int]
    nondeterministic: bool
    ok: bool
    minified_error: Optional[str] = None


@dataclass(frozen=True)
class ComparedExec:
    """One exec probe run in the minified container, compared with the original's run."""

    round: int
    argv: tuple[str, ...]
    compared: str  # "exit code+stdout", or "exit code" when the original's stdout differed
    original_exit_code: Optional[int]
    minified_exit_code: Optional[int]
    ok: bool
    minified_output: str = ""  # its last lines, for the failure message


@dataclass(frozen=True)
class Mismatch:
    """One way the minified image did not behave like the original, as one line of text."""

    kind: str  # "request" | "exec" | "exit" | "liveness" | "health" | "log" | "error"
    text: str
    request: Optional[ComparedRequest] = None
    exec: Optional[ComparedExec] = None


@dataclass(frozen=True)
class HealthVerdict:
    """The minified container's HEALTHCHECK, as Docker judged it."""

    status: str  # "passed" | "failed" | "skipped" (--no-healthcheck) | "none" | "not-applicable"
    reason: str = ""
    test: tuple[str, ...] = ()  # the argv Docker runs
    seconds: float = 0.0  # until Docker said healthy (first start)
    output: str = ""  # the last check's output, when it failed


@dataclass(frozen=True)
class LivenessVerdict:
    """Whether the minified app lived like the original: ran as long (a service) or ended
    with the same code (a one-shot command), listened on the same TCP ports, restarted."""

    shape: str  # "service" | "one-shot"
    ok: bool
    required_seconds: float = 0.0  # a service: how long the original ran while observed
    ports: tuple[int, ...] = ()  # TCP ports the original listened on in both of its runs
    minified_ports: tuple[int, ...] = ()
    original_exit_code: Optional[int] = None  # a one-shot command
    minified_exit_code: Optional[int] = None
    compared: str = ""  # a one-shot command: "exit code+stdout" or "exit code"
    restarted: bool = False  # the second round (after `docker restart`) ran


@dataclass(frozen=True)
class VerifyResult:
    """Verification's verdict: what was compared, and every mismatch."""

    status: str  # "passed" | "failed" | "skipped"
    reason: str = ""  # why it failed (the first mismatch) or was skipped
    requests: tuple[ComparedRequest, ...] = ()
    execs: tuple[ComparedExec, ...] = ()
    mismatches: tuple[Mismatch, ...] = ()
    health: Optional[HealthVerdict] = None
    liveness: Optional[LivenessVerdict] = None
    minified_output: tuple[str, ...] = ()  # last lines of the minified container's log
    include_path_hints: tuple[str, ...] = ()
    original_run: str = ""  # "alongside" the minified run, or "first" ("": not run)

"""Option groups for `minify build`; only the CLI reads click's arguments and builds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from probes import ContinueAfter, HttpProbeOptions

__all__ = ["MountSpec", "ContainerOptions", "RunOptions", "KeepOptions", "ProbeSetup",
           "OutputOptions", "IndexOptions", "BuildOptions"]


@dataclass(frozen=True)
class MountSpec:
    """One --volume/--mount (or --tmpfs) as the engine takes it, and where it lands.

    `bind` holds the text of a --volume (and of docker-slim's --mount SRC:DST[:OPTS]),
    given to the engine as the docker CLI gives `-v`; the fields describe the mount
    for the closure either way (see image_content)."""

    kind: str  # "bind" | "volume" | "tmpfs"
    target: str  # the container path (absolute, normalised)
    source: str = ""  # bind: host path; volume: its name ("": an anonymous volume)
    read_only: bool = False
    no_copy: bool = False  # volume-nocopy / nocopy: an empty volume gets no image content
    propagation: str = ""  # bind-propagation
    tmpfs_size: Optional[int] = None
    tmpfs_mode: Optional[int] = None
    bind: str = ""  # the -v text; "" for --mount KEY=VALUE,...

    @property
    def image_content(self) -> bool:
        """Whether what the app sees under the target may come from the image: the engine
        copies the image's files into an empty volume (unless nocopy); a bind mount or a
        tmpfs hides them."""
        return self.kind == "volume" and not self.no_copy


@dataclass(frozen=True)
class ContainerOptions:
    """`docker run`'s confinement options, with its names and values as the engine takes
    them: the traced container and verification's containers are created with these."""

    memory: Optional[int] = None  # --memory, bytes
    pids_limit: Optional[int] = None  # --pids-limit
    nano_cpus: Optional[int] = None  # --cpus, in billionths of a CPU
    security_opt: tuple[str, ...] = ()  # --security-opt, seccomp=FILE already read (as the CLI)
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    read_only: bool = False
    tmpfs: tuple[tuple[str, str], ...] = ()  # --tmpfs PATH[:OPTIONS] as (path, options)
    mounts: tuple[MountSpec, ...] = ()  # --volume, --mount
    network: Optional[str] = None  # --network NAME|ID (a user network, bridge or none)
    links: tuple[tuple[str, str], ...] = ()  # --link NAME[:ALIAS] as (name, alias)


@dataclass(frozen=True)
class RunOptions:
    entrypoint: Optional[tuple[str, ...]] = None
    cmd: Optional[tuple[str, ...]] = None
    env: tuple[str, ...] = ()
    workdir: Optional[str] = None
    user: Optional[str] = None  # --user, instead of the image's USER
    container: ContainerOptions = field(default_factory=ContainerOptions)
    expose: tuple[str, ...] = ()  # extra ports, "8080" or "8080/tcp"
    fanotify: bool = True
    all_syscalls: bool = False
    stop_timeout: float = 30.0
    stop_grace: float = 10.0  # like `docker stop`: time between StopSignal and SIGKILL


@dataclass(frozen=True)
class KeepOptions:
    include_paths: tuple[str, ...] = ()
    include_bins: tuple[str, ...] = ()
    include_shell: bool = False
    include_cert_all: bool = False
    exclude_patterns: tuple[str, ...] = ()
    # How the app is run, as far as the closure must know it (from --env/--workdir and,
    # once the image is inspected, the argv after --entrypoint/--cmd).
    env: tuple[str, ...] = ()  # "NAME=value", overrides the image Env (PATH, LD_LIBRARY_PATH)
    workdir: Optional[str] = None  # None: the image's WorkingDir
    argv: Optional[tuple[str, ...]] = None  # None: the image's Entrypoint + Cmd
    allow_incomplete: bool = False  # build even when the self-check finds something missing
    include_zoneinfo: bool = False  # keep the time zone database (--include-zoneinfo)
    # Keep whole each directory a static file server answered from (closure.seed_served).
    include_served_dirs: bool = True
    # Keep whole each Python, Node, Ruby or Perl package the app loaded a file from.
    include_packages: bool = False
    # Container paths mounted over at run time (--volume, --mount, --tmpfs): each
    # mountpoint is kept; below those whose content is not the image's, nothing is.
    mountpoints: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()  # the targets of bind mounts, tmpfs and nocopy volumes


@dataclass(frozen=True)
class ProbeSetup:
    http: Optional[HttpProbeOptions]  # None: --no-http-probe
    execs: tuple[tuple[str, ...], ...] = ()
    continue_after: Optional[ContinueAfter] = None  # None: the default for how it is probed
    # HTTP probing was asked for by name (--http-probe, a probe command or port, an API
    # document): an image without a TCP port is then an error, else HTTP probing is
    # skipped with a note, as docker-slim does.
    http_asked: bool = False
    exec_timeout: float = 120.0
    exec_allow_fail: bool = False  # a non-zero exit of an exec probe is not a probe failure
    start_wait: float = 60.0  # bound on readiness: an HTTP answer, or listening on each port
    healthcheck: bool = True  # run the image's HEALTHCHECK and require `healthy`
    restart_trace: bool = True  # restart the app once after probing, traced (restart.py)


@dataclass(frozen=True)
class OutputOptions:
    tag: Optional[str] = None
    artifacts_dir: Optional[str] = None  # kept; None: a temp dir removed at the end
    report_file: Optional[str] = None
    removed_list: Optional[str] = None
    verify: bool = True
    seccomp_profile: Optional[str] = None  # write a Docker seccomp profile here


@dataclass(frozen=True)
class IndexOptions:
    source: str = "auto"  # --image-source: auto | storage | export
    cache_dir: Optional[str] = None  # the index cache; None: no cache
    cache_dir_given: bool = False  # named by --cache-dir (else the default: best effort)


@dataclass(frozen=True)
class BuildOptions:
    image: str
    run: RunOptions = field(default_factory=RunOptions)
    probe: ProbeSetup = field(default_factory=lambda: ProbeSetup(http=HttpProbeOptions()))
    keep: KeepOptions = field(default_factory=KeepOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    index: IndexOptions = field(default_factory=IndexOptions)

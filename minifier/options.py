"""Option groups for `minify build`; only the CLI reads click's arguments and builds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from probes import ContinueAfter, HttpProbeOptions

from .closure import KeepOptions
from .appspec import RunOptions

__all__ = ["ProbeSetup", "OutputOptions", "BuildOptions"]


@dataclass(frozen=True)
class ProbeSetup:
    http: Optional[HttpProbeOptions]  # None: --no-http-probe
    execs: tuple[tuple[str, ...], ...] = ()
    continue_after: ContinueAfter = ContinueAfter("probe", None)
    exec_timeout: float = 120.0


@dataclass(frozen=True)
class OutputOptions:
    tag: Optional[str] = None
    artifacts_dir: Optional[str] = None  # kept; None: a temp dir removed at the end
    report_file: Optional[str] = None
    removed_list: Optional[str] = None
    verify: bool = True
    seccomp_profile: Optional[str] = None  # write a Docker seccomp profile here


@dataclass(frozen=True)
class BuildOptions:
    image: str
    run: RunOptions = field(default_factory=RunOptions)
    probe: ProbeSetup = field(default_factory=lambda: ProbeSetup(http=HttpProbeOptions()))
    keep: KeepOptions = field(default_factory=KeepOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

"""HTTP probing of an app under trace: wait for it, exercise it, judge and replay the answers.

A standalone package: it knows nothing of the minifier and only returns values.
"""

from probes.commands import (
    load_command_file,
    load_exec_file,
    parse_continue_after,
    parse_exec_command,
    parse_ports,
    parse_probe_cmd,
)
from probes.errors import AppExitedError, NotReadyError, ProbeSpecError
from probes.http import counts, evaluate, replay, run
from probes.links import extract_links
from probes.ready import wait_ready
from probes.records import (
    ContinueAfter,
    HttpProbeOptions,
    ProbeCommand,
    ProbeSummary,
    ReadyInfo,
    RequestResult,
    Target,
)

__all__ = [
    "AppExitedError",
    "ContinueAfter",
    "HttpProbeOptions",
    "NotReadyError",
    "ProbeCommand",
    "ProbeSpecError",
    "ProbeSummary",
    "ReadyInfo",
    "RequestResult",
    "Target",
    "counts",
    "evaluate",
    "extract_links",
    "load_command_file",
    "load_exec_file",
    "parse_continue_after",
    "parse_exec_command",
    "parse_ports",
    "parse_probe_cmd",
    "replay",
    "run",
    "wait_ready",
]

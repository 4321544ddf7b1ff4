"""HTTP probing of an app under trace: wait for it, exercise it, judge and replay the answers.

A standalone package: it knows nothing of the minifier and only returns values. Every
error it raises derives from `ProbesError`.
"""

from probes.apispec import load_apispec_file, parse_document, plan_requests
from probes.commands import (
    load_command_file,
    load_exec_file,
    parse_continue_after,
    parse_exec_command,
    parse_ports,
    parse_probe_cmd,
)
from probes.errors import AppExitedError, NotReadyError, ProbesError, ProbeSpecError
from probes.http import counts, evaluate, replay, run
from probes.links import extract_links
from probes.ready import NOT_READY_STATUSES, wait_ready
from probes.records import (
    APISPEC_METHODS,
    DISCOVERED_BY,
    LOOPBACK_ONLY,
    NOT_HTTP,
    ApiDocument,
    ApiSpecUse,
    ContinueAfter,
    HttpProbeOptions,
    ProbeCommand,
    ProbeSummary,
    ReadyInfo,
    RequestResult,
    Target,
)

__all__ = [
    "APISPEC_METHODS",
    "DISCOVERED_BY",
    "LOOPBACK_ONLY",
    "NOT_HTTP",
    "NOT_READY_STATUSES",
    "ApiDocument",
    "ApiSpecUse",
    "AppExitedError",
    "ContinueAfter",
    "HttpProbeOptions",
    "NotReadyError",
    "ProbeCommand",
    "ProbeSpecError",
    "ProbeSummary",
    "ProbesError",
    "ReadyInfo",
    "RequestResult",
    "Target",
    "counts",
    "evaluate",
    "extract_links",
    "load_apispec_file",
    "load_command_file",
    "load_exec_file",
    "parse_continue_after",
    "parse_document",
    "parse_exec_command",
    "parse_ports",
    "parse_probe_cmd",
    "plan_requests",
    "replay",
    "run",
    "wait_ready",
]

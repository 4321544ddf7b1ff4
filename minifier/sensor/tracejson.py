"""The tracer's files: a LaunchSpec in, a TraceResult out, as JSON (tuples become lists).

The tracer runs as its own process (`python -m minifier.sensor.tracer SPEC RESULT`); these are
the only contract between it and the runner, like docker-slim's sensor and master.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from minifier.records import FileEvent, LaunchSpec, TraceResult

__all__ = ["CONFINEMENT_FAILED", "LAUNCH_FD", "SPARE", "spec_to_json", "spec_from_json",
           "result_to_json", "result_from_json", "write_atomic"]

CONFINEMENT_FAILED = 3  # the tracer's exit status when the container's confinement failed
SPARE = "--spare"  # the tracer's argument to start ahead of need (tracer.main)
LAUNCH_FD = "--launch-fd"  # ... and to tell, on that pipe, that its program runs


def spec_to_json(spec: LaunchSpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}


def spec_from_json(data: dict[str, Any]) -> LaunchSpec:
    fields = dict(data)
    for name in ("argv", "env", "groups", "keep_caps"):
        if fields.get(name) is not None:
            fields[name] = tuple(fields[name])
    return LaunchSpec(**fields)


def result_to_json(result: TraceResult) -> dict[str, Any]:
    return {
        "events": [asdict(e) for e in result.events],
        "syscall_counts": dict(result.syscall_counts),
        "exit_status": result.exit_status,
        "processes": result.processes,
        "warnings": list(result.warnings),
        "launch_error": result.launch_error,
    }


def result_from_json(data: dict[str, Any]) -> TraceResult:
    return TraceResult(
        events=tuple(FileEvent(**e) for e in data["events"]),
        syscall_counts=dict(data["syscall_counts"]),
        exit_status=data["exit_status"],
        processes=data.get("processes", 0),
        warnings=tuple(data.get("warnings", ())),
        launch_error=data.get("launch_error", ""),
    )


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

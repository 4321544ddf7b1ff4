"""The monitors' common contract, how a run starts and stops a list of them, and the
merge of their results into one access record.

A monitor is an event source (the ptrace tracer process, the fanotify watcher): started
before the app, stopped after it, then asked for its result: file events, syscall
counts and warnings. The runner drives its monitors only through this module.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Optional, Protocol, Sequence, runtime_checkable

from minifier.errors import CapabilityError
from minifier.records import Access, AccessRecord, FileEvent

__all__ = ["Monitor", "MonitorResult", "start_monitors", "stop_monitors", "merge",
           "access_to_json", "ACCESS_SCHEMA"]

ACCESS_SCHEMA = "minify.access/v1"


class MonitorResult(Protocol):
    """What every monitor reports (TraceResult, WatchResult)."""

    @property
    def events(self) -> tuple[FileEvent, ...]: ...

    @property
    def syscall_counts(self) -> Mapping[str, int]: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...


@runtime_checkable
class Monitor(Protocol):
    """An event source. `name` is its events' source ("ptrace", "fanotify");
    `degraded` says how the run goes on without it when this host cannot run it
    (start() raises CapabilityError), None when the run cannot go on without it."""

    name: str
    degraded: Optional[str]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def result(self) -> MonitorResult: ...


def start_monitors(monitors: Sequence[Monitor], warnings: list[str]) -> list[Monitor]:
    """Start each monitor in order (the first ones see what the later ones start) and
    return the ones that run. One that this host cannot run is left out with a warning
    when the run can go on without it; any other failure (or an interrupt) stops the
    ones started, and the failing one, and is raised."""
    started: list[Monitor] = []
    for monitor in monitors:
        try:
            monitor.start()
        except BaseException as exc:
            if isinstance(exc, CapabilityError) and monitor.degraded is not None:
                warnings.append(f"{exc.message}: {monitor.degraded}")
                continue
            stop_monitors([*started, monitor])
            raise
        started.append(monitor)
    return started


def stop_monitors(monitors: Sequence[Monitor]) -> None:
    """Stop in the reverse order of their start: a monitor that started first (fanotify
    on the whole filesystem) still sees what the later ones do while they stop."""
    for monitor in reversed(monitors):
        monitor.stop()


def _group(events: Iterable[FileEvent]) -> dict[str, list[FileEvent]]:
    by_path: dict[str, list[FileEvent]] = {}
    for event in events:
        by_path.setdefault(event.path, []).append(event)
    return by_path


def merge(results: Iterable[MonitorResult]) -> AccessRecord:
    """One Access per path over every monitor's result: how it was touched, by which
    executables, seen by which monitors, whether it existed."""
    results = list(results)
    counts: Counter[str] = Counter()
    for r in results:
        counts.update(r.syscall_counts)
    accesses = {
        path: Access(
            path=path,
            ops=frozenset(e.op for e in group),
            exes=frozenset(e.exe for e in group if e.exe),
            sources=frozenset(e.source for e in group),
            exists=any(e.ok for e in group),
        )
        for path, group in _group(e for r in results for e in r.events).items()
    }
    return AccessRecord(accesses=accesses, syscall_counts=dict(counts),
                        warnings=tuple(w for r in results for w in r.warnings))


def access_to_json(record: AccessRecord) -> dict:
    """The access.json artifact: stable, sorted, JSON-ready."""
    return {
        "schema": ACCESS_SCHEMA,
        "paths": [
            {"path": a.path, "ops": sorted(a.ops), "exes": sorted(a.exes),
             "sources": sorted(a.sources), "exists": a.exists}
            for a in sorted(record.accesses.values(), key=lambda a: a.path)
        ],
        "syscall_counts": dict(sorted(record.syscall_counts.items())),
        "warnings": list(record.warnings),
    }

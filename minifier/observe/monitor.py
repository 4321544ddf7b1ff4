"""The monitors' common contract and the merge of their events into one access record."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Optional, Protocol, runtime_checkable

from minifier.records import Access, AccessRecord, FileEvent, TraceResult, WatchResult

__all__ = ["Monitor", "merge", "access_to_json"]


@runtime_checkable
class Monitor(Protocol):
    """An event source: started before the app, stopped after it, then asked for its result."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def result(self) -> object: ...


def _group(events: Iterable[FileEvent]) -> dict[str, list[FileEvent]]:
    by_path: dict[str, list[FileEvent]] = {}
    for event in events:
        by_path.setdefault(event.path, []).append(event)
    return by_path


def merge(traces: Iterable[TraceResult], watch: Optional[WatchResult]) -> AccessRecord:
    """One Access per path: how it was touched, by which executables, whether it existed."""
    traces = list(traces)
    events = [e for t in traces for e in t.events]
    warnings = [w for t in traces for w in t.warnings]
    if watch is not None:
        events.extend(watch.events)
        warnings.extend(watch.warnings)
    counts: Counter[str] = Counter()
    for t in traces:
        counts.update(t.syscall_counts)
    accesses = {
        path: Access(
            path=path,
            ops=frozenset(e.op for e in group),
            exes=frozenset(e.exe for e in group if e.exe),
            sources=frozenset(e.source for e in group),
            exists=any(e.ok for e in group),
        )
        for path, group in _group(events).items()
    }
    return AccessRecord(accesses=accesses, syscall_counts=dict(counts), warnings=tuple(warnings))


def access_to_json(record: AccessRecord) -> dict:
    """The access.json artifact: stable, sorted, JSON-ready."""
    return {
        "schema": 1,
        "paths": [
            {"path": a.path, "ops": sorted(a.ops), "exes": sorted(a.exes),
             "sources": sorted(a.sources), "exists": a.exists}
            for a in sorted(record.accesses.values(), key=lambda a: a.path)
        ],
        "syscall_counts": dict(sorted(record.syscall_counts.items())),
        "warnings": list(record.warnings),
    }

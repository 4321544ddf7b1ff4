"""The before/after report: one record built at the end from the stage records, and
its one JSON rendering.

`make_report` turns the stage records into a `Report`, frozen dataclasses all the way
down; `Report.document` renders it, once, as the versioned JSON document (`schema`)
whose keys a contract test pins on real runs (tests/e2e/test_report_contract.py). The
text and Markdown summaries (summary.py) read the record; the HTML page reads the
document.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections import Counter
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property
from typing import Iterable, Mapping, Optional

from minifier.image.indexing import Indexed
from minifier.jsonsafe import safe
from minifier.records import (
    AccessRecord,
    BuildPlan,
    BuildResult,
    ExecOutcome,
    ImageInfo,
    KeptFile,
    Observation,
    RestartTrace,
    SelfCheck,
    VerifyResult,
)
from probes import ApiSpecUse, ReadyInfo, RequestResult

__all__ = ["SCHEMA", "Report", "ImageSummary", "FileCounts", "ProbeReport",
           "ObservationReport", "AccessSummary",
           "DirSize", "DirBytes", "make_report", "probe_report", "write_json", "dir_sizes"]

SCHEMA = "minify.report/v2"


@dataclass(frozen=True)
class ImageSummary:
    """An image the report names: the source as the user typed it, or the output's tag."""

    image: str
    id: str
    size: int


@dataclass(frozen=True)
class FileCounts:
    kept: int  # of the image's own `total` entries (the root excluded)
    total: int
    kept_size: int
    total_size: int
    placeholders: tuple[str, ...] = ()  # kept paths the image lacks, made empty (BuildPlan)


@dataclass(frozen=True)
class ProbeReport:
    """What exercising the app did: every HTTP request (how it was found, what it got),
    the counts by outcome, the URLs the crawl found, how each probe port spoke, the API
    documents used, notes (bounds hit, HTTP probing skipped) and the exec probes."""

    requests: tuple[RequestResult, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    discovered: tuple[str, ...] = ()
    ports: tuple[ReadyInfo, ...] = ()
    apispecs: tuple[ApiSpecUse, ...] = ()
    notes: tuple[str, ...] = ()
    execs: tuple[ExecOutcome, ...] = ()


@dataclass(frozen=True)
class ObservationReport:
    """How the app was observed beyond the probes: how often it was restarted, traced,
    and how that restart went (None: it was not tried)."""

    restarts: int = 0
    restart: Optional[RestartTrace] = None


@dataclass(frozen=True)
class AccessSummary:
    """The access record in numbers; the record itself is the artifact `file`."""

    paths: int
    existing: int
    file: str
    syscall_counts: Mapping[str, int]


@dataclass(frozen=True)
class DirSize:
    path: str
    size: int


@dataclass(frozen=True)
class DirBytes:
    """One directory (cut at three levels): bytes of its files kept and removed."""

    path: str
    kept: int
    removed: int


@dataclass(frozen=True)
class Report:
    source: ImageSummary
    output: ImageSummary
    ratio: float
    files: FileCounts
    kept: tuple[KeptFile, ...]
    excluded: tuple[str, ...]
    probe: ProbeReport
    observation: ObservationReport
    access: AccessSummary
    verify: VerifyResult
    selfcheck: SelfCheck
    biggest_kept_dirs: tuple[DirSize, ...]
    biggest_removed_dirs: tuple[DirSize, ...]
    dirs: tuple[DirBytes, ...]
    warnings: tuple[str, ...]
    artifacts_dir: str
    timings: Mapping[str, float]
    index: Indexed
    schema: str = SCHEMA

    @cached_property
    def document(self) -> dict:
        """The JSON document (`--report-file`, `--json`, report.json): rendered once,
        its file names that are not UTF-8 made readable by strict parsers (jsonsafe)."""
        return safe(_report_json(self))


def probe_report(obs: Observation) -> ProbeReport:
    """The report's probe part from an Observation."""
    http = obs.http
    if http is None:
        return ProbeReport(ports=obs.ports, notes=obs.notes, execs=obs.execs)
    return ProbeReport(requests=http.requests, counts=dict(http.counts),
                       discovered=http.discovered, ports=obs.ports, apispecs=http.apispecs,
                       notes=(*obs.notes, *http.notes), execs=obs.execs)


def dir_sizes(paths_sizes: Iterable[tuple[str, int]], depth: int = 3) -> Counter:
    """Bytes per directory prefix of at most `depth` components (for 'biggest dirs')."""
    sizes: Counter = Counter()
    for path, size in paths_sizes:
        parts = posixpath.dirname(path).strip("/").split("/")
        key = "/" + "/".join(p for p in parts[:depth] if p)
        sizes[key] += size
    return sizes


def _top(counter: Counter, n: int = 5) -> tuple[DirSize, ...]:
    return tuple(DirSize(p, s) for p, s in counter.most_common(n) if s > 0)


def _dirs(kept: Counter, removed: Counter) -> tuple[DirBytes, ...]:
    """The data of the HTML report's treemap."""
    return tuple(DirBytes(p, kept[p], removed[p])
                 for p in sorted(set(kept) | set(removed)) if kept[p] or removed[p])


def make_report(image: ImageInfo, result: BuildResult, plan: BuildPlan,
                access: AccessRecord, observation: Observation, verify: VerifyResult,
                removed_sizes: Counter, artifacts_dir: str, *, index: Indexed,
                warnings: Iterable[str] = (), timings: Optional[Mapping[str, float]] = None,
                selfcheck: Optional[SelfCheck] = None) -> Report:
    kept_sizes = dir_sizes((k.path, k.size) for k in plan.kept)
    selfcheck = selfcheck or SelfCheck()
    return Report(
        source=ImageSummary(image.ref, image.id, image.size),
        output=ImageSummary(result.tag, result.image_id, result.size),
        ratio=round(image.size / result.size, 2) if result.size else 0.0,
        files=FileCounts(len(plan.kept) - len(plan.placeholders), plan.total_files,
                         plan.kept_size, plan.total_size, plan.placeholders),
        kept=plan.kept,
        excluded=plan.excluded,
        probe=probe_report(observation),
        observation=ObservationReport(
            observation.restart.restarts if observation.restart else 0, observation.restart),
        access=AccessSummary(len(access.accesses), len(access.existing()), "access.json",
                             dict(access.syscall_counts)),
        verify=verify,
        selfcheck=selfcheck,
        biggest_kept_dirs=_top(kept_sizes),
        biggest_removed_dirs=_top(removed_sizes),
        dirs=_dirs(kept_sizes, removed_sizes),
        warnings=(*plan.warnings, *access.warnings, *warnings,
                  *(observation.restart.warnings if observation.restart else ()),
                  *(f"incomplete (--allow-incomplete): {f.text()}" for f in selfcheck.findings)),
        artifacts_dir=artifacts_dir,
        timings=dict(timings or {}),
        index=index,
    )


# -- the JSON rendering ------------------------------------------------------------------


def _plain(value: object) -> object:
    """A record as JSON values: dataclasses become objects (their fields in order),
    tuples and frozensets lists, mappings objects."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _request_json(r: RequestResult) -> dict:
    """One probe request: how it was found (`discovered_by`: default, user, crawl,
    well-known, apispec) and what it got (`outcome`: its status class, "unsupported"
    for a 405/501 to a request minify invented)."""
    return {"method": r.method, "path": r.path, "port": r.port, "protocol": r.protocol,
            "status": r.status, "content_type": r.content_type, "length": r.length,
            "sha256": r.sha256, "elapsed": round(r.elapsed, 4), "error": r.error,
            "discovered_by": r.discovered_by, "outcome": r.status_class}


def _probe_json(p: ProbeReport) -> dict:
    return {
        "requests": [_request_json(r) for r in p.requests],
        "counts": dict(p.counts),
        "discovered": list(p.discovered),
        "ports": [{"port": r.port, "speaks": r.protocol, "ready_after": round(r.elapsed, 3)}
                  for r in p.ports],
        "apispecs": [_plain(a) for a in p.apispecs],
        "notes": list(p.notes),
        "execs": [{"argv": list(e.argv), "exit_code": e.exit_code} for e in p.execs],
    }


def _selfcheck_json(s: SelfCheck) -> dict:
    return {"status": s.status,
            "findings": [{**_plain(f), "text": f.text()} for f in s.findings]}


def _report_json(r: Report) -> dict:
    return {
        "schema": r.schema,
        "source": _plain(r.source),
        "output": _plain(r.output),
        "ratio": r.ratio,
        "files": _plain(r.files),
        "kept": [_plain(k) for k in r.kept],
        "excluded": list(r.excluded),
        "probe": _probe_json(r.probe),
        "observation": _plain(r.observation),
        "access": _plain(r.access),
        # Mismatches carry their compared request or exec probe (or null): one shape.
        "verify": _plain(r.verify),
        "selfcheck": _selfcheck_json(r.selfcheck),
        "biggest_kept_dirs": _plain(r.biggest_kept_dirs),
        "biggest_removed_dirs": _plain(r.biggest_removed_dirs),
        "dirs": _plain(r.dirs),
        "warnings": list(r.warnings),
        "artifacts_dir": r.artifacts_dir,
        "timings": dict(r.timings),
        "index": {"reader": r.index.reader, "why": r.index.why, "cache": r.index.cache,
                  "cache_file": r.index.cache_file, "entries": r.index.entries},
    }


def _umask() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def write_json(doc: dict, path: str) -> None:
    """Write atomically: a reader never sees half a report. Names that are not UTF-8
    are written as jsonsafe says (valid UTF-8 JSON, the exact bytes alongside)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".report-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(safe(doc), f, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from a CI uploader
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

"""The before/after report: built once at the end from the stage records.

The JSON document is versioned (`schema`) and its keys are pinned by a contract test;
the human summary is rendered from the same record.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from minifier.records import (
    AccessRecord,
    BuildPlan,
    BuildResult,
    ImageInfo,
    SelfCheck,
    VerifyResult,
)

__all__ = ["SCHEMA", "Report", "make_report", "write_json", "render_text", "render_markdown",
           "dir_sizes", "request_to_json", "probe_to_json", "verify_to_json", "parse_size",
           "threshold_failures", "mismatch_text"]

SCHEMA = "minify.report/v1"


@dataclass(frozen=True)
class Report:
    source: Mapping[str, object]
    output: Mapping[str, object]
    ratio: float
    files: Mapping[str, int]
    kept: Sequence[Mapping[str, object]]
    excluded: Sequence[str]
    probe: Mapping[str, object]
    access: Mapping[str, object]
    verify: Mapping[str, object]
    selfcheck: Mapping[str, object]
    biggest_kept_dirs: Sequence[Mapping[str, object]]
    biggest_removed_dirs: Sequence[Mapping[str, object]]
    dirs: Sequence[Mapping[str, object]]
    warnings: Sequence[str]
    artifacts_dir: str
    timings: Mapping[str, float] = field(default_factory=dict)
    index: Mapping[str, object] = field(default_factory=dict)
    schema: str = SCHEMA

    def to_json(self) -> dict:
        return asdict(self)


def dir_sizes(paths_sizes: Iterable[tuple[str, int]], depth: int = 3) -> Counter:
    """Bytes per directory prefix of at most `depth` components (for 'biggest dirs')."""
    sizes: Counter = Counter()
    for path, size in paths_sizes:
        parts = posixpath.dirname(path).strip("/").split("/")
        key = "/" + "/".join(p for p in parts[:depth] if p)
        sizes[key] += size
    return sizes


def _top(counter: Counter, n: int = 5) -> list[dict]:
    return [{"path": p, "size": s} for p, s in counter.most_common(n) if s > 0]


def _dirs(kept: Counter, removed: Counter) -> list[dict]:
    """Every directory (cut at three levels) with the bytes of its files kept and removed:
    the data of the HTML report's treemap."""
    return [{"path": p, "kept": kept[p], "removed": removed[p]}
            for p in sorted(set(kept) | set(removed)) if kept[p] or removed[p]]


def request_to_json(r) -> dict:
    """One probe request: how it was found (`discovered_by`: default, user, crawl,
    well-known, apispec) and what it got (`outcome`: its status class, "unsupported"
    for a 405/501 to a request minify invented)."""
    return {"method": r.method, "path": r.path, "port": r.port, "protocol": r.protocol,
            "status": r.status, "content_type": r.content_type, "length": r.length,
            "sha256": r.sha256, "elapsed": round(r.elapsed, 4), "error": r.error,
            "discovered_by": r.discovered_by, "outcome": r.status_class}


def probe_to_json(obs) -> dict:
    """The report's `probe` part from an Observation: requests, counts, ports and how
    each spoke, the API documents used, notes, exec probes."""
    http = obs.http
    return {
        "requests": [request_to_json(r) for r in http.requests] if http else [],
        "counts": dict(http.counts) if http else {},
        "discovered": list(http.discovered) if http else [],
        "ports": [{"port": r.port, "speaks": r.protocol, "ready_after": round(r.elapsed, 3)}
                  for r in obs.ports],
        "apispecs": [{"source": a.source, "port": a.port, "version": a.version,
                      "discovered_by": a.discovered_by, "operations": a.operations,
                      "requests": a.requests, "skipped": list(a.skipped)}
                     for a in (http.apispecs if http else ())],
        "notes": list(http.notes) if http else [],
        "execs": [{"argv": list(e.argv), "exit_code": e.exit_code} for e in obs.execs],
    }


def verify_to_json(v: VerifyResult) -> dict:
    """The report's `verify` object: each mismatch is its kind and one line of text, plus
    the compared request's or exec probe's fields."""
    def mismatch(m) -> dict:
        row = {"kind": m.kind, "text": m.text}
        detail = m.request or m.exec
        return {**row, **asdict(detail)} if detail is not None else row

    return {
        "status": v.status,
        "reason": v.reason,
        "mismatches": [mismatch(m) for m in v.mismatches],
        "requests": [asdict(r) for r in v.requests],
        "execs": [asdict(e) for e in v.execs],
        "health": asdict(v.health) if v.health is not None else None,
        "liveness": asdict(v.liveness) if v.liveness is not None else None,
        "minified_output": list(v.minified_output),
        "include_path_hints": list(v.include_path_hints),
    }


def make_report(image: ImageInfo, result: BuildResult, plan: BuildPlan,
                access: AccessRecord, probe: Mapping[str, object],
                verify: VerifyResult, removed_sizes: Counter,
                artifacts_dir: str, warnings: Sequence[str] = (),
                timings: Optional[Mapping[str, float]] = None,
                selfcheck: Optional[SelfCheck] = None,
                index: Optional[Mapping[str, object]] = None) -> Report:
    kept_files = [k for k in plan.kept]
    kept_sizes = dir_sizes((k.path, k.size) for k in kept_files)
    selfcheck = selfcheck or SelfCheck()
    return Report(
        source={"image": image.ref, "id": image.id, "size": image.size},
        output={"image": result.tag, "id": result.image_id, "size": result.size},
        ratio=round(image.size / result.size, 2) if result.size else 0.0,
        files={"kept": len(kept_files), "total": plan.total_files,
               "kept_size": plan.kept_size, "total_size": plan.total_size},
        kept=[{"path": k.path, "size": k.size, "kind": k.kind, "reasons": list(k.reasons)}
              for k in kept_files],
        excluded=list(plan.excluded),
        probe=probe,
        access={"paths": len(access.accesses), "existing": len(access.existing()),
                "file": "access.json", "syscall_counts": dict(access.syscall_counts)},
        verify=verify_to_json(verify),
        selfcheck={"status": selfcheck.status,
                   "findings": [{"kind": f.kind, "path": f.path, "missing": f.missing,
                                 "original": f.original, "excluded": f.excluded,
                                 "text": f.text()} for f in selfcheck.findings]},
        biggest_kept_dirs=_top(kept_sizes),
        biggest_removed_dirs=_top(removed_sizes),
        dirs=_dirs(kept_sizes, removed_sizes),
        warnings=[*plan.warnings, *access.warnings, *warnings,
                  *(f"incomplete (--allow-incomplete): {f.text()}" for f in selfcheck.findings)],
        artifacts_dir=artifacts_dir,
        timings=dict(timings or {}),
        index=dict(index or {}),
    )


def _umask() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def write_json(doc: dict, path: str) -> None:
    """Write atomically: a reader never sees half a report."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".report-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from a CI uploader
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def render_text(report: Report) -> str:
    src, out = report.source, report.output
    counts = report.probe.get("counts") or {}
    lines = [
        f"source  {src['image']}  {human_size(src['size'])}",
        f"output  {out['image']}  {human_size(out['size'])}  ({out['id'][:19]})",
        f"ratio   {report.ratio}x smaller",
        f"files   {report.files['kept']} kept of {report.files['total']} "
        f"({human_size(report.files['kept_size'])} of {human_size(report.files['total_size'])})",
        "probe   " + (", ".join(f"{k}: {v}" for k, v in counts.items() if v) or "none"),
        *[f"api     {a['source']} (port {a['port']}): {a['requests']} of {a['operations']} "
          f"operation(s) requested" for a in report.probe.get("apispecs") or []],
        f"verify  {_verify_line(report.verify)}",
        f"check   {report.selfcheck.get('status')} (every kept interpreter, library and link "
        "target resolves)" if report.selfcheck.get("status") == "passed"
        else f"check   {report.selfcheck.get('status')}: {len(report.selfcheck['findings'])} "
             "finding(s), built with --allow-incomplete",
    ]
    if report.index:
        lines.append(index_text(report.index))
    for title, rows in (("biggest kept dirs", report.biggest_kept_dirs),
                        ("biggest removed dirs", report.biggest_removed_dirs)):
        if rows:
            lines.append(f"{title}:")
            lines.extend(f"  {human_size(r['size']):>9}  {r['path']}" for r in rows)
    if report.excluded:
        lines.append(f"excluded by --exclude-pattern: {len(report.excluded)} path(s)")
    lines.extend(f"warning: {w}" for w in report.warnings)
    lines.append(f"artifacts: {report.artifacts_dir}" if report.artifacts_dir
                 else "artifacts: not kept (--artifacts-dir DIR keeps them)")
    return "\n".join(lines)


def index_text(index: Mapping[str, object]) -> str:
    """One line: which reader indexed the image, why, and what the cache did."""
    reader = {"storage": "storage reader", "export": "docker export stream"}.get(
        str(index.get("reader")), str(index.get("reader")))
    return f"index   {reader} ({index.get('why')}); cache {index.get('cache')}"


def _verify_line(v: Mapping[str, object]) -> str:
    """`passed`, with what was checked: the app's shape, its ports, restart, health."""
    status = str(v.get("status"))
    if status == "skipped" or not v.get("liveness"):
        return status + (f" ({v['reason']})" if v.get("reason") else "")
    live, health = v["liveness"], v.get("health") or {}
    parts = []
    if live["shape"] == "one-shot":
        parts.append(f"one-shot command, exit code {live['original_exit_code']}")
    else:
        ports = ", ".join(str(p) for p in live["ports"])
        parts.append(f"ran {live['required_seconds']:g} s" + (f", ports {ports}" if ports else ""))
    if live["restarted"]:
        parts.append("restarted")
    if health.get("status") in ("passed", "failed", "skipped"):
        parts.append(f"health {health['status']}")
    return f"{status} ({'; '.join(parts)})"


def render_markdown(report: Report) -> str:
    """A before/after table for a GitHub step summary or a merge-request comment."""
    src, out, files = report.source, report.output, report.files
    counts = report.probe.get("counts") or {}
    rows = [
        ("image", f"`{src['image']}`", f"`{out['image']}`"),
        ("size", human_size(src["size"]), human_size(out["size"])),
        ("files", str(files["total"]), str(files["kept"])),
    ]
    lines = [
        "### minify: before / after",
        "",
        "| | before | after |",
        "| --- | --- | --- |",
        *[f"| {name} | {a} | {b} |" for name, a, b in rows],
        "",
        f"**{report.ratio}x smaller**, verification: **{report.verify.get('status')}**, "
        "probe requests: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"),
    ]
    mismatches = report.verify.get("mismatches") or []
    if mismatches:
        lines += ["", "Verification mismatches:", ""]
        lines += [f"- {mismatch_text(m)}" for m in mismatches]
    return "\n".join(lines) + "\n"


def mismatch_text(m: Mapping[str, object]) -> str:
    return str(m.get("text") or m)


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
          "gi": 1024**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """'50MB', '1.5G', '800kB', '1048576' -> bytes (decimal units; KiB/MiB/GiB binary)."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (e.g. 50MB, 1.5GB, 800kB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def threshold_failures(report: Report, min_ratio: Optional[float],
                       max_size: Optional[int]) -> list[str]:
    failures = []
    if min_ratio is not None and report.ratio < min_ratio:
        failures.append(f"ratio {report.ratio}x is below --min-ratio {min_ratio}")
    size = int(report.output["size"])
    if max_size is not None and size > max_size:
        failures.append(f"output size {human_size(size)} is above --max-size "
                        f"{human_size(max_size)}")
    return failures

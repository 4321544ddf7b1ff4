"""The report for people: the text summary on stdout, the Markdown table for a CI job
page, and the --min-ratio/--max-size thresholds, all read from the Report record."""

from __future__ import annotations

import re
from typing import Optional

from minifier.image.indexing import Indexed
from minifier.output.report import Report
from minifier.records import VerifyResult

__all__ = ["render_text", "render_markdown", "index_text", "human_size", "parse_size",
           "threshold_failures"]


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _counts(report: Report, sep: str) -> str:
    return ", ".join(f"{k}{sep}{v}" for k, v in report.probe.counts.items() if v) or "none"


def _check_line(report: Report) -> str:
    check = report.selfcheck
    if check.status == "passed":
        return f"check   {check.status} (every kept interpreter, library and link target resolves)"
    return (f"check   {check.status}: {len(check.findings)} finding(s), built with "
            "--allow-incomplete")


def _placeholders(paths: tuple[str, ...], shown: int = 4) -> str:
    if not paths:
        return ""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return f"; made empty: {', '.join(paths[:shown])}{more}"


def render_text(report: Report) -> str:
    src, out, files = report.source, report.output, report.files
    lines = [
        f"source  {src.image}  {human_size(src.size)}",
        f"output  {out.image}  {human_size(out.size)}  ({out.id[:19]})",
        f"ratio   {report.ratio}x smaller",
        f"files   {files.kept} kept of {files.total} "
        f"({human_size(files.kept_size)} of {human_size(files.total_size)})"
        + _placeholders(files.placeholders),
        "probe   " + _counts(report, ": "),
        *[f"api     {a.source} (port {a.port}): {a.requests} of {a.operations} "
          f"operation(s) requested" for a in report.probe.apispecs],
        *_restart_line(report),
        f"verify  {_verify_line(report.verify)}",
        _check_line(report),
        index_text(report.index),
    ]
    for title, rows in (("biggest kept dirs", report.biggest_kept_dirs),
                        ("biggest removed dirs", report.biggest_removed_dirs)):
        if rows:
            lines.append(f"{title}:")
            lines.extend(f"  {human_size(r.size):>9}  {r.path}" for r in rows)
    if report.excluded:
        lines.append(f"excluded by --exclude-pattern: {len(report.excluded)} path(s)")
    lines.extend(f"warning: {w}" for w in report.warnings)
    lines.append(f"artifacts: {report.artifacts_dir}" if report.artifacts_dir
                 else "artifacts: not kept (--artifacts-dir DIR keeps them)")
    return "\n".join(lines)


def _restart_line(report: Report) -> list[str]:
    """The traced restart after probing: what was done again, or why it was skipped."""
    r = report.observation.restart
    if r is None:
        return []
    if not r.restarts:
        return [f"restart skipped ({r.note})"]
    again = f"{r.requests} HTTP request(s) and {r.execs} exec probe(s) sent again"
    return [f"restart traced once ({again}; {r.seconds:.1f} s)" + (
        "; see the warning" if r.note else "")]


def index_text(index: Indexed) -> str:
    """One line: which reader indexed the image, why, and what the cache did."""
    reader = {"storage": "storage reader", "export": "docker export stream"}.get(
        index.reader, index.reader)
    return f"index   {reader} ({index.why}); cache {index.cache}"


def _verify_line(v: VerifyResult) -> str:
    """`passed`, with what was checked: the app's shape, its ports, restart, health."""
    if v.status == "skipped" or v.liveness is None:
        return v.status + (f" ({v.reason})" if v.reason else "")
    live = v.liveness
    if live.shape == "one-shot":
        parts = [f"one-shot command, exit code {live.original_exit_code}"]
    else:
        ports = ", ".join(str(p) for p in live.ports)
        parts = [f"ran {live.required_seconds:g} s" + (f", ports {ports}" if ports else "")]
    if live.restarted:
        parts.append("restarted")
    if v.health is not None and v.health.status in ("passed", "failed", "skipped"):
        parts.append(f"health {v.health.status}")
    return f"{v.status} ({'; '.join(parts)})"


def render_markdown(report: Report) -> str:
    """A before/after table for a GitHub step summary or a merge-request comment."""
    src, out, files = report.source, report.output, report.files
    rows = [
        ("image", f"`{src.image}`", f"`{out.image}`"),
        ("size", human_size(src.size), human_size(out.size)),
        ("files", str(files.total), str(files.kept + len(files.placeholders))),
    ]
    lines = [
        "### minify: before / after",
        "",
        "| | before | after |",
        "| --- | --- | --- |",
        *[f"| {name} | {a} | {b} |" for name, a, b in rows],
        "",
        f"**{report.ratio}x smaller**, verification: **{report.verify.status}**, "
        "probe requests: " + _counts(report, " "),
    ]
    if report.verify.mismatches:
        lines += ["", "Verification mismatches:", ""]
        lines += [f"- {m.text}" for m in report.verify.mismatches]
    return "\n".join(lines) + "\n"


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
          "gi": 1024**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """'50MB', '1.5G', '800kB', '1048576' -> bytes (decimal units; KiB/MiB/GiB binary)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (e.g. 50MB, 1.5GB, 800kB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def threshold_failures(report: Report, min_ratio: Optional[float],
                       max_size: Optional[int]) -> list[str]:
    failures = []
    if min_ratio is not None and report.ratio < min_ratio:
        failures.append(f"ratio {report.ratio}x is below --min-ratio {min_ratio}")
    size = report.output.size
    if max_size is not None and size > max_size:
        failures.append(f"output size {human_size(size)} is above --max-size "
                        f"{human_size(max_size)}")
    return failures

"""The xray report: one record, its versioned JSON (`minify.xray/v1`), the text and
Markdown renderings, and the CI thresholds.

The JSON keys are pinned by a contract test (tests/unit/test_xray_report.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from minifier.xray.findings import Finding

__all__ = ["SCHEMA", "LayerRow", "XrayReport", "finding_json", "render_text", "render_markdown",
           "threshold_failures", "Thresholds"]

SCHEMA = "minify.xray/v1"
TOP_WASTE = 10


def human_size(n: float) -> str:
    """Decimal units, like `docker images` (and the build report)."""
    for unit in ("B", "kB", "MB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass(frozen=True)
class LayerRow:
    index: int
    diff_id: str
    step: Optional[int]  # history index of the step that made it
    instruction: str
    size: int  # sum of member sizes
    tar_bytes: int
    share: float  # of the image's bytes
    added: int
    modified: int
    deleted: int
    added_bytes: int
    modified_bytes: int
    deleted_bytes: int
    base: bool
    packages: tuple[tuple[str, int], ...] = ()
    dockerfile_line: Optional[int] = None


@dataclass(frozen=True)
class XrayReport:
    image: Mapping[str, object]
    base: Mapping[str, object]
    layers: tuple[LayerRow, ...]
    waste: Mapping[str, object]
    findings: tuple[Finding, ...]
    findings_bytes: int  # every (layer, path) the findings cover, counted once
    packages: Mapping[str, object]
    dockerfile: Mapping[str, object]
    finding_lines: Mapping[str, tuple] = field(default_factory=dict)  # id -> Dockerfile lines
    build_report: Optional[Mapping[str, object]] = None
    timings: Mapping[str, float] = field(default_factory=dict)
    schema: str = SCHEMA

    def to_json(self) -> dict:
        return {
            "schema": self.schema,
            "image": dict(self.image),
            "base": dict(self.base),
            "layers": [_layer_json(r) for r in self.layers],
            "waste": dict(self.waste),
            "findings": [finding_json(f, self.finding_lines.get(f.id, ())) for f in self.findings],
            "findings_bytes": self.findings_bytes,
            "packages": dict(self.packages),
            "dockerfile": dict(self.dockerfile),
            "build_report": dict(self.build_report) if self.build_report else None,
            "timings": dict(self.timings),
        }


def _layer_json(r: LayerRow) -> dict:
    return {"index": r.index, "diff_id": r.diff_id, "step": r.step,
            "instruction": r.instruction, "size": r.size, "tar_bytes": r.tar_bytes,
            "share": round(r.share, 4), "base": r.base,
            "files": {"added": r.added, "modified": r.modified, "deleted": r.deleted},
            "bytes": {"added": r.added_bytes, "modified": r.modified_bytes,
                      "deleted": r.deleted_bytes},
            "packages": [{"name": n, "bytes": b} for n, b in r.packages],
            "dockerfile_line": r.dockerfile_line}


def finding_json(f: Finding, lines: Sequence[Mapping] = ()) -> dict:
    return {"id": f.id, "title": f.title, "category": f.category, "bytes": f.bytes,
            "files": f.files, "fix": f.fix, "detail": f.detail,
            "layers": [{"index": i, "bytes": b} for i, b in f.layers],
            "packages": [{"name": n, "bytes": b} for n, b in f.packages],
            "paths": [{"path": p, "bytes": b} for p, b in f.paths],
            "pairs": [{"layer": a, "by": b, "bytes": n} for a, b, n in f.pairs],
            "dockerfile_lines": [dict(x) for x in lines]}


def _size(n: Optional[int]) -> str:
    return "unmeasured" if n is None else human_size(n)


def _short(text: str, width: int = 78) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _layers_text(report: XrayReport) -> list[str]:
    lines = ["layers:", f"  {'#':>3} {'size':>9} {'share':>6} {'+add':>6} {'~mod':>5} "
             f"{'-del':>5}  instruction"]
    for r in report.layers:
        mark = " (base)" if r.base else ""
        lines.append(f"  {r.index:>3} {human_size(r.size):>9} {r.share:>6.1%} {r.added:>6} "
                     f"{r.modified:>5} {r.deleted:>5}  {_short(r.instruction or '-', 60)}{mark}")
    return lines


def _waste_text(report: XrayReport) -> list[str]:
    w = report.waste
    lines = [f"waste (dive's definitions): efficiency {w['efficiency']:.4f}, wasted "
             f"{human_size(w['wasted_bytes'])} ({w['user_wasted_percent']:.1%} of the bytes above "
             f"the first layer), {len(w['files'])} path(s) in more than one layer"]
    for f in w["files"][:TOP_WASTE]:
        lines.append(f"  {human_size(f['bytes']):>9}  x{f['references']}  {f['path']}")
    hidden = w["hidden"]
    lines.append(f"hidden by later layers: {human_size(hidden['deleted_bytes'])} deleted, "
                 f"{human_size(hidden['overwritten_bytes'])} overwritten")
    for p in hidden["pairs"][:TOP_WASTE]:
        lines.append(f"  layer {p['layer']} -> {p['by']}: {human_size(p['deleted_bytes'])} "
                     f"deleted, {human_size(p['overwritten_bytes'])} overwritten "
                     f"({p['files']} file(s))")
    return lines


def _findings_text(report: XrayReport) -> list[str]:
    lines = [f"findings (bytes each fix saves; together {human_size(report.findings_bytes)}, "
             "each byte counted once):"]
    if not report.findings:
        lines.append("  none")
    for f in report.findings:
        layers = ", ".join(str(i) for i, _ in f.layers[:8]) + (" ..." if len(f.layers) > 8 else "")
        lines.append(f"  {_size(f.bytes):>10}  {f.id}: {f.title}"
                     + (f" [layers {layers}]" if layers else ""))
        if f.detail:
            lines.append(f"              {f.detail}")
        lines.append(f"              fix: {f.fix}")
        if f.packages:
            lines.append("              packages: " + ", ".join(
                f"{n} {human_size(b)}" for n, b in f.packages[:5]))
        for ln in report.finding_lines.get(f.id, ())[:3]:
            lines.append(f"              {report.dockerfile['path']}:{ln['line']}: "
                         f"{_short(ln['instruction'], 60)}")
    return lines


def _side_text(side: Mapping, layers_bytes: int) -> list[str]:
    left = layers_bytes - side["classic_bytes"]
    lines = [f"next to `minify build` ({side['report']}, verification {side['verify']}):",
             f"  classic fixes save {human_size(side['classic_bytes'])} of the layers' "
             f"{human_size(layers_bytes)} (left: {human_size(left)})",
             f"  the minified image {side['minified_image']} is "
             f"{human_size(side['minified_size'] or 0)}: {side['minified_kept_files']} file(s), "
             f"{human_size(side['minified_kept_bytes'] or 0)}"]
    for row in side["rows"]:
        lines.append(f"  {row['finding']:<20} fix saves {human_size(row['bytes']):>9}; minify "
                     f"keeps {human_size(row['minified_keeps_bytes']):>9} of those files")
    return lines


def render_text(report: XrayReport) -> str:
    img, base = report.image, report.base
    lines = [
        f"image   {img['ref']}  {str(img['id'])[:19]}  {human_size(img['size'])} in "
        f"{len(report.layers)} layer(s)",
        "base    " + (f"{base['image'] or '(unnamed)'}: {base['layers']} layer(s), "
                      f"{human_size(base['bytes'])} = {base['share']:.1%} of the image "
                      f"({base['method']})" if base["layers"] else base["method"]),
        f"read    {img['layer_source']['kind']}: {img['layer_source']['why']}",
        f"os      {report.packages.get('os') or 'unknown'}; packages: "
        + (f"{report.packages['count']} ({report.packages['manager']})"
           if report.packages.get("manager") else "no package database"),
        "",
        *_layers_text(report), "",
        *_waste_text(report), "",
        *_findings_text(report),
    ]
    if report.build_report:
        lines += ["", *_side_text(report.build_report, int(img["layers_bytes"]))]
    lines += ["", "Dockerfile (reconstructed from the history):"]
    lines += ["  " + ln for ln in str(report.dockerfile["reconstructed"]).splitlines()]
    return "\n".join(lines)


def render_markdown(report: XrayReport) -> str:
    img, w = report.image, report.waste
    lines = [
        f"### minify xray: `{img['ref']}`", "",
        f"{human_size(img['size'])} in {len(report.layers)} layers; efficiency "
        f"**{w['efficiency']:.4f}**, wasted **{human_size(w['wasted_bytes'])}** (dive's "
        f"definitions); the fixes below save **{human_size(report.findings_bytes)}**.", "",
        "| finding | bytes | layers | fix |", "| --- | ---: | --- | --- |",
    ]
    for f in report.findings:
        layers = ", ".join(str(i) for i, _ in f.layers[:8])
        lines.append(f"| {f.title} | {_size(f.bytes)} | {layers} | "
                     f"{f.fix.replace('|', '/')} |")
    if report.build_report:
        side = report.build_report
        lines += ["", f"Next to `minify build`: classic fixes save "
                  f"{human_size(side['classic_bytes'])}; the minified image is "
                  f"{human_size(side['minified_size'] or 0)}."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Thresholds:
    max_waste: Optional[int] = None
    min_efficiency: Optional[float] = None
    max_finding: tuple[tuple[str, int], ...] = ()  # (finding id or "", bytes)


def _exact(n: int) -> str:
    return f"{n} bytes ({human_size(n)})"


def threshold_failures(report: XrayReport, limits: Thresholds) -> list[str]:
    w = report.waste
    failures = []
    if limits.max_waste is not None and w["wasted_bytes"] > limits.max_waste:
        failures.append(f"wasted {_exact(w['wasted_bytes'])} is above --max-waste "
                        f"{_exact(limits.max_waste)}")
    if limits.min_efficiency is not None and w["efficiency"] < limits.min_efficiency:
        failures.append(f"efficiency {w['efficiency']:.4f} is below --min-efficiency "
                        f"{limits.min_efficiency}")
    for rule, limit in limits.max_finding:
        for f in report.findings:
            if (not rule or f.id == rule) and (f.bytes or 0) > limit:
                failures.append(f"finding {f.id} saves {_exact(f.bytes or 0)}, above "
                                f"--max-finding-bytes {rule + '=' if rule else ''}"
                                f"{_exact(limit)}")
    return failures

"""From the saved image to the xray report: a pure function over plain records.

Reads top to bottom: stack the layers, dive's waste, the package database, the
findings (rules, hidden versions, lighter bases, layer count), the base image, the
Dockerfile (reconstructed, and mapped when one is given), the side-by-side with a
build report when one is given.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from minifier.xray import dockerfile as df
from minifier.xray.base import (
    BaseCandidate,
    BaseInfo,
    entry_program,
    find_base,
    lighter_bases,
    os_release,
)
from minifier.xray.compare import side_by_side
from minifier.xray.findings import (
    Finding,
    evaluate_rules,
    layer_count_finding,
    union_bytes,
    waste_findings,
)
from minifier.xray.layers import FILE, SavedImage
from minifier.xray.overlay import Stack, stack
from minifier.xray.packages import PackageDB, read_packages
from minifier.xray.report import LayerRow, XrayReport
from minifier.xray.waste import DiveWaste, dive_waste

__all__ = ["XrayInput", "analyze"]


@dataclass(frozen=True)
class XrayInput:
    ref: str
    image_id: str
    image_size: int  # what `docker image inspect` says
    saved: SavedImage
    candidates: tuple[BaseCandidate, ...] = ()
    dockerfile: Optional[tuple[str, str]] = None  # (path, text)
    build_report: Optional[tuple[str, Mapping]] = None  # (path, checked document)
    layer_source: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {"kind": "save", "why": ""})


def _final_captured(saved: SavedImage, st: Stack) -> dict[str, bytes]:
    """The captured contents of the versions the final filesystem shows."""
    out = {}
    for index, layer in enumerate(saved.layers):
        for path, data in layer.captured.items():
            placed = st.view.get(path)
            if placed is not None and placed.layer == index:
                out[path] = data
    return out


def _waste_json(dive: DiveWaste, st: Stack) -> dict:
    pairs: dict = {}
    for s in st.shadowed:
        row = pairs.setdefault((s.layer, s.by), {"layer": s.layer, "by": s.by,
                                                 "deleted_bytes": 0, "overwritten_bytes": 0,
                                                 "files": 0})
        row[f"{s.how}_bytes"] += s.size
        row["files"] += 1
    return {
        "efficiency": dive.efficiency, "wasted_bytes": dive.wasted_bytes,
        "user_wasted_percent": dive.user_wasted_percent, "size_bytes": dive.size_bytes,
        "files": [{"path": f.path, "references": f.references, "bytes": f.bytes}
                  for f in dive.files],
        "hidden": {
            "deleted_bytes": sum(s.size for s in st.shadowed if s.how == "deleted"),
            "overwritten_bytes": sum(s.size for s in st.shadowed if s.how == "overwritten"),
            "pairs": sorted(pairs.values(), key=lambda r: (-(r["deleted_bytes"]
                                                            + r["overwritten_bytes"]),
                                                          r["layer"], r["by"])),
        },
    }


def _layer_rows(saved: SavedImage, st: Stack, steps: Sequence[df.Step], base: BaseInfo,
                packages: PackageDB, mapping: Mapping[int, df.Instruction]) -> tuple:
    by_layer = {s.layer: s for s in steps if s.layer is not None}
    total = sum(layer.content_bytes for layer in saved.layers) or 1
    rows = []
    for i, layer in enumerate(saved.layers):
        step = by_layer.get(i)
        owners: Counter = Counter()
        if packages.manager:
            for e in layer.entries:
                if e.kind == FILE and packages.owner(e.path):
                    owners[packages.owner(e.path)] += e.size
        c = st.changes[i]
        line = mapping.get(step.index).line if step and step.index in mapping else None
        rows.append(LayerRow(
            index=i, diff_id=saved.diff_ids[i] if i < len(saved.diff_ids) else "",
            step=step.index if step else None,
            instruction=(step.instruction or (f"({step.comment})" if step.comment else ""))
            if step else "",
            size=layer.content_bytes, tar_bytes=layer.tar_bytes,
            share=layer.content_bytes / total, added=c.added, modified=c.modified,
            deleted=c.deleted, added_bytes=c.added_bytes, modified_bytes=c.modified_bytes,
            deleted_bytes=c.deleted_bytes, base=i < base.layers,
            packages=tuple(owners.most_common(3)), dockerfile_line=line))
    return tuple(rows)


def _finding_lines(findings: Sequence[Finding], steps: Sequence[df.Step], base: BaseInfo,
                   instructions: Sequence[df.Instruction],
                   mapping: Mapping[int, df.Instruction]) -> dict[str, tuple]:
    by_layer = {s.layer: s for s in steps if s.layer is not None}
    origin = df.from_line(instructions)
    out = {}
    for f in findings:
        seen, lines = set(), []
        for layer, _ in f.layers:
            step = by_layer.get(layer)
            ins = origin if layer < base.layers else (
                mapping.get(step.index) if step else None)
            if ins is not None and ins.line not in seen:
                seen.add(ins.line)
                lines.append({"line": ins.line, "end_line": ins.end_line,
                              "instruction": f"{ins.keyword} {ins.args}".split("\n")[0]})
        out[f.id] = tuple(sorted(lines, key=lambda x: x["line"]))
    return out


def _order(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (f.bytes is None, -(f.bytes or 0), f.id)))


def analyze(inp: XrayInput) -> XrayReport:
    saved = inp.saved
    layers = saved.layers
    st = stack(layers)
    dive = dive_waste(layers)
    captured = _final_captured(saved, st)
    packages = read_packages(captured, st.view)
    release = os_release(captured)
    history = list(saved.config.get("history") or [])
    steps = df.history_steps(history)
    base = find_base(saved.diff_ids, inp.candidates, history, layers)
    program = entry_program(saved.config.get("config") or {}, st, captured)
    findings = [*evaluate_rules(layers, packages), *waste_findings(st),
                *lighter_bases(base, program, release, layers)]
    many = layer_count_finding(layers, base.layers)
    findings = _order(findings + ([many] if many else []))
    instructions = df.parse_dockerfile(inp.dockerfile[1]) if inp.dockerfile else []
    mapping = df.align([s for s in steps[base.history:] if s.instruction], instructions)
    union = union_bytes(findings, layers)
    config = saved.config.get("config") or {}
    return XrayReport(
        image={"ref": inp.ref, "id": inp.image_id, "size": inp.image_size,
               "layers_bytes": dive.size_bytes,
               "tar_bytes": None if any(x.tar_bytes is None for x in layers)
               else sum(x.tar_bytes for x in layers),
               "layer_source": dict(inp.layer_source),
               "os": saved.config.get("os", ""),
               "architecture": saved.config.get("architecture", ""),
               "entrypoint": list(config.get("Entrypoint") or []),
               "cmd": list(config.get("Cmd") or []),
               "program": {"argv0": program.argv0, "path": program.path,
                           "elf_interpreter": program.interp, "shebang": program.shebang}},
        base={"image": base.image, "method": base.method, "layers": base.layers,
              "history": base.history, "bytes": base.bytes, "share": round(base.share, 4)},
        layers=_layer_rows(saved, st, steps, base, packages, mapping),
        waste=_waste_json(dive, st),
        findings=findings, findings_bytes=union,
        packages={"manager": packages.manager, "count": len(packages.packages),
                  "os": release.get("PRETTY_NAME", "")},
        dockerfile={"reconstructed": df.reconstruct(steps, base.image, base.history),
                    "path": inp.dockerfile[0] if inp.dockerfile else None,
                    "mapped_steps": len(mapping)},
        finding_lines=_finding_lines(findings, steps, base, instructions, mapping)
        if instructions else {},
        build_report=side_by_side(inp.build_report[1], findings, st, union,
                                  inp.build_report[0]) if inp.build_report else None,
    )

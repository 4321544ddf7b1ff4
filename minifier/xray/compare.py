"""Side by side: what the classic fixes would save vs what `minify build` kept.

Input is the JSON report of a `minify build` of the same image (`minify.report/v2`, or
v1 of an earlier minify: the keys read here are the same in both).
For each finding, the bytes of its files that are in the final filesystem and that
the minified image still carries; versions hidden by later layers are never carried
(the minified image is built from the final filesystem).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from minifier.errors import UsageError
from minifier.jsonsafe import exact
from minifier.xray.findings import Finding
from minifier.xray.overlay import Stack

__all__ = ["BUILD_SCHEMAS", "check_build_report", "side_by_side"]

# xray reads reports, it does not import the build's output package: the schema strings
# are spelled here, and a unit test keeps the first equal to the one the build writes.
BUILD_SCHEMAS = ("minify.report/v2", "minify.report/v1")


def check_build_report(doc: object, image_id: str, path: str) -> Mapping:
    if not isinstance(doc, dict) or doc.get("schema") not in BUILD_SCHEMAS:
        raise UsageError(f"--build-report {path}: not a minify build report "
                         f"(schema {BUILD_SCHEMAS[0]})")
    source = doc.get("source") or {}
    if source.get("id") != image_id:
        raise UsageError(f"--build-report {path} is a report of {source.get('image')} "
                         f"({str(source.get('id'))[:19]}), not of this image ({image_id[:19]})")
    return doc


def side_by_side(doc: Mapping, findings: Sequence[Finding], stack: Stack,
                 union: int, path: str) -> dict:
    kept = {exact(k, "path"): int(k.get("size") or 0) for k in doc.get("kept") or []}
    rows = []
    for f in findings:
        if not f.bytes:
            continue  # not measured, or nothing to save (many-layers)
        final = {p for (layer, p) in f.members
                 if p in stack.view and stack.view[p].layer == layer}
        if f.id == "base-scratch":
            final = {p for p, placed in stack.files() if placed.layer < len(f.layers)}
        carried = sorted(p for p in final if p in kept)
        rows.append({"finding": f.id, "bytes": f.bytes,
                     "minified_keeps_bytes": sum(kept[p] for p in carried),
                     "minified_keeps_files": len(carried),
                     "minified_keeps_paths": carried[:5]})
    files = doc.get("files") or {}
    return {
        "report": path,
        "source_size": (doc.get("source") or {}).get("size"),
        "minified_image": (doc.get("output") or {}).get("image"),
        "minified_size": (doc.get("output") or {}).get("size"),
        "minified_kept_bytes": files.get("kept_size"),
        "minified_kept_files": files.get("kept"),
        "final_files_bytes": files.get("total_size"),
        "classic_bytes": union,
        "verify": (doc.get("verify") or {}).get("status"),
        "rows": rows,
    }

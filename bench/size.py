"""Size: the output image against the bytes of the files kept, and bytes per closure reason.

nginx and python reuse the reports of the build-time runs; busybox, quirks and jq (an
exec probe, no HTTP) are built here, then their output images are removed.
"""

from __future__ import annotations

from collections import Counter

from minifier.options import BuildOptions, OutputOptions, ProbeSetup
from probes import ContinueAfter

from .buildtime import minify_build
from .common import SANDBOX, log, mb, remove_image

TARGET_RATIO = 1.05
EXTRA = ("busybox", "quirks", "jq")


def _jq_options(tag: str) -> BuildOptions:
    probe = ProbeSetup(http=None, execs=(("jq", ".name", "/data/sample.json"),),
                       continue_after=ContinueAfter("exec", None))
    return BuildOptions(image=SANDBOX["jq"], probe=probe, output=OutputOptions(tag=tag))


def _build(c, name: str) -> dict:
    from minifier.pipeline import build
    from minifier.ui import Progress

    tag = f"minify-bench/{name}-min:latest"
    try:
        if name == "jq":
            report = build(c, _jq_options(tag), Progress(quiet=True)).to_json()
        else:
            report, _ = minify_build(c, SANDBOX[name], tag)
    finally:
        remove_image(c, tag)
    return report


def analyse(report: dict) -> dict:
    first: Counter = Counter()
    each: Counter = Counter()
    beyond: Counter = Counter()  # kept although the app never touched them
    for k in report["kept"]:
        reasons = k["reasons"] or ["?"]
        first[reasons[0]] += k["size"]
        for r in set(reasons):
            each[r] += k["size"]
        if "accessed" not in reasons:
            beyond[reasons[0]] += k["size"]
    out_size = int(report["output"]["size"])
    kept = int(report["files"]["kept_size"])
    ratio = out_size / kept if kept else 0.0
    return {"source_size": report["source"]["size"], "output_size": out_size,
            "kept_size": kept, "kept_files": report["files"]["kept"],
            "total_files": report["files"]["total"], "ratio": round(ratio, 4),
            "met": ratio <= TARGET_RATIO, "verify": report["verify"]["status"],
            "by_first_reason": dict(first.most_common()),
            "by_each_reason": dict(each.most_common()),
            "not_accessed_by_reason": dict(beyond.most_common())}


def run(c, reports: dict) -> dict:
    reports = dict(reports)
    errors = {}
    for name in EXTRA:
        log(f"size: minify build {name}")
        try:
            reports[name] = _build(c, name)
        except Exception as exc:  # noqa: BLE001 - a failed sample is a result, not a crash
            errors[name] = repr(exc)
            log(f"size: {name} failed: {exc!r}")
    return {"images": {n: analyse(r) for n, r in reports.items()}, "errors": errors}


def _kb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "source", "output", "kept files (bytes)", "output/kept (target <= 1.05)",
               "size", "bytes per reason (a file counts for each of its reasons)",
               "kept but never accessed"]
    rows = []
    for name, a in res["images"].items():
        by = ", ".join(f"{r} {_kb(v)}" for r, v in a["by_each_reason"].items() if v)
        beyond = ", ".join(f"{r} {_kb(v)}" for r, v in a["not_accessed_by_reason"].items() if v)
        rows.append([name, mb(a["source_size"]), mb(a["output_size"]),
                     f"{mb(a['kept_size'])} ({a['kept_files']} of {a['total_files']})",
                     f"{a['ratio']:.4f}", "met" if a["met"] else "NOT met", by or "-",
                     beyond or "0"])
    for name, err in res.get("errors", {}).items():
        rows.append([name, "-", "-", "-", "-", "failed", err[:80], "-"])
    return headers, rows

"""Size: what the minified images keep, by closure reason (informative, no target).

The old target "output size <= 1.05 x the bytes of the kept files" held by construction
(the layer is written from the kept list, and Docker's image Size is the sum of file
contents), so it is gone; what is left is the accounting: source and output sizes, the
bytes each closure reason brought, and what was kept although the app never touched it.
Every image is built with `minify build` as its own process; outputs are removed after.
"""

from __future__ import annotations

from collections import Counter

from .common import SANDBOX, log, mb, minify_cli, remove_image

IMAGES = ("nginx", "python", "busybox", "quirks", "jq", "layers")
JQ_ARGS = ["--no-http-probe", "--exec", "jq .name /data/sample.json"]


def _build(c, name: str) -> dict:
    tag = f"minify-bench/{name}-min:latest"
    args = [*(JQ_ARGS if name == "jq" else []), "--no-cache", SANDBOX[name]]
    try:
        return minify_cli(args, tag, full_report=True)
    finally:
        remove_image(c, tag)


def analyse(report: dict) -> dict:
    each: Counter = Counter()
    beyond: Counter = Counter()  # kept although the app never touched them
    for k in report["kept"]:
        reasons = k["reasons"] or ["?"]
        for r in set(reasons):
            each[r] += k["size"]
        if "accessed" not in reasons:
            beyond[reasons[0]] += k["size"]
    return {"source_size": report["source"]["size"], "output_size": report["output"]["size"],
            "kept_size": report["files"]["kept_size"], "kept_files": report["files"]["kept"],
            "total_files": report["files"]["total"], "verify": report["verify"]["status"],
            "by_each_reason": dict(each.most_common()),
            "not_accessed_by_reason": dict(beyond.most_common())}


def run(c) -> dict:
    images, errors, cmds = {}, {}, {}
    for name in IMAGES:
        log(f"size: minify build {name}")
        res = _build(c, name)
        cmds[name] = res["cmd"]
        if res["exit_code"] != 0:
            errors[name] = res["stderr_tail"][-300:]
            continue
        images[name] = analyse(res["report"])
    return {"images": images, "errors": errors, "commands": cmds}


def _kb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "source", "output", "kept files (bytes)", "verify",
               "bytes per reason (a file counts for each of its reasons)",
               "kept but never accessed"]
    rows = []
    for name, a in res["images"].items():
        by = ", ".join(f"{r} {_kb(v)}" for r, v in a["by_each_reason"].items() if v)
        beyond = ", ".join(f"{r} {_kb(v)}" for r, v in a["not_accessed_by_reason"].items() if v)
        rows.append([name, mb(a["source_size"]), mb(a["output_size"]),
                     f"{mb(a['kept_size'])} ({a['kept_files']} of {a['total_files']})",
                     a["verify"], by or "-", beyond or "0"])
    for name, err in res.get("errors", {}).items():
        rows.append([name, "-", "-", "-", "failed", err[:80], "-"])
    return headers, rows

"""xray: `minify xray` of the 1 GB / 100k-file scale image vs one `docker export` of it.

    BENCH_ONLY=xray .venv/bin/python -m bench

Per rep, in this order: `docker export` of a created container to /dev/null (the
engine producing the image's files once, as a tar); `minify xray --json` as a
subprocess through bench.rss_wrapper (wall time, peak RSS), by default (the overlay2
directories read in place where this machine can) and with `--layer-source save`; and
`docker save` to /dev/null (the engine's part of the save path: it writes every layer
to a temporary directory before it streams the first byte). Medians of
BENCH_XRAY_REPS (default 2).
Target: xray <= 1.2 x the export; peak RSS flat in the image's bytes (no layer is held:
per-path records only), shown by a 1 GB image of 10k files next to the 100 MB one of
10k files (and the 1 GB one of 100k files: RSS follows the number of files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from . import scale
from .common import BENCH_LABEL, HERE, log, median

TARGET_RATIO = 1.2
# name, files, bytes per file: the 1 GB image of the target, the same files at a tenth
# of the bytes, and the same bytes in a tenth of the files (RSS follows files, not bytes)
SIZES = (("1g", 100_000, scale.FILE_SIZE), ("100m", 10_000, scale.FILE_SIZE),
         ("1g-10k", 10_000, 10 * scale.FILE_SIZE))


def _timed(cmd: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def _export(c, tag: str) -> float:
    container = c.containers.create(tag, command=["/none"], labels=dict(BENCH_LABEL))
    try:
        return _timed(["docker", "export", container.id])
    finally:
        container.remove(force=True)


def _xray(tag: str, source: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="minify-bench-") as d:
        rss_path = os.path.join(d, "rss.json")
        cmd = [sys.executable, "-m", "bench.rss_wrapper", rss_path, "xray", "--json",
               "--layer-source", source, tag]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(HERE))
        wall = time.monotonic() - t0
        with open(rss_path) as f:
            rss = json.load(f)
    report = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return {"wall_s": round(wall, 3), "exit_code": proc.returncode,
            "source": report.get("image", {}).get("layer_source", {}).get("kind"),
            "maxrss_bytes": rss.get("maxrss_bytes"), "cpu_s": rss.get("cpu_s"),
            "timings": report.get("timings", {}),
            "files": sum(r["files"]["added"] for r in report.get("layers", [])),
            "stderr_tail": proc.stderr[-2000:] if proc.returncode else ""}


def _median_run(runs: list) -> dict:
    """The run whose wall time is the median (its stage times are shown)."""
    return sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]


def measure(c, name: str, reps: int) -> dict:
    tag = scale.tag_for(name)
    exports, saves, runs, via_save = [], [], [], []
    for _ in range(reps):
        exports.append(_export(c, tag))
        runs.append(_xray(tag, "auto"))
        via_save.append(_xray(tag, "save"))
        saves.append(_timed(["docker", "save", tag]))  # stdout is /dev/null
    image = c.images.get(tag)
    export_s = median(exports)
    typical, typical_save = _median_run(runs), _median_run(via_save)
    xray_s = median([r["wall_s"] for r in runs])
    save_xray_s = median([r["wall_s"] for r in via_save])
    return {"image": tag, "image_size": int(image.attrs.get("Size") or 0),
            "files": runs[-1]["files"], "export_s": round(export_s, 3),
            "save_s": round(median(saves), 3), "xray_s": round(xray_s, 3),
            "source": runs[-1]["source"], "xray_save_s": round(save_xray_s, 3),
            "ratio": round(xray_s / export_s, 3) if export_s else None,
            "save_ratio": round(save_xray_s / export_s, 3) if export_s else None,
            "maxrss_bytes": max(r["maxrss_bytes"] or 0 for r in runs + via_save),
            "timings": typical["timings"], "save_timings": typical_save["timings"],
            "runs": runs + via_save, "exports_s": exports, "saves_s": saves}


def run(c, reps: int = 2) -> dict:
    rows = {}
    for name, files, file_size in SIZES:
        scale.generate(c, name, files, file_size)
        n = reps if name == "1g" else 1
        log(f"xray: {scale.tag_for(name)} ({n} rep(s) of export, xray, save)")
        rows[name] = measure(c, name, n)
    big = rows["1g"]
    ok = all(r["exit_code"] == 0 for r in big["runs"])
    return {"sizes": rows, "target_ratio": TARGET_RATIO,
            "met": bool(ok and big["ratio"] is not None and big["ratio"] <= TARGET_RATIO)}


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "size", "files", "docker export", "minify xray, storage (read / analyze)",
               "xray / export (target <= 1.2 at 1 GB)", "docker save",
               "minify xray --layer-source save (read / analyze)", "save xray / export",
               "peak RSS"]
    rows = []
    for r in res["sizes"].values():
        t, ts = r["timings"], r["save_timings"]
        rows.append([r["image"], f"{r['image_size'] / 1e6:.0f} MB", r["files"],
                     f"{r['export_s']:.1f} s",
                     f"{r['xray_s']:.1f} s ({t.get('read', 0):.1f} / {t.get('analyze', 0):.1f})"
                     f" [{r['source']}]", f"{r['ratio']:.2f}x", f"{r['save_s']:.1f} s",
                     f"{r['xray_save_s']:.1f} s ({ts.get('read', 0):.1f} / "
                     f"{ts.get('analyze', 0):.1f})", f"{r['save_ratio']:.2f}x",
                     f"{(r['maxrss_bytes'] or 0) / 2**20:.0f} MiB"])
    return headers, rows

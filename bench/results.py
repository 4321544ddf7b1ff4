"""Render bench results: the tables (stdout) and bench/RESULTS.md.

RESULTS.md is regenerated on every run: machine info, each section's table with the
command that produced it and the commands it timed, every target with measured / limit /
met, then bench/analysis.md (hand-written interpretation of a run) appended verbatim.
The raw numbers, every repetition, are in bench/results.json next to it.
"""

from __future__ import annotations

import os

from . import buildtime, overhead, scale, size, xray
from .common import HERE, table

RUN = ".venv/bin/python -m bench"
SECTIONS = (
    ("overhead", "1. Tracer overhead", f"BENCH_ONLY=overhead {RUN}",
     "Target: traced rps >= 0.7 x untraced; traced readiness within 3x of untraced. Median "
     "of the runs; load: fixed request count, fixed thread count, loopback. Tracer CPU is "
     "the tracer process's own (utime+stime of /proc/PID/stat over the measured load).",
     overhead.render),
    ("buildtime", "2. Build time of the sample apps", f"BENCH_ONLY=buildtime {RUN}",
     "Target: `minify build` (verification included) <= 2 x baseline (c) = (a) `docker "
     "export` of the image to /dev/null + (b) plain `docker run`, the build's requests, "
     "`docker kill` + one verification run (on the minified image, as minify's verification "
     "runs it: requests, liveness hold, `docker restart`, requests again), rep by rep. "
     "Median (min-max) of interleaved repetitions.",
     buildtime.render),
    ("size", "3. What is kept", f"BENCH_ONLY=size {RUN}",
     "Informative (no target: output/kept bytes held by construction). Bytes per closure "
     "reason from the report's `kept[]`.",
     size.render),
    ("scale", "4. Scale: 100 MB to 5 GB", f"BENCH_ONLY=scale {RUN}",
     "Generated images (busybox + N files of 10 kB), trivial app. Median (min-max) of "
     "interleaved repetitions; `x one export` is each build over the export of the same "
     "repetition. Peak RSS: the minify process and the tracer process, each its own "
     "(VmHWM since exec).",
     scale.render),
    ("xray", "5. xray", f"BENCH_ONLY=xray {RUN}",
     "Target: `minify xray` of the 1 GB / 100k-file scale image <= 1.2 x one `docker export` "
     "of it to /dev/null; peak RSS flat in the image's bytes. xray reads the overlay2 layer "
     "directories in place by default; `--layer-source save` (any engine) streams one `docker "
     "save`, whose own time is shown. Medians of the reps.",
     xray.render),
)


_TIMED = {"buildtime": ("images", ("export", "minify", "cached", "run", "verify", "peer")),
          "scale": ("sizes", ("export", "storage", "cached", "fallback", "run", "verify",
                              "peer"))}


def _commands(key: str, res: dict) -> list[str]:
    """The commands a section timed, as run (IMAGE/TAG as in the raw results)."""
    if key == "size":
        found = list(res.get("commands", {}).values())
    elif key in _TIMED:
        group, kinds = _TIMED[key]
        found = [(r.get(k) or {}).get("cmd", "") for a in res[group].values()
                 for r in a.get("runs", [])[:1] for k in kinds]
    else:
        found = []
    return list(dict.fromkeys(c for c in found if c))


def _targets(doc: dict) -> list[list]:
    rows = []
    ov = doc.get("overhead")
    if ov:
        for name, a in ov["apps"].items():
            rows.append([f"traced/untraced rps, {name}", f"{a['rps_ratio']:.2f}", ">= 0.7",
                         "met" if a["rps_met"] else "NOT met"])
            rows.append([f"traced/untraced readiness, {name}", f"{a['ready_ratio']:.2f}x",
                         "<= 3x", "met" if a["ready_met"] else "NOT met"])
    bt = doc.get("buildtime")
    if bt:
        for name, a in bt["images"].items():
            med = a["ratio"]["median"]
            rows.append([f"build / baseline (c), {name}", "-" if med is None else f"{med:.2f}x",
                         "<= 2x", "met" if a["met"] else "NOT met"])
    xr = doc.get("xray")
    if xr and "1g" in xr.get("sizes", {}):
        ratio = xr["sizes"]["1g"].get("ratio")
        rows.append(["xray of the 1 GB image / one docker export",
                     "-" if ratio is None else f"{ratio:.2f}x", f"<= {xr['target_ratio']}x",
                     "met" if xr["met"] else "NOT met"])
    sc = doc.get("scale")
    if sc:
        for t in sc["targets"]:
            m, lim = t["measured"], t["limit"]
            rss = "RSS of minify" in t["target"]
            shown = "-" if m is None else (f"{m / 2**20:.0f} MiB" if rss else f"{m:.2f}x")
            limit = f"{lim / 2**20:.0f} MiB" if rss else f"{lim}x"
            rows.append([t["target"], shown, f"<= {limit}",
                         "not measured" if t["met"] is None else
                         ("met" if t["met"] else "NOT met")])
    return rows


def render_tables(doc: dict) -> str:
    out = []
    for key, title, command, target, render in SECTIONS:
        if key not in doc:
            out.append(f"## {title}\n\n(not run)\n")
            continue
        headers, rows = render(doc[key])
        text = f"## {title}\n\nProduced by `{command}`. {target}\n\n{table(headers, rows)}\n"
        if key == "buildtime":
            h, r = buildtime.stage_rows(doc[key])
            text += f"\nStages of the minify build (report `timings`):\n\n{table(h, r)}\n"
        cmds = _commands(key, doc[key])
        if cmds:
            text += "\nCommands timed:\n\n" + "\n".join(f"- `{c}`" for c in cmds) + "\n"
        out.append(text)
    return "\n".join(out)


def render_markdown(doc: dict) -> str:
    m = doc["machine"]
    mem = m.get("memory_bytes", 0) / 2**30
    head = [
        "# minify benchmark results",
        "",
        f"Generated by `{RUN}` (`make bench`); every repetition's raw numbers are in "
        "`bench/results.json`. Do not edit by hand: the interpretation comes from "
        "`bench/analysis.md`.",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| date | {m.get('date')} |",
        f"| cores | {m.get('cores')} ({m.get('cpu')}) |",
        f"| memory | {mem:.1f} GiB |",
        f"| kernel | {m.get('kernel')} |",
        f"| Docker | {m.get('docker')} ({m.get('storage_driver')}) |",
        f"| Python | {m.get('python')}, minify {m.get('minify')} |",
        f"| load average at start | {m.get('loadavg', '-')} |",
        f"| bench wall time | {m.get('bench_seconds')} s |",
        "",
        "## Targets",
        "",
        table(["target", "measured (median)", "limit", "verdict"], _targets(doc)),
        "",
    ]
    body = render_tables(doc)
    analysis = ""
    path = os.path.join(HERE, "analysis.md")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            analysis = "\n" + f.read()
    return "\n".join(head) + "\n" + body + analysis

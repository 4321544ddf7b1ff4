"""Build time: `minify build` per stage, in-process, against the same steps untraced.

The minify side runs minifier.pipeline.build and reads report.timings (one entry per
Progress stage). The baseline does, without any tracing or analysis, the engine and
network work a build cannot avoid:

  index    docker export of a created container, read through tarfile (no indexing)
  run      plain `docker run`, wait for the first HTTP answer, replay the build's
           recorded probe requests, remove the container
  rebuild  docker export again, keep only the report's kept paths in a tar,
           `docker import` that tar (then remove the imported image)
  verify   what verification has to do anyway: plain runs of the original and of the
           minified image, each with the recorded requests replayed, then `docker
           restart` (the same grace rule as verification) and the requests again; the
           minified one also kept running for as long as the app ran while observed

Then the minified image (tag minify-bench/<name>-min:latest) is removed.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import time

import probes
from minifier.engine import inspect_image
from minifier.image.imagefs import iter_members
from minifier.image.source import DockerExportSource
from minifier.observe.appspec import stop_signal
from minifier.options import BuildOptions, OutputOptions
from minifier.pipeline import build
from minifier.procfs import catches_signal
from minifier.ui import Progress
from probes import RequestResult, Target

from .common import (
    SANDBOX,
    alive_check,
    log,
    median,
    published,
    remove_container,
    remove_image,
    run_plain,
)

IMAGES = (("nginx", SANDBOX["nginx"], 80), ("python", SANDBOX["python"], 8080))
TARGET_RATIO = 2.0
# minify stage -> baseline step it is compared with
STAGE_GROUPS = (
    ("inspect+index", ("inspect", "index"), "index"),
    ("run+ready+probe+stop", ("run", "ready", "probe", "stop"), "run"),
    ("plan", ("plan",), None),
    ("rebuild", ("rebuild",), "rebuild"),
    ("verify", ("verify",), "verify"),
)


def minify_build(c, image: str, tag: str) -> tuple[dict, float]:
    """Run the pipeline in-process; the report JSON and the wall time."""
    opts = BuildOptions(image=image, output=OutputOptions(tag=tag))
    t0 = time.monotonic()
    report = build(c, opts, Progress(quiet=True))
    return report.to_json(), time.monotonic() - t0


def _requests(report: dict) -> tuple[RequestResult, ...]:
    return tuple(
        RequestResult(method=r["method"], url="", path=r["path"], port=r["port"],
                      protocol=r["protocol"], status=r["status"],
                      content_type=r["content_type"], length=r["length"], sha256=r["sha256"],
                      elapsed=r["elapsed"], error=r["error"],
                      discovered_by=r["discovered_by"])
        for r in report["probe"]["requests"])


def _export_scan(c, image_id: str) -> int:
    n = 0
    with DockerExportSource(c, image_id, run_id="bench").open() as stream:
        for _tf, _ti in iter_members(stream):
            n += 1
    return n


def _plain_run_replay(c, image: str, port: int, recorded) -> int:
    container = run_plain(c, image, port)
    try:
        target = Target(ports={port: published(container)[port]})
        probes.wait_ready(target, (port,), 60, alive_check(container))
        answers = probes.replay(target, recorded)
    finally:
        remove_container(container)
    return sum(1 for a in answers if a.status is not None)


def _plain_two_rounds(c, image: str, port: int, recorded, hold: float = 0.0) -> int:
    """Verification's unavoidable work on one image: start, replay, stay up `hold` s,
    `docker restart` (no grace where PID 1 has no handler for the stop signal: the
    engine would wait for nothing), replay again."""
    container = run_plain(c, image, port)
    answered = 0
    try:
        for first in (True, False):
            start = time.monotonic()
            if not first:
                pid = container.attrs["State"]["Pid"]
                signum = stop_signal(container.attrs["Config"].get("StopSignal") or "")
                container.restart(timeout=10 if catches_signal(pid, signum) else 0)
                container.reload()
            target = Target(ports={port: published(container)[port]})
            alive = alive_check(container)
            probes.wait_ready(target, (port,), 60, alive)
            answered += sum(1 for a in probes.replay(target, recorded) if a.status is not None)
            while first and time.monotonic() < start + hold and alive():
                time.sleep(0.1)
    finally:
        remove_container(container)
    return answered


def _rebuild(c, image_id: str, kept: set[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="minify-bench-") as d:
        path = os.path.join(d, "layer.tar")
        with DockerExportSource(c, image_id, run_id="bench").open() as stream, \
                tarfile.open(path, "w") as out:
            for tf, ti in iter_members(stream):
                if "/" + ti.name.lstrip("./").rstrip("/") in kept:
                    out.addfile(ti, tf.extractfile(ti) if ti.isfile() else None)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            res = c.api.import_image_from_data(f, repository="minify-bench/baseline-import",
                                               tag="latest")
        del res
        remove_image(c, "minify-bench/baseline-import:latest")
    return size


def baseline(c, image: str, port: int, report: dict) -> dict:
    info = inspect_image(c, image)
    recorded = _requests(report)
    kept = {k["path"] for k in report["kept"]}
    steps = {}
    t = time.monotonic()
    _export_scan(c, info.id)
    steps["index"] = time.monotonic() - t
    t = time.monotonic()
    _plain_run_replay(c, image, port, recorded)
    steps["run"] = time.monotonic() - t
    t = time.monotonic()
    _rebuild(c, info.id, kept)
    steps["rebuild"] = time.monotonic() - t
    t = time.monotonic()
    _plain_two_rounds(c, image, port, recorded)
    _plain_two_rounds(c, report["output"]["id"], port, recorded,
                      hold=(report["verify"].get("liveness") or {}).get("required_seconds", 0))
    steps["verify"] = time.monotonic() - t
    return {k: round(v, 3) for k, v in steps.items()}


def run(c, reps: int = 2) -> dict:
    out = {"reps": reps, "images": {}, "reports": {}}
    for name, image, port in IMAGES:
        tag = f"minify-bench/{name}-min:latest"
        builds, bases = [], []
        for i in range(reps):
            log(f"build time: {name} rep {i + 1}/{reps}: minify build")
            try:
                report, wall = minify_build(c, image, tag)
                builds.append({"wall_s": round(wall, 3), "timings": report["timings"],
                               "verify": report["verify"]["status"]})
                out["reports"][name] = report
                log(f"build time: {name} rep {i + 1}/{reps}: baseline")
                bases.append(baseline(c, image, port, report))
            finally:
                remove_image(c, tag)
        out["images"][name] = _summarise(image, builds, bases)
    return out


def _summarise(image: str, builds: list[dict], bases: list[dict]) -> dict:
    stages = {}
    for label, names, base_key in STAGE_GROUPS:
        m = median([sum(b["timings"].get(n, 0.0) for n in names) for b in builds])
        bl = median([b[base_key] for b in bases]) if base_key else 0.0
        stages[label] = {"minify_s": round(m, 3), "baseline_s": round(bl, 3)}
    total_m = median([b["wall_s"] for b in builds])
    total_b = median([sum(b.values()) for b in bases])
    ratio = total_m / total_b if total_b else 0.0
    return {"image": image, "builds": builds, "baselines": bases, "stages": stages,
            "minify_total_s": round(total_m, 3), "baseline_total_s": round(total_b, 3),
            "ratio": round(ratio, 2), "met": ratio <= TARGET_RATIO}


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "stage", "minify", "baseline (untraced)", "ratio"]
    rows = []
    for name, a in res["images"].items():
        for label, s in a["stages"].items():
            r = f"{s['minify_s'] / s['baseline_s']:.1f}x" if s["baseline_s"] else "-"
            rows.append([name, label, f"{s['minify_s']:.2f} s", f"{s['baseline_s']:.2f} s", r])
        rows.append([name, "**total** (target <= 2x)", f"{a['minify_total_s']:.2f} s",
                     f"{a['baseline_total_s']:.2f} s",
                     f"**{a['ratio']:.2f}x {'met' if a['met'] else 'NOT met'}**"])
    return headers, rows

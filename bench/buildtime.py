"""Build time of the sample apps against the work a user would otherwise do.

Per image, BENCH_BUILD_REPS (default 3) interleaved repetitions of:
  export   baseline (a): `docker export` of a created container to /dev/null
  run      baseline (b): plain `docker run`, the build's recorded requests replayed,
           `docker kill` (the fastest stop)
  verify   one verification run, as minify's verification does it on the minified
           image: start, requests, the liveness hold, `docker restart`, requests again
  minify   `minify build --no-cache` as its own process (storage reader where it applies)
  cached   `minify build` again with the index in a cache directory
The target compares the whole build with (a)+(b)+one verification run (baseline c),
rep by rep. The minified image is removed after each build.
"""

from __future__ import annotations

import tempfile

from .common import (
    SANDBOX,
    export_devnull,
    fmt_spread,
    log,
    minify_cli,
    peer_build,
    recorded_requests,
    remove_image,
    run_requests_stop,
    spread,
)

IMAGES = (("nginx", SANDBOX["nginx"], 80), ("python", SANDBOX["python"], 8080))
TARGET_RATIO = 2.0


def _rep(c, name: str, image: str, port: int, cache: str) -> dict:
    tag = f"minify-bench/{name}-min:latest"
    out = {"export": export_devnull(c, image)}
    try:
        out["minify"] = minify_cli(["--no-cache", image], tag)
        recorded = recorded_requests(out["minify"].pop("requests"))
        out["run"] = run_requests_stop(c, image, port, recorded)
        out["verify"] = run_requests_stop(c, tag, port, recorded, restart=True,
                                          hold=out["minify"]["liveness_hold_s"])
    finally:
        remove_image(c, tag)
    try:
        out["cached"] = minify_cli(["--cache-dir", cache, image], tag)
        out["cached"].pop("requests", None)
    finally:
        remove_image(c, tag)
    peer = peer_build(image, f"minify-bench/{name}-peer:latest")
    if peer is not None:
        out["peer"] = peer
        remove_image(c, f"minify-bench/{name}-peer:latest")
    return out


def run(c, reps: int = 3) -> dict:
    out = {"reps": reps, "images": {}}
    for name, image, port in IMAGES:
        runs = []
        with tempfile.TemporaryDirectory(prefix="minify-bench-cache-") as cache:
            # a first build fills the cache: every "cached" run below is a hit
            minify_cli(["--cache-dir", cache, image], f"minify-bench/{name}-min:latest")
            remove_image(c, f"minify-bench/{name}-min:latest")
            for i in range(reps):
                log(f"build time: {name} rep {i + 1}/{reps}")
                runs.append(_rep(c, name, image, port, cache))
        out["images"][name] = _summary(image, runs)
    return out


def _c(r: dict) -> float:
    return r["export"]["seconds"] + r["run"]["seconds"] + r["verify"]["seconds"]


def _summary(image: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if r["minify"]["exit_code"] == 0 and "run" in r]
    ratios = [r["minify"]["wall_s"] / _c(r) for r in ok]
    s = {"image": image, "runs": runs,
         "export_s": spread([r["export"]["seconds"] for r in runs]),
         "run_s": spread([r["run"]["seconds"] for r in ok]),
         "verify_run_s": spread([r["verify"]["seconds"] for r in ok]),
         "baseline_c_s": spread([_c(r) for r in ok]),
         "minify_s": spread([r["minify"]["wall_s"] for r in ok]),
         "cached_s": spread([r["cached"]["wall_s"] for r in runs
                             if r["cached"]["exit_code"] == 0]),
         "reader": ok[0]["minify"]["index"].get("reader") if ok else None,
         "minify_maxrss_bytes": spread([r["minify"]["maxrss_bytes"] for r in ok]),
         "tracer_maxrss_bytes": spread([r["minify"]["tracer_maxrss_bytes"] for r in ok]),
         "stages": {k: spread([r["minify"]["timings"].get(k) for r in ok])
                    for k in ("run", "ready", "probe", "stop", "index", "plan", "rebuild",
                              "verify")},
         "ratio": spread(ratios), "cmd": runs[0]["minify"]["cmd"] if runs else ""}
    s["met"] = bool(ratios) and s["ratio"]["median"] <= TARGET_RATIO
    peers = [r["peer"] for r in runs if "peer" in r and r["peer"]["exit_code"] == 0]
    if peers:
        s["peer_s"] = spread([p["wall_s"] for p in peers])
    return s


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "reader", "minify build", "cached index", "(a) export", "(b) run",
               "verify run", "(c) = a+b+verify", "minify / (c) (target <= 2)", "met",
               "minify peak RSS", "tracer peak RSS"]
    rows = []
    for name, a in res["images"].items():
        rows.append([name, a["reader"], fmt_spread(a["minify_s"]), fmt_spread(a["cached_s"]),
                     fmt_spread(a["export_s"]), fmt_spread(a["run_s"]),
                     fmt_spread(a["verify_run_s"]), fmt_spread(a["baseline_c_s"]),
                     fmt_spread(a["ratio"], "x", digits=2), "met" if a["met"] else "NOT met",
                     fmt_spread(a["minify_maxrss_bytes"], "MiB", 2**20, 0),
                     fmt_spread(a["tracer_maxrss_bytes"], "MiB", 2**20, 0)])
        if "peer_s" in a:
            rows.append([f"{name} (BENCH_PEER)", "-", fmt_spread(a["peer_s"]), "-", "-", "-",
                         "-", "-", "-", "-", "-", "-"])
    return headers, rows


def stage_rows(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", *next(iter(res["images"].values()))["stages"].keys()]
    rows = [[name, *(fmt_spread(v, digits=2) for v in a["stages"].values())]
            for name, a in res["images"].items()]
    return headers, rows


"""Tracer overhead: requests per second and readiness time, untraced vs traced.

Untraced: `docker run -d -p 127.0.0.1::PORT IMAGE` (the image's own entrypoint).
Traced: the same image inside minifier.runner.TracedContainer (ptrace + seccomp-bpf
tracer and the fanotify watcher), built exactly as the pipeline builds it.
Readiness is measured from just before the container is created to the first HTTP
answer (probes.wait_ready), so both sides include container creation and start.
"""

from __future__ import annotations

import os
import tempfile
import time

from minifier.engine import inspect_image
from minifier.image.index import Index
from minifier.image.source import choose_source
from minifier.image.users import resolve_user
from minifier.observe.appspec import launch_spec
from minifier.observe.runner import TracedContainer
from minifier.options import RunOptions
from probes import Target, wait_ready

from .common import SANDBOX, alive_check, log, median, published, remove_container, run_plain
from .load import run_load

APPS = (
    # name, image, container port, path
    ("python", SANDBOX["python"], 8080, "/health"),
    ("nginx", SANDBOX["nginx"], 80, "/"),
)
TARGET_RPS_RATIO = 0.7
TARGET_READY_RATIO = 3.0


_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """utime + stime of one process (all its threads), from /proc/PID/stat: the tracer's
    own CPU, not the traced app's (RUSAGE_CHILDREN would count both)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _untraced(c, image: str, port: int, path: str, total: int, conc: int,
              log_driver: str = "") -> dict:
    t0 = time.monotonic()
    container = run_plain(c, image, port, log_driver)
    try:
        hport = published(container)[port]
        wait_ready(Target(ports={port: hport}), (port,), 60, alive_check(container))
        ready = time.monotonic() - t0
        run_load(hport, path, total=min(100, total), concurrency=conc)  # warm-up
        res = run_load(hport, path, total=total, concurrency=conc)
    finally:
        remove_container(container)
    return {"ready_s": round(ready, 3), **res.to_json()}


def _traced(c, info, spec, port: int, path: str, total: int, conc: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="minify-bench-") as workdir:
        t0 = time.monotonic()
        with TracedContainer(c, info, spec, RunOptions(), workdir) as tc:
            hport = tc.ports[port]
            wait_ready(Target(ports={port: hport}), (port,), 60, tc.app_alive)
            ready = time.monotonic() - t0
            run_load(hport, path, total=min(100, total), concurrency=conc)
            tracer = tc.tracer_pid
            cpu0 = _process_cpu(tracer)
            res = run_load(hport, path, total=total, concurrency=conc)
            tracer_cpu = _process_cpu(tracer) - cpu0
            observed = tc.finish()
    events = sum(e.source == "ptrace" for r in observed.results for e in r.events)
    return {"ready_s": round(ready, 3), **res.to_json(), "tracer_cpu_s": round(tracer_cpu, 3),
            "trace_events": events}


def _tracer_us(a: dict) -> float:
    """Tracer CPU (user+sys of the tracer process, /proc/PID/stat) per request of the
    measured load (the warm-up is outside the window)."""
    vals = [r["tracer_cpu_s"] / r["requests"] * 1e6 for r in a["runs"]["traced"]]
    return median(vals)


def run(c, reps: int = 3, total: int = 2000, concurrency: int = 8) -> dict:
    out = {"requests": total, "concurrency": concurrency, "reps": reps, "apps": {}}
    for name, image, port, path in APPS:
        info = inspect_image(c, image)
        fs = choose_source(c, info.id).source.scan(Index(), None, {})
        spec = launch_spec(info, RunOptions(), resolve_user(fs, info.user))
        runs = {"untraced": [], "untraced_nolog": [], "traced": []}
        for i in range(reps):
            log(f"overhead: {name} rep {i + 1}/{reps} untraced")
            runs["untraced"].append(_untraced(c, image, port, path, total, concurrency))
            runs["untraced_nolog"].append(
                _untraced(c, image, port, path, total, concurrency, log_driver="none"))
            log(f"overhead: {name} rep {i + 1}/{reps} traced")
            runs["traced"].append(_traced(c, info, spec, port, path, total, concurrency))
        plain_rps = median([r["rps"] for r in runs["untraced"]])
        nolog_rps = median([r["rps"] for r in runs["untraced_nolog"]])
        # Judge against the faster untraced variant: the traced app's stdout goes to a
        # file (app.log), not through Docker's log driver, which by itself costs CPU.
        u_rps = max(plain_rps, nolog_rps)
        t_rps = median([r["rps"] for r in runs["traced"]])
        u_ready = median([r["ready_s"] for r in runs["untraced"]])
        t_ready = median([r["ready_s"] for r in runs["traced"]])
        rps_ratio = t_rps / u_rps if u_rps else 0.0
        ready_ratio = t_ready / u_ready if u_ready else 0.0
        out["apps"][name] = {
            "image": image, "path": path, "runs": runs,
            "untraced_plain_rps": round(plain_rps, 1), "untraced_nolog_rps": round(nolog_rps, 1),
            "untraced_rps": round(u_rps, 1), "traced_rps": round(t_rps, 1),
            "rps_ratio": round(rps_ratio, 3), "rps_met": rps_ratio >= TARGET_RPS_RATIO,
            "untraced_ready_s": round(u_ready, 3), "traced_ready_s": round(t_ready, 3),
            "ready_ratio": round(ready_ratio, 2), "ready_met": ready_ratio <= TARGET_READY_RATIO,
            "errors": sum(r["errors"] for rs in runs.values() for r in rs),
        }
    return out


def render(res: dict) -> tuple[str, list[list]]:
    headers = ["app", "untraced rps (json-file log / no log)", "traced rps",
               "traced/untraced (target >= 0.7)",
               "rps", "tracer CPU per request", "ready untraced", "ready traced",
               "ratio (target <= 3x)", "ready"]
    rows = []
    for name, a in res["apps"].items():
        rows.append([f"{name} GET {a['path']}",
                     f"{a['untraced_plain_rps']:.0f} / {a['untraced_nolog_rps']:.0f}",
                     f"{a['traced_rps']:.0f}",
                     f"{a['rps_ratio']:.2f}", "met" if a["rps_met"] else "NOT met",
                     f"{_tracer_us(a):.0f} us",
                     f"{a['untraced_ready_s']:.2f} s", f"{a['traced_ready_s']:.2f} s",
                     f"{a['ready_ratio']:.2f}x", "met" if a["ready_met"] else "NOT met"])
    return headers, rows


if __name__ == "__main__":  # quick manual run: python -m bench.overhead
    import json

    from .common import client
    print(json.dumps(run(client(), reps=int(os.environ.get("BENCH_REPS", "1"))), indent=2))

"""Shared helpers: the engine client, container hygiene, timing, machine info, tables."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional, Sequence

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from minifier.engine import published_ports, running_check

# minify.pid: a live pid marks the containers as owned (make clean and the e2e leftover
# checks of a concurrent test run leave them alone while the bench runs).
BENCH_LABEL = {"minify.run": "bench", "minify.pid": str(os.getpid())}
SANDBOX = {n: f"minify-sandbox/{n}:latest"
           for n in ("nginx", "python", "busybox", "jq", "quirks", "layers")}
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg: str) -> None:
    sys.stderr.write(f"bench: {msg}\n")
    sys.stderr.flush()


def client() -> docker.DockerClient:
    c = docker.from_env(timeout=600)
    c.ping()
    return c


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


@contextmanager
def timer() -> Iterator[dict]:
    t = {"start": time.monotonic()}
    try:
        yield t
    finally:
        t["seconds"] = time.monotonic() - t["start"]


def remove_container(container) -> None:
    try:
        container.remove(force=True)
    except (APIError, DockerException):
        pass


def remove_image(c: docker.DockerClient, ref: str) -> None:
    try:
        c.images.remove(ref, force=True)
    except ImageNotFound:
        pass
    except (APIError, DockerException) as exc:
        log(f"could not remove image {ref}: {exc}")


def image_exists(c: docker.DockerClient, ref: str) -> bool:
    try:
        c.images.get(ref)
        return True
    except ImageNotFound:
        return False


def leftover_containers(c: docker.DockerClient) -> list:
    return c.containers.list(all=True, filters={"label": "minify.run=bench"})


def cleanup_bench_containers(c: docker.DockerClient) -> None:
    for container in leftover_containers(c):
        remove_container(container)


def published(container) -> dict[int, int]:
    return published_ports(container.attrs)


def alive_check(container):
    return running_check(container)


def run_plain(c: docker.DockerClient, image: str, port: int, log_driver: str = ""):
    """`docker run -d -p 127.0.0.1::PORT` with the bench label (caller removes it)."""
    extra = {"log_config": {"type": log_driver, "config": {}}} if log_driver else {}
    container = c.containers.run(image, detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)},
                                 labels=dict(BENCH_LABEL), **extra)
    container.reload()
    return container


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info(c: docker.DockerClient) -> dict:
    try:
        version = c.version()
        docker_version = version.get("Version", "")
        storage = c.info().get("Driver", "")
    except (APIError, DockerException):
        docker_version, storage = "", ""
    try:
        minify_version = subprocess.run(
            [sys.executable, "-c", "import importlib.metadata as m; print(m.version('minify'))"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        minify_version = ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_bytes": _meminfo_total(),
        "kernel": platform.release(),
        "docker": docker_version,
        "storage_driver": storage,
        "python": platform.python_version(),
        "minify": minify_version,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table (readable as plain text on a terminal too)."""
    rows = [[str(x) for x in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def verdict(met: Optional[bool]) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


# -- the measured runs ----------------------------------------------------------------

REPO = os.path.dirname(HERE)


def minify_cli(args: Sequence[str], tag: str, timeout: float = 3600,
               full_report: bool = False) -> dict:
    """`minify build --json --tag TAG ARGS` as its own process (through bench.rss_wrapper):
    wall time, the report, peak RSS and CPU of minify and of its tracer(s)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="minify-bench-") as d:
        out = os.path.join(d, "rss.json")
        cmd = ["build", "--json", "--tag", tag, *args]
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "bench.rss_wrapper", out, *cmd],
                              capture_output=True, text=True, cwd=REPO, timeout=timeout)
        wall = time.monotonic() - t0
        try:
            with open(out) as f:
                rss = json.load(f)
        except (OSError, ValueError):
            rss = {}
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    return {"cmd": "minify " + " ".join(cmd), "exit_code": proc.returncode,
            "wall_s": round(wall, 3), "timings": report.get("timings", {}),
            "index": report.get("index", {}), "verify": report.get("verify", {}).get("status"),
            "liveness_hold_s": ((report.get("verify") or {}).get("liveness") or {}).get(
                "required_seconds") or 0,
            "files": report.get("files", {}), "output_size": report.get("output", {}).get("size"),
            "output_id": report.get("output", {}).get("id"),
            "requests": report.get("probe", {}).get("requests", []),
            "maxrss_bytes": rss.get("maxrss_bytes"), "cpu_s": rss.get("cpu_s"),
            "tracer_maxrss_bytes": rss.get("tracer_maxrss_bytes"),
            "tracer_cpu_s": rss.get("tracer_cpu_s"),
            "stderr_tail": proc.stderr[-1500:] if proc.returncode else "",
            **({"report": report} if full_report else {})}


def export_devnull(c: docker.DockerClient, image: str) -> dict:
    """Baseline (a): `docker export` of a container created from the image, to /dev/null
    (the container is created before and removed after the timed command)."""
    cid = c.api.create_container(image, command=["/none"], labels=dict(BENCH_LABEL))["Id"]
    try:
        t0 = time.monotonic()
        subprocess.run(["docker", "export", cid], stdout=subprocess.DEVNULL, check=True)
        seconds = time.monotonic() - t0
    finally:
        try:
            c.api.remove_container(cid, force=True, v=True)
        except NotFound:
            pass
    return {"cmd": "docker export $(docker create IMAGE) > /dev/null", "seconds": round(seconds, 3)}


def recorded_requests(requests: Sequence[dict]) -> tuple:
    """The requests a minify report says it sent, ready for probes.replay."""
    from probes import RequestResult

    return tuple(
        RequestResult(method=r["method"], url="", path=r["path"], port=r["port"],
                      protocol=r["protocol"], status=r["status"],
                      content_type=r["content_type"], length=r["length"], sha256=r["sha256"],
                      elapsed=r["elapsed"], error=r["error"], discovered_by=r["discovered_by"])
        for r in requests)


def run_requests_stop(c: docker.DockerClient, image: str, port: int, recorded,
                      restart: bool = False, hold: float = 0.0) -> dict:
    """Baseline (b): plain `docker run -d -p`, wait for the first answer, replay the
    build's requests, `docker kill`, `docker rm`. Kill, the fastest stop, keeps the
    baseline small: `docker stop` would wait out its 10 s grace for a PID 1 that ignores
    SIGTERM (busybox httpd does). With `restart` (one verification run, as minify's
    verification does it): the app kept up `hold` seconds (its liveness hold), `docker
    restart` (no grace where PID 1 has no handler for the stop signal) and the requests
    again, then kill."""
    import probes
    from minifier.observe.appspec import stop_signal
    from minifier.procfs import catches_signal

    t0 = time.monotonic()
    container = run_plain(c, image, port)
    answered = 0
    try:
        for first in (True, False) if restart else (True,):
            start = time.monotonic()
            if not first:
                pid = container.attrs["State"]["Pid"]
                signum = stop_signal(container.attrs["Config"].get("StopSignal") or "")
                container.restart(timeout=10 if catches_signal(pid, signum) else 0)
                container.reload()
            target = probes.Target(ports={port: published(container)[port]})
            alive = alive_check(container)
            probes.wait_ready(target, (port,), 60, alive)
            answered += sum(1 for a in probes.replay(target, recorded) if a.status is not None)
            while first and restart and time.monotonic() < start + hold and alive():
                time.sleep(0.1)
        container.kill()
    finally:
        remove_container(container)
    what = ("replay; hold; docker restart; replay again" if restart else "replay")
    return {"cmd": f"docker run -d -p 127.0.0.1::{port} IMAGE; {what} ({len(recorded)} "
                   "requests); docker kill; docker rm",
            "seconds": round(time.monotonic() - t0, 3), "answered": answered}


def peer_build(image: str, tag: str) -> Optional[dict]:
    """BENCH_PEER=/path/to/minifier: its wall time and output size on the same image.
    BENCH_PEER_ARGS (default docker-slim's `build --target {image} --tag {tag}`)."""
    peer = os.environ.get("BENCH_PEER")
    if not peer:
        return None
    template = os.environ.get("BENCH_PEER_ARGS", "build --target {image} --tag {tag}")
    args = [a.format(image=image, tag=tag) for a in template.split()]
    t0 = time.monotonic()
    proc = subprocess.Popen([peer, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    size = None
    try:
        size = int(docker.from_env().images.get(tag).attrs.get("Size") or 0)
    except DockerException:
        pass
    return {"cmd": " ".join([peer, *args]), "exit_code": proc.returncode,
            "wall_s": round(wall, 3), "maxrss_bytes": usage.ru_maxrss * 1024,
            "output_size": size}


def spread(values: Sequence[float]) -> dict:
    """Median, min and max of the repetitions."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(vals), 3), "min": round(min(vals), 3),
            "max": round(max(vals), 3), "n": len(vals)}


def fmt_spread(s: dict, unit: str = "s", scale: float = 1.0, digits: int = 1) -> str:
    if not s or s.get("median") is None:
        return "-"
    f = f"{{:.{digits}f}}"
    med, lo, hi = (f.format(s[k] / scale) for k in ("median", "min", "max"))
    return f"{med} {unit} ({lo}-{hi})"

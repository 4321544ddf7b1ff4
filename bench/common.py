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
from docker.errors import APIError, DockerException, ImageNotFound

from minifier.engine import published_ports, running_check

BENCH_LABEL = {"minify.run": "bench"}
SANDBOX = {n: f"minify-sandbox/{n}:latest" for n in ("nginx", "python", "busybox", "jq", "quirks")}
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

"""Which engine answers at DOCKER_HOST: Docker or Podman, its versions, storage, cgroups,
and whether it runs rootless, read from the engine's own API answers.

Podman's Docker-compatible API answers `/version` with a component named "Podman
Engine"; whether it runs rootless is said only by its own `/libpod/info`
(`host.security.rootless`), not by the compatible `/info`. A rootless Docker engine
lists `name=rootless` in `/info`'s SecurityOptions. minify needs a rootful engine: its
tracer runs as root on the engine's host and enters the container from there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from docker.errors import DockerException

from minifier.errors import EngineError

__all__ = ["EngineInfo", "engine_info", "describe", "check_rootful", "engine_address",
           "may_bind_host_files"]


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself."""

    kind: str  # "docker" | "podman" | "unknown"
    name: str  # "Docker Engine", "Podman"
    version: str
    api_version: str
    rootless: bool
    storage_driver: str
    backing_filesystem: str
    cgroup_version: str  # "1" | "2" | ""
    cgroup_driver: str
    root_dir: str  # where it keeps images and containers (DockerRootDir)
    security_options: tuple[str, ...] = ()


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _kind(version: Mapping) -> tuple[str, str]:
    names = [str(c.get("Name", "")) for c in version.get("Components") or ()]
    if any(n.lower().startswith("podman") for n in names):
        return "podman", "Podman"
    if "Engine" in names:
        return "docker", "Docker Engine"
    return "unknown", names[0] if names else "an unknown engine"


def _driver_status(info: Mapping, key: str) -> str:
    for pair in info.get("DriverStatus") or ():
        if len(pair) == 2 and pair[0] == key:
            return str(pair[1])
    return ""


def engine_info(version: Mapping, info: Mapping,
                libpod_info: Optional[Mapping] = None) -> EngineInfo:
    """An EngineInfo from the answers of /version, /info and (Podman only) /libpod/info."""
    kind, name = _kind(version)
    security = tuple(str(s) for s in info.get("SecurityOptions") or ())
    rootless = any(s == "name=rootless" or s.startswith("name=rootless,") for s in security)
    if kind == "podman" and libpod_info is not None:
        rootless = bool(((libpod_info.get("host") or {}).get("security") or {}).get("rootless"))
    return EngineInfo(
        kind=kind, name=name, version=str(version.get("Version") or ""),
        api_version=str(version.get("ApiVersion") or ""), rootless=rootless,
        storage_driver=str(info.get("Driver") or ""),
        backing_filesystem=_driver_status(info, "Backing Filesystem"),
        cgroup_version=str(info.get("CgroupVersion") or ""),
        cgroup_driver=str(info.get("CgroupDriver") or ""),
        root_dir=str(info.get("DockerRootDir") or ""), security_options=security)


def describe(client) -> EngineInfo:
    """Ask the engine (three requests; a failing one is an EngineError)."""
    try:
        version = client.version()
        info = client.info()
        libpod = None
        if _kind(version)[0] == "podman":
            answer = client.api.get(client.api._url("/libpod/info"))
            libpod = answer.json() if answer.status_code == 200 else None
    except (DockerException, OSError, ValueError) as exc:
        raise EngineError(f"the engine at {engine_address()} answered but describing it "
                          f"failed: {exc}") from exc
    return engine_info(version, info, libpod)


def may_bind_host_files(engine: EngineInfo, env: Optional[Mapping[str, str]] = None) -> bool:
    """Whether a file of this host, bind-mounted into a container, is likely the engine's
    to find and the container's to run: an engine on a local socket, without SELinux
    (which refuses a file not labelled for containers). The engine may still not see it
    (minify in a container, an engine in a VM): it then says so, and the caller copies."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST", "")
    selinux = any(s == "name=selinux" or s.startswith("name=selinux,")
                  for s in engine.security_options)
    return (not host or host.startswith("unix://")) and not selinux


def rootless_text(engine: EngineInfo) -> str:
    """Why a rootless engine cannot be used, and what to run instead."""
    rootful = ("sudo podman system service --time=0 unix:///run/podman/podman.sock, then "
               "DOCKER_HOST=unix:///run/podman/podman.sock" if engine.kind == "podman" else
               "the system's dockerd run by root, DOCKER_HOST=unix:///var/run/docker.sock")
    how = ("its /libpod/info says host.security.rootless" if engine.kind == "podman"
           else "its /info lists the security option name=rootless")
    return (f"the engine at {engine_address()} is a rootless {engine.name} {engine.version} "
            f"({how}): minify works only with rootful engines so far; missing: a rootful "
            f"engine ({rootful})")


def check_rootful(engine: EngineInfo) -> None:
    if engine.rootless:
        raise EngineError(rootless_text(engine))

"""Refuse early, by name, what cannot work here: missing capabilities, images for
another OS or CPU. Nothing is started before these checks pass."""

from __future__ import annotations

import platform
import posixpath
from typing import Optional

import docker

from minifier.engine import missing_paths
from minifier.errors import CapabilityError, EngineError, ImageError, UsageError
from minifier.options import ContainerOptions, KeepOptions
from minifier.records import ImageInfo

__all__ = ["NEEDED_CAPS", "check_privileges", "check_runnable", "check_include_paths",
           "check_container_refs", "check_network_ports"]


def check_privileges(status_path: str = "/proc/self/status") -> None:
    """Fail early, naming the capability, where the tracer could not work."""
    with open(status_path) as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    missing = [name for bit, name, why in NEEDED_CAPS if not eff & (1 << bit)]
    if missing:
        reasons = "; ".join(f"CAP_{n} ({why})" for bit, n, why in NEEDED_CAPS if n in missing)
        raise CapabilityError(f"missing capabilities: {reasons}; run as root, or with "
                              "--cap-add SYS_PTRACE --cap-add SYS_ADMIN in a container")


NEEDED_CAPS = (
    (19, "SYS_PTRACE", "trace the app and read the container's /proc/PID/ns"),
    (21, "SYS_ADMIN", "enter the container's namespaces with setns, and fanotify"),
)


_MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
             "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def check_runnable(image: ImageInfo, machine: Optional[str] = None) -> None:
    """The app runs natively under the tracer: refuse images of another OS or CPU."""
    host = _MACHINES.get(machine or platform.machine(), machine or platform.machine())
    if image.os and image.os != "linux":
        raise ImageError(f"image {image.ref} is for {image.os}; minify runs linux images")
    if image.architecture and image.architecture != host:
        raise ImageError(f"image {image.ref} is for linux/{image.architecture} but this machine "
                         f"is linux/{host}: minify must run the app natively to trace it")


def check_include_paths(client: docker.DockerClient, image: ImageInfo, keep: KeepOptions) -> None:
    """Every --include-path exists in the image (relative ones under the working
    directory the app runs in), decided before the app is started."""
    workdir = keep.workdir or image.workdir or "/"
    asked = {posixpath.normpath(posixpath.join(workdir, p)): p for p in keep.include_paths}
    missing = missing_paths(client, image.id, list(asked))
    if missing:
        raise UsageError(f"--include-path {asked[missing[0]]}: no such path in the image")


def check_container_refs(client: docker.DockerClient, opts: ContainerOptions) -> None:
    """The network and the linked containers the user named exist (and the linked ones
    run), decided before anything starts: the engine would refuse them only once the
    traced container is being made."""
    from docker.errors import APIError, NotFound

    try:
        if opts.network is not None:
            try:
                client.networks.get(opts.network)
            except NotFound as exc:
                raise UsageError(f"--network {opts.network}: no such network (docker "
                                 "network create it first)") from exc
        for name, _ in opts.links:
            try:
                state = client.containers.get(name).attrs.get("State") or {}
            except NotFound as exc:
                raise UsageError(f"--link {name}: no such container") from exc
            if not state.get("Running"):
                raise UsageError(f"--link {name}: the container is not running "
                                 f"({state.get('Status') or 'stopped'})")
    except APIError as exc:
        raise EngineError(f"looking up the network or linked containers failed: "
                          f"{exc.explanation or exc}") from exc


def check_network_ports(network: Optional[str], http_ports: tuple[int, ...]) -> None:
    """HTTP probing reaches the app through ports published on 127.0.0.1, which a
    container without a network (--network none) cannot have."""
    if network == "none" and http_ports:
        raise UsageError(f"--network none: HTTP probing needs port(s) "
                         f"{', '.join(map(str, http_ports))} published on 127.0.0.1, which "
                         "a container without a network cannot have (--no-http-probe, "
                         "with --exec probes, works without one)")

"""Connect to the Docker engine and resolve the source image into an ImageInfo."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
from typing import Callable, Iterator, Mapping, Optional, TypeVar

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from minifier.errors import EngineError, ImageError
from minifier.records import ImageInfo

T = TypeVar("T")

__all__ = ["owned_container", "remove_container", "Reaper", "signals_deferred", "connect",
           "inspect_image", "image_info_from_attrs", "container_labels", "published_ports",
           "running_check", "remove_ours", "missing_paths", "check_output_tag"]


def published_ports(attrs: Mapping) -> dict[int, int]:
    """Container TCP port -> host port, from a container's inspect data."""
    ports = {}
    for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if proto == "tcp" and bindings:
            ports[int(port)] = int(bindings[0]["HostPort"])
    return ports


@contextlib.contextmanager
def owned_container(client: docker.DockerClient, purpose: str,
                    create: Callable[[str], T],
                    reaper: Optional[Reaper] = None) -> Iterator[T]:
    """A container made by `create(name)` under a name chosen here, removed (with its
    anonymous volumes) on every way out: by name, so that a signal arriving while the
    engine is still answering the create cannot leave it behind unknown. With `reaper`,
    a block that went well leaves the removal to it (in the background)."""
    name = f"minify-{purpose}-{secrets.token_hex(6)}"
    handed = False
    try:
        with signals_deferred():
            created = create(name)
        yield created
        if reaper is not None:
            reaper.remove(name)
            handed = True
    finally:
        if not handed:
            remove_container(client, name)


class Reaper:
    """Containers removed in worker threads while the build goes on (a stopped app's
    container: its removal is the engine tearing down its network and mounts, nothing
    the next stage waits for). Leaving the block waits for every removal, bounded, and
    removes by name whatever is still there: none outlives the block, on any way out."""

    WAIT = 30.0  # seconds a removal is given before it is done again in the caller

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._pending: list[tuple[str, threading.Event, Optional[Callable[[], None]]]] = []

    def __enter__(self) -> Reaper:
        return self

    def remove(self, name: str, then: Optional[Callable[[], None]] = None) -> None:
        """Remove container `name` in the background; `then` runs once it is gone (once
        it is, also when that takes the caller's own removal at the block's end)."""
        done = threading.Event()
        self._pending.append((name, done, then))

        def work() -> None:
            try:
                remove_container(self._client, name)
                if then is not None:
                    then()
            finally:
                done.set()

        with signals_deferred():  # see signals_deferred: a start cut short
            threading.Thread(target=work, name="minify-reaper", daemon=True).start()

    def __exit__(self, *exc_info) -> None:
        pending, self._pending = self._pending, []
        try:
            for _name, done, _then in pending:
                done.wait(self.WAIT)
        finally:  # a removal still going (or a wait cut short by a signal): again, here
            for name, done, then in pending:
                if not done.is_set():
                    remove_container(self._client, name)
                    if then is not None:
                        then()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while something must not be cut in half: the engine creating
    a container (an interrupted request would leave the engine finishing a create we no
    longer wait for), or a worker thread starting (a `Thread.start()` interrupted while
    it waits for the thread leaves that thread to wake in a torn-down interpreter). The
    held signal is delivered (and raises) as soon as the block ends. A thread started
    inside the block keeps the two signals blocked: they reach the main thread only."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def remove_container(client: docker.DockerClient, name: str) -> None:
    try:
        client.api.remove_container(name, force=True, v=True)
    except DockerException:
        pass  # never created, or already gone


def remove_ours(client: docker.DockerClient, purpose: str) -> None:
    """Remove every container of this process labelled `minify.run=<purpose>`: how a
    worker thread's containers are taken from under it, ending its waits at once."""
    labels = container_labels(purpose)
    try:
        found = client.api.containers(all=True, quiet=True, filters={
            "label": [f"{k}={v}" for k, v in labels.items()]})
    except DockerException:
        return
    for c in found:
        remove_container(client, c["Id"])


def running_check(container) -> Callable[[], bool]:
    """A callable telling whether the container still runs (for readiness polling)."""
    def running() -> bool:
        try:
            container.reload()
        except DockerException:
            return False
        return container.status == "running"
    return running


def container_labels(purpose: str) -> dict[str, str]:
    """Labels on every container minify creates: `minify.run` finds leftovers of any
    run (`make clean`), `minify.pid` tells concurrent runs on one engine apart."""
    return {"minify.run": purpose, "minify.pid": str(os.getpid())}

# Docker's reference grammar, simplified: [host[:port]/]path[:tag][@digest], or an id.
_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST (or the default socket) that answers."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        if client.api.base_url.startswith("http+docker://"):
            # A local socket: no proxy or netrc setting can apply, and looking them up
            # in the environment cost a third of each API call's CPU.
            client.api.trust_env = False
        client.ping()
    except (DockerException, OSError) as exc:
        raise EngineError(
            f"cannot reach the Docker engine at {where}: start it (make engine) "
            "or set DOCKER_HOST") from exc
    return client


def validate_reference(ref: str) -> None:
    if not (_REFERENCE.match(ref) or _IMAGE_ID.match(ref)):
        raise ImageError(f"invalid image reference {ref!r}")


def inspect_image(client: docker.DockerClient, ref: str) -> ImageInfo:
    """Look the image up locally; minify never pulls (no registry is assumed)."""
    validate_reference(ref)
    try:
        attrs = client.api.inspect_image(ref)
    except ImageNotFound as exc:
        raise ImageError(f"image {ref} not found in the local engine (minify never pulls: "
                         f"docker pull or docker build it first)") from exc
    except APIError as exc:
        raise EngineError(f"inspecting {ref} failed: {exc.explanation or exc}") from exc
    return image_info_from_attrs(ref, attrs)


def check_output_tag(client: docker.DockerClient, tag: str, image: ImageInfo) -> None:
    """Refuse an output tag that the engine resolves to the source image under another
    spelling than the source's own tags (`docker.io/...`, Podman's `localhost/...`)."""
    try:
        attrs = client.api.inspect_image(tag)
    except ImageNotFound:
        return
    except APIError as exc:
        raise EngineError(f"looking up the output tag {tag} failed: "
                          f"{exc.explanation or exc}") from exc
    if attrs.get("Id") == image.id:
        raise ImageError(f"refusing to tag the output {tag}: the engine resolves that name "
                         f"to the source image {image.ref}")


def image_info_from_attrs(ref: str, attrs: dict) -> ImageInfo:
    config = attrs.get("Config") or {}
    return ImageInfo(
        ref=ref,
        id=attrs["Id"],
        repo_tags=tuple(attrs.get("RepoTags") or ()),
        size=int(attrs.get("Size") or 0),
        architecture=attrs.get("Architecture") or "",
        os=attrs.get("Os") or "linux",
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        env=tuple(config.get("Env") or ()),
        workdir=config.get("WorkingDir") or "",
        user=config.get("User") or "",
        exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
        volumes=tuple(sorted(config.get("Volumes") or {})),
        labels=dict(config.get("Labels") or {}),
        stop_signal=config.get("StopSignal") or "",
        healthcheck=config.get("Healthcheck"),
        config=config,
    )


def missing_paths(client: docker.DockerClient, image_id: str, paths: list[str]) -> list[str]:
    """Those of the absolute `paths` that the image does not have, asked of a created,
    never started container (a HEAD of its archive endpoint: the engine resolves each
    path inside the image's root and sends no content)."""
    if not paths:
        return []

    def create(name: str) -> str:
        return client.api.create_container(image_id, name=name, command=["/.minify-none"],
                                           labels=container_labels("stat"),
                                           network_disabled=True)["Id"]

    missing = []
    try:
        with owned_container(client, "stat", create) as cid:
            url = client.api._url("/containers/{0}/archive", cid)
            for path in paths:
                answer = client.api.head(url, params={"path": path})
                if answer.status_code == 404:
                    missing.append(path)
                elif answer.status_code >= 400:
                    raise EngineError(f"looking up {path} in {image_id} failed: HTTP "
                                      f"{answer.status_code}")
    except DockerException as exc:
        raise EngineError(f"looking up paths in the image failed: {exc}") from exc
    return missing

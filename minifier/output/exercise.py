"""Run one image the way `docker run` would and exercise it the way observation exercised
the original: the raw material of verification.

A container is started from the image's own config (plus the user's overrides), then two
rounds run: the first start, and the same again after `docker restart`. In each round a
service is waited for (an HTTP answer, or listening on its TCP ports), its HEALTHCHECK is
waited for (Docker's own `healthy`), the HTTP requests are replayed and the exec probes
run inside it with `docker exec`; then it must still run (in the first round: for as long
as the original ran while observed). A one-shot command is waited for until it exits;
its exec probes then run each in a fresh container (`docker run --entrypoint`), as the
app's own container has ended. Nothing here judges: the results are compared in verify.py.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional, Protocol, Sequence

from docker.errors import APIError

import probes
from minifier.engine import (
    Reaper,
    container_labels,
    owned_container,
    published_ports,
    running_check,
    signals_deferred,
)
from minifier.observe.appspec import stop_signal
from minifier.procfs import catches_signal, listening_ports
from probes import RequestResult, Target

__all__ = ["Script", "ExecRun", "HealthState", "Round", "Exercise", "PortDemand", "exercise"]

POLL = 0.1  # seconds between looks at a container's state while waiting on it
RETRY = 0.5  # seconds between runs of a first exec probe that does not pass yet


@dataclass(frozen=True)
class Script:
    """What to do with one container; the same script for the original and the minified."""

    requests: tuple[RequestResult, ...] = ()  # HTTP requests to replay, in order
    http_ports: tuple[int, ...] = ()  # container ports that must answer HTTP first
    listen: tuple[int, ...] = ()  # container ports it must listen on before probes
    not_ready: tuple[int, ...] = probes.NOT_READY_STATUSES  # HTTP statuses waited past
    execs: tuple[tuple[str, ...], ...] = ()
    first_exec_code: Optional[int] = None  # the first exec probe is repeated until it exits so
    one_shot: bool = False
    run_seconds: float = 0.0  # a service: must run this long (first round); one-shot: bound
    health: bool = False  # wait for Docker's `healthy`
    health_bound: float = 0.0
    start_wait: float = 60.0
    exec_timeout: float = 120.0
    stop_grace: float = 10.0


@dataclass(frozen=True)
class ExecRun:
    exit_code: Optional[int]  # None: it did not finish (or did not start)
    stdout: str
    output: str  # stdout then stderr, or why it did not run


@dataclass(frozen=True)
class HealthState:
    status: str  # Docker's: "healthy", "unhealthy", "starting"; or "stopped"
    seconds: float  # from the start until Docker decided
    output: str = ""  # the last check's output


@dataclass(frozen=True)
class Round:
    requests: tuple[RequestResult, ...] = ()
    execs: tuple[ExecRun, ...] = ()
    exit_code: Optional[int] = None  # a one-shot command's exit code (None: did not exit)
    stdout: str = ""  # a one-shot command's stdout in this round
    output: str = ""  # ... and its stdout and stderr, interleaved as the engine logged them
    listening: tuple[int, ...] = ()  # TCP ports listened on at the end of the round
    health: Optional[HealthState] = None
    failure: str = ""  # why the round could not go on (the app did not start, exited...)


@dataclass(frozen=True)
class Exercise:
    rounds: tuple[Round, ...]
    logs: str  # the container's whole log (both rounds, stdout and stderr)


class PortDemand(Protocol):
    """The TCP ports a round waits for its container to listen on, when they are not known
    for sure yet (verify.py: the minified image run while the original's run still tells
    which ports are stable): `now()` may only shrink; `settled()` is final (it may wait)."""

    def now(self) -> frozenset[int]: ...

    def settled(self) -> frozenset[int]: ...


@dataclass(frozen=True)
class _Fixed:
    ports: frozenset[int]

    def now(self) -> frozenset[int]:
        return self.ports

    def settled(self) -> frozenset[int]:
        return self.ports


def exercise(client, image_id: str, script: Script, run_kwargs: dict,
             purpose: str = "verify", listen: Optional[PortDemand] = None,
             on_round: Optional[Callable[[Round], None]] = None,
             reaper: Optional[Reaper] = None) -> Exercise:
    """Start `image_id` with `run_kwargs` (see verify._overrides), run both rounds; every
    container made for it is labelled `minify.run=<purpose>`. `listen` narrows
    `script.listen` as the run goes; `on_round` is told of each round as it ends;
    `reaper` removes the container once the rounds and its log are in.

    Engine and HTTP-transport errors propagate: verify.py turns them into a failed
    verification. A container that does not start or does not behave is a Round.failure.
    """
    demand = listen or _Fixed(frozenset(script.listen))
    round_ended = on_round or (lambda _round: None)

    def create(name: str):
        publish = {f"{p}/tcp": ("127.0.0.1", None)
                   for p in {*script.http_ports, *script.listen}}
        return client.containers.create(image_id, name=name, ports=publish,
                                        labels=container_labels(purpose), **run_kwargs)

    with owned_container(client, purpose, create, reaper) as container:
        rounds = [_round(client, container, script, demand, image_id, run_kwargs, purpose,
                         first=True)]
        round_ended(rounds[0])
        health = rounds[0].health
        # A restart proves something only of a first round that went well.
        if not rounds[0].failure and (health is None or health.status == "healthy"):
            rounds.append(_round(client, container, script, demand, image_id, run_kwargs,
                                 purpose, first=False))
            round_ended(rounds[1])
        logs = container.logs().decode("utf-8", "replace")
    return Exercise(rounds=tuple(rounds), logs=logs)


def _round(client, container, script: Script, demand: PortDemand, image_id: str,
           run_kwargs: dict, purpose: str, first: bool) -> Round:
    before = (0, 0) if first else (len(container.logs(stdout=True, stderr=False)),
                                   len(container.logs()))
    try:
        if first:
            container.start()
        else:
            container.restart(timeout=_grace(container, script.stop_grace))
    except APIError as exc:
        return Round(failure=f"did not start: {exc.explanation or exc}")
    started = time.monotonic()
    container.reload()
    alive = running_check(container)
    if script.one_shot:
        return _one_shot_round(client, container, script, image_id, run_kwargs, purpose,
                               started, before)
    ready = _wait_ready(container, script, demand, started, alive)
    if ready.failure:
        return ready
    health = _wait_healthy(container, script, started) if script.health else None
    requests = _replay(container, script)
    execs = tuple(_exec_in(container, argv, script, script.first_exec_code if i == 0 else None)
                  for i, argv in enumerate(script.execs))
    if first:
        _wait_until(lambda: not alive(), started + script.run_seconds)
    result = Round(requests=requests, execs=execs, health=health,
                   listening=tuple(sorted(_listening(container))))
    if not alive():
        return replace(result, failure=_exited(container, started))
    return result


def _one_shot_round(client, container, script: Script, image_id: str, run_kwargs: dict,
                    purpose: str, started: float, before: tuple[int, int]) -> Round:
    """`before`: how many bytes of stdout, and of both streams, earlier rounds logged."""
    requests = _replay(container, script)
    bound = script.run_seconds + script.start_wait
    running = running_check(container)
    if not _wait_until(lambda: not running(), started + bound):
        return Round(requests=requests,
                     failure=f"was still running after {bound:g} s")
    code = container.attrs["State"].get("ExitCode")
    stdout = container.logs(stdout=True, stderr=False)[before[0]:]
    output = container.logs()[before[1]:]
    execs = tuple(_exec_fresh(client, image_id, argv, script, run_kwargs, purpose)
                  for argv in script.execs)
    return Round(requests=requests, execs=execs, exit_code=code,
                 stdout=stdout.decode("utf-8", "replace"),
                 output=output.decode("utf-8", "replace"))


def _wait_ready(container, script: Script, demand: PortDemand, started: float,
                alive: Callable[[], bool]) -> Round:
    """Until it answers HTTP on the probe ports and listens on the demanded ports; a Round
    with a failure when it exits or the bound passes."""
    deadline = started + script.start_wait
    if script.requests:
        target = _target(container)
        try:
            probes.wait_ready(target, script.http_ports, max(0.0, deadline - time.monotonic()),
                              alive, not_ready=script.not_ready)
        except probes.AppExitedError:
            return Round(failure=f"{_exited(container, started)}, before answering HTTP")
        except probes.NotReadyError as exc:
            return Round(failure=str(exc).replace("no HTTP answer", "gave no HTTP answer"))
    if _wait_until(lambda: demand.now() <= _listening(container) or not alive(),
                   deadline) and alive():
        return Round()
    if not alive():
        missing = _ports(demand.now() - _listening(container))
        where = f", before listening on port(s) {missing}" if missing else ""
        return Round(failure=f"{_exited(container, started)}{where}")
    # At the bound, only the ports known for sure to be the app's own are asked for.
    missing = _ports(demand.settled() - _listening(container))
    if not missing:
        return Round()
    return Round(failure=f"did not listen on port(s) {missing} within "
                         f"{script.start_wait:g} s")


def _ports(ports: frozenset[int]) -> str:
    return ", ".join(str(p) for p in sorted(ports))


def _wait_healthy(container, script: Script, started: float) -> HealthState:
    """Docker's own verdict on the HEALTHCHECK, waited for within its bound."""
    def state():
        container.reload()
        return container.attrs["State"]
    decided = _wait_until(
        lambda: (state().get("Health") or {}).get("Status") in ("healthy", "unhealthy")
        or container.status != "running", started + script.health_bound)
    health = state().get("Health") or {}
    status = health.get("Status") or "none"
    if container.status != "running" and status not in ("healthy", "unhealthy"):
        status = "stopped"
    log = health.get("Log") or []
    output = (log[-1].get("Output") or "").strip() if log else ""
    seconds = round(time.monotonic() - started, 2)
    return HealthState(status=status if decided else "starting", seconds=seconds,
                       output=output)


def _replay(container, script: Script) -> tuple[RequestResult, ...]:
    if not script.requests:
        return ()
    return probes.replay(_target(container), script.requests)


def _target(container) -> Target:
    """Where the round's container answers: its ports as published by this start (read
    by the round's first look at the container, right after it)."""
    return Target(host="127.0.0.1", ports=published_ports(container.attrs))


def _exec_in(container, argv: Sequence[str], script: Script,
             expect: Optional[int]) -> ExecRun:
    """`docker exec` in the running container, bounded by the exec timeout. With `expect`
    (the first probe) it also waits for the app to serve, as a server may listen before
    it does: it runs again until it exits with `expect`, within the start wait."""
    deadline = time.monotonic() + script.start_wait
    running = running_check(container)
    while True:
        run = _docker_exec(container, argv, script.exec_timeout)
        if expect is None or run.exit_code == expect or time.monotonic() + RETRY > deadline:
            return run
        # Between runs, a container that stops ends the wait (the round then fails).
        if _wait_until(lambda: not running(), time.monotonic() + RETRY):
            return run


def _docker_exec(container, argv: Sequence[str], timeout: float) -> ExecRun:
    api = container.client.api
    exec_id = api.exec_create(container.id, list(argv), stdout=True, stderr=True)["Id"]
    box: dict = {}

    def start() -> None:
        try:
            box["out"] = api.exec_start(exec_id, demux=True)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    # exec_start has no timeout of its own: a thread bounds it. A probe still running at
    # the bound is left to die with the container, which is removed at the end.
    worker = threading.Thread(target=start, daemon=True)
    with signals_deferred():  # a start cut short leaves a thread nobody waits for
        worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return ExecRun(None, "", f"did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    out, err = (b or b"" for b in box["out"])
    code = api.exec_inspect(exec_id).get("ExitCode")
    return ExecRun(code, out.decode("utf-8", "replace"),
                   (out + err).decode("utf-8", "replace"))


def _exec_fresh(client, image_id: str, argv: Sequence[str], script: Script,
                run_kwargs: dict, purpose: str) -> ExecRun:
    """An exec probe of a one-shot command image: its own container, the image's config
    with the probe as entrypoint (`docker run --entrypoint`)."""
    kwargs = {k: v for k, v in run_kwargs.items() if k not in ("entrypoint", "command")}

    def create(name: str):
        return client.containers.create(image_id, name=name, entrypoint=[argv[0]],
                                        command=list(argv[1:]),
                                        labels=container_labels(purpose), **kwargs)

    with owned_container(client, purpose, create) as container:
        try:
            container.start()
        except APIError as exc:
            return ExecRun(None, "", f"did not start: {exc.explanation or exc}")
        running = running_check(container)
        if not _wait_until(lambda: not running(), time.monotonic() + script.exec_timeout):
            return ExecRun(None, "", f"did not finish within {script.exec_timeout:g} s")
        code = container.attrs["State"].get("ExitCode")
        return ExecRun(code, container.logs(stdout=True, stderr=False).decode("utf-8", "replace"),
                       container.logs().decode("utf-8", "replace"))


def _grace(container, grace: float) -> int:
    """`docker restart`'s grace between the stop signal and SIGKILL, in whole seconds as
    the engine takes it; 0 when the container's PID 1 has no handler for the signal: the
    kernel drops it, so the engine would wait the whole grace and then SIGKILL anyway."""
    container.reload()
    pid = int(container.attrs["State"].get("Pid") or 0)
    signum = stop_signal(container.attrs["Config"].get("StopSignal") or "")
    return math.ceil(grace) if pid and catches_signal(pid, signum) else 0


def _listening(container) -> set[int]:
    pid = int((container.attrs.get("State") or {}).get("Pid") or 0)
    return set(listening_ports(pid)) if pid else set()


def _exited(container, started: float) -> str:
    container.reload()
    state = container.attrs["State"]
    code = state.get("ExitCode")
    took = time.monotonic() - started
    if state.get("OOMKilled"):
        return f"was killed for lack of memory after {took:.1f} s"
    return f"exited with code {code} after {took:.1f} s"


def _wait_until(done: Callable[[], bool], deadline: float) -> bool:
    """Poll `done` until it holds (True) or the deadline passes (False)."""
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(POLL, remaining))
    return True

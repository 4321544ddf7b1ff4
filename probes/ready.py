"""Wait, with a bound, until the app gives a first HTTP answer on each probe port."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import Callable, Optional

import requests

from probes.errors import AppExitedError, NotReadyError, ProbeSpecError
from probes.records import ReadyInfo, Target
from probes.transport import falls_back_to_https, make_session, send

__all__ = ["wait_ready", "probe_ports"]

POLL_INTERVAL = 0.1  # between rounds of attempts; the wait itself is bounded by the deadline
CONNECT_TIMEOUT = 1.0


def probe_ports(target: Target, ports: Sequence[int]) -> tuple[int, ...]:
    """The container ports to probe: `ports`, or all published ones; each must be published."""
    chosen = tuple(ports) or tuple(sorted(target.ports))
    for port in chosen:
        if port not in target.ports:
            published = ", ".join(str(p) for p in sorted(target.ports)) or "none"
            raise ProbeSpecError(f"ports: container port {port} is not published "
                                 f"(published: {published})")
    if not chosen:
        raise ProbeSpecError("ports: the app publishes no ports to probe")
    return chosen


def wait_ready(
    target: Target,
    ports: Sequence[int],
    timeout: float,
    app_alive: Callable[[], bool],
) -> tuple[ReadyInfo, ...]:
    """Return one ReadyInfo per port once each has answered HTTP (any status).

    A TCP connect alone proves nothing (Docker's proxy accepts on published ports even
    when the app does not listen yet), so an HTTP answer is required; http is tried
    first, then https without certificate checks.
    Raises AppExitedError when app_alive() turns False, NotReadyError at the deadline.
    """
    chosen = probe_ports(target, ports)
    start = time.monotonic()
    deadline = start + timeout
    ready: dict[int, ReadyInfo] = {}
    with make_session() as session:
        while True:
            _check_alive(app_alive, start, chosen, ready)
            for port in chosen:
                if port in ready:
                    continue
                protocol = _try_port(session, target, port, deadline)
                if protocol is not None:
                    ready[port] = ReadyInfo(port, protocol, time.monotonic() - start)
            if len(ready) == len(chosen):
                return tuple(ready[p] for p in chosen)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _check_alive(app_alive, start, chosen, ready)
                raise _not_ready(target, chosen, ready, timeout)
            time.sleep(min(POLL_INTERVAL, remaining))


def _try_port(
    session: requests.Session, target: Target, port: int, deadline: float
) -> Optional[str]:
    """The protocol the port answered HTTP in, or None if it has not answered yet."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not _tcp_connects(target.host, target.ports[port], remaining):
        return None
    for protocol in ("http", "https"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        # A slow first answer (a traced app warming up) may take until the deadline; an
        # app that exits drops the connection, so the wait ends early then too.
        answer = send(session, "GET", target.origin(port, protocol) + "/", headers={},
                      body=None, timeout=(min(CONNECT_TIMEOUT, remaining), remaining))
        if answer.status is not None and not (protocol == "http" and falls_back_to_https(answer)):
            return protocol
        if answer.status is None and not answer.protocol_error:
            return None  # a timeout: the app is slow, not speaking another protocol
    return None


def _tcp_connects(host: str, port: int, remaining: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=min(CONNECT_TIMEOUT, remaining)):
            return True
    except OSError:
        return False


def _check_alive(
    app_alive: Callable[[], bool], start: float, ports: Sequence[int], ready: dict
) -> None:
    if not app_alive():
        elapsed = time.monotonic() - start
        waiting = ", ".join(str(p) for p in ports if p not in ready)
        raise AppExitedError(
            f"the app exited after {elapsed:.1f} s, before answering HTTP on port(s) {waiting}",
            elapsed=elapsed,
        )


def _not_ready(
    target: Target, ports: Sequence[int], ready: dict, timeout: float
) -> NotReadyError:
    missing = [p for p in ports if p not in ready]
    where = ", ".join(f"{p} ({target.host}:{target.ports[p]})" for p in missing)
    return NotReadyError(
        f"no HTTP answer on port(s) {where} within {timeout:g} s", ports=missing, waited=timeout
    )

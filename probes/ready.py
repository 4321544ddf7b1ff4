"""Wait, with a bound, until the app gives a first HTTP answer on each probe port, or
shows that a port never will (it listens, but speaks neither HTTP nor TLS).

A 502, 503 or 504 is not taken for "ready": it is what a proxy says while its upstream
still starts (nginx in front of a php-fpm or a gunicorn that comes up a moment later), and
what an app says while it warms up. Such a port is waited for until it answers otherwise
or the bound passes; then it is taken as it answers, and probing shows what it serves."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Callable, Optional

import requests

from probes.errors import AppExitedError, NotReadyError, ProbeSpecError
from probes.records import LOOPBACK_ONLY, NOT_HTTP, ReadyInfo, Target
from probes.transport import (
    Answer,
    falls_back_to_https,
    first_reply,
    make_session,
    says_tls_port,
    send,
    speaks_another_protocol,
    tls_handshake,
)

__all__ = ["wait_ready", "target_ports", "NOT_READY_STATUSES"]

NOT_READY_STATUSES = (502, 503, 504)  # "not yet": bad gateway, unavailable, gateway timeout

POLL_INTERVAL = 0.1  # between rounds of attempts; the wait itself is bounded by the deadline
CONNECT_TIMEOUT = 1.0
# A TLS server answers a ClientHello at once, even a traced one; silence that long after
# a ClientHello, from a port that also refused plain HTTP, means no TLS there.
TLS_HANDSHAKE_TIMEOUT = 3.0
# Rounds in which a listening port must refuse both HTTP and TLS before it is called
# "not HTTP": one could be an app closing connections while it finishes starting.
NOT_HTTP_ROUNDS = 2
Listening = Callable[[], Collection[int]]


def target_ports(target: Target, ports: Sequence[int]) -> tuple[int, ...]:
    """The target's ports to probe: `ports`, or all it publishes; each must be published."""
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
    *,
    listening: Optional[Listening] = None,
    loopback_only: Optional[Listening] = None,
    not_ready: Collection[int] = NOT_READY_STATUSES,
) -> tuple[ReadyInfo, ...]:
    """Return one ReadyInfo per port once each has answered HTTP with a status not in
    `not_ready`; at the deadline, a port that answered only those is returned as it is
    (with that status), one that never answered raises NotReadyError.

    A TCP connect alone proves nothing (Docker's proxy accepts on published ports even
    when the app does not listen yet), so an HTTP answer is required; http is tried
    first, then https without certificate checks.
    `listening()`, when given, tells which container ports the app listens on (from
    the kernel's socket table, not through the proxy): a port that listens but refuses
    HTTP (it answers in a protocol of its own, or gives no TLS handshake either) in
    NOT_HTTP_ROUNDS rounds is returned at once with protocol NOT_HTTP instead of being
    waited for. `loopback_only()`, when given, tells
    which ports the app listens on only on its own loopback, out of the published ports'
    reach: one that gives no HTTP answer in NOT_HTTP_ROUNDS rounds while so is returned
    with protocol LOOPBACK_ONLY.
    Raises AppExitedError when app_alive() turns False, NotReadyError at the deadline.
    """
    chosen = target_ports(target, ports)
    start = time.monotonic()
    deadline = start + timeout
    ready: dict[int, ReadyInfo] = {}
    not_yet: dict[int, ReadyInfo] = {}  # the last "not ready yet" answer of each port
    refusals: Counter = Counter()
    with make_session() as session:
        while True:
            _check_alive(app_alive, start, chosen, ready)
            for port in chosen:
                if port in ready:
                    continue
                listened = listening is not None and port in listening()
                protocol, refused, status = _try_port(session, target, port, deadline)
                unreachable = protocol is None and loopback_only is not None \
                    and port in loopback_only()
                refusals[port] += bool(refused and listened or unreachable)
                if protocol is None and refusals[port] >= NOT_HTTP_ROUNDS:
                    protocol = LOOPBACK_ONLY if unreachable else NOT_HTTP
                if protocol is not None:
                    info = ReadyInfo(port, protocol, time.monotonic() - start, status)
                    if status in not_ready:
                        not_yet[port] = info
                    else:
                        ready[port] = info
            if len(ready) == len(chosen):
                return tuple(ready[p] for p in chosen)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _check_alive(app_alive, start, chosen, ready)
                if all(p in ready or p in not_yet for p in chosen):
                    return tuple(ready.get(p) or not_yet[p] for p in chosen)
                raise _not_ready(target, chosen, {**not_yet, **ready}, timeout, listening)
            time.sleep(min(POLL_INTERVAL, remaining))


def _try_port(
    session: requests.Session, target: Target, port: int, deadline: float
) -> tuple[Optional[str], bool, Optional[int]]:
    """(the protocol the port answered HTTP in, or None; whether it refused HTTP: answered
    at once in a protocol of its own, or answered or closed in a way no HTTP server does
    and gave no TLS handshake; the status it answered)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not _tcp_connects(target.host, target.ports[port], remaining):
        return None, False, None
    refused = False
    plain: Optional[Answer] = None  # a plain-HTTP answer that may be a TLS port's (a 400)
    for protocol in ("http", "https"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if protocol == "https" and tls_handshake(
                target.host, target.ports[port], min(TLS_HANDSHAKE_TIMEOUT, remaining)):
            # No TLS here: garbage, a close, or silence to a hello; a plain answer stands,
            # unless it said the port is TLS (Caddy answers so before its certificate is
            # made): then it is not ready yet.
            if plain is not None and plain.status is not None:
                return (None, False, None) if says_tls_port(plain) else \
                    ("http", False, plain.status)
            return None, refused, None
        # A slow first answer (a traced app warming up) may take until the deadline; an
        # app that exits drops the connection, so the wait ends early then too.
        answer = send(session, "GET", target.origin(port, protocol) + "/",
                      headers=target.headers(port, protocol),
                      body=None, timeout=(min(CONNECT_TIMEOUT, remaining), remaining))
        if answer.status is not None and not (protocol == "http" and falls_back_to_https(answer)):
            return protocol, False, answer.status
        if answer.status is None and not answer.protocol_error:
            break  # a timeout: the app is slow, not another protocol
        if protocol == "http":
            plain = answer
            refused = answer.status is None  # garbage, or a close
            if refused and speaks_another_protocol(first_reply(
                    target.host, target.ports[port], min(CONNECT_TIMEOUT, remaining))):
                return None, True, None  # it answered at once, in its own protocol: no TLS
    if plain is not None and plain.status is not None and not says_tls_port(plain):
        return "http", False, plain.status
    return None, False, None


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


def _not_ready(target: Target, ports: Sequence[int], ready: dict, timeout: float,
               listening: Optional[Listening]) -> NotReadyError:
    missing = [p for p in ports if p not in ready]
    where = ", ".join(f"{p} ({target.host}:{target.ports[p]})" for p in missing)
    message = f"no HTTP answer on port(s) {where} within {timeout:g} s"
    if listening is not None:
        message += _listening_detail(missing, frozenset(listening()))
    return NotReadyError(message, ports=missing, waited=timeout)


def _listening_detail(missing: Sequence[int], listened: frozenset[int]) -> str:
    """What the kernel says about the ports that never answered."""
    silent = [str(p) for p in missing if p in listened]
    absent = [p for p in missing if p not in listened]
    parts = []
    if silent:
        parts.append(f"port(s) {', '.join(silent)} accept connections but gave no HTTP answer")
    if absent:
        others = ", ".join(str(p) for p in sorted(listened - set(missing)))
        parts.append(f"nothing listens on port(s) {', '.join(map(str, absent))} in the "
                     "container" + (f" (the app listens on {others})" if others else ""))
    return ": " + "; ".join(parts)

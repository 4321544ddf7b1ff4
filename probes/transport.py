"""Send one HTTP request to the app and measure its answer; no retries, no redirects."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional, Union

import requests
from urllib3.exceptions import InsecureRequestWarning

__all__ = ["Answer", "make_session", "send", "describe_error", "falls_back_to_https",
           "tls_handshake"]

USER_AGENT = "minify-probe/0.1"
KEEP_BODY_LIMIT = 8 * 1024 * 1024  # bodies kept for link extraction; larger ones only hashed
Timeout = Union[float, tuple[float, float]]  # seconds, or (connect, read) as requests takes it


@dataclass(frozen=True)
class Answer:
    """What came back for one request: an HTTP answer or an error, and how long it took."""

    status: Optional[int]
    content_type: Optional[str]
    length: Optional[int]
    sha256: Optional[str]
    elapsed: float
    error: Optional[str]
    location: Optional[str] = None
    body: Optional[bytes] = None  # kept only up to KEEP_BODY_LIMIT
    protocol_error: bool = False  # the port may speak another protocol (http vs https)


def make_session() -> requests.Session:
    """A session that ignores proxy/netrc settings from the environment: we talk to loopback."""
    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    return session


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Optional[bytes],
    timeout: Timeout,
) -> Answer:
    """Send the request, read the whole body (so the app really serves it), hash it."""
    start = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            response = session.request(
                method, url, headers=dict(headers), data=body, timeout=timeout,
                allow_redirects=False, verify=False, stream=True,
            )
        with response:
            digest, length, kept = hashlib.sha256(), 0, bytearray()
            for chunk in response.iter_content(64 * 1024):
                digest.update(chunk)
                length += len(chunk)
                if len(kept) < KEEP_BODY_LIMIT:
                    kept.extend(chunk)
    except requests.RequestException as exc:
        elapsed = time.monotonic() - start
        return Answer(None, None, None, None, elapsed, describe_error(exc, timeout),
                      protocol_error=_is_protocol_error(exc))
    return Answer(
        status=response.status_code,
        content_type=response.headers.get("Content-Type"),
        length=length,
        sha256=digest.hexdigest(),
        elapsed=time.monotonic() - start,
        error=None,
        location=response.headers.get("Location"),
        body=bytes(kept[:KEEP_BODY_LIMIT]),
    )


def tls_handshake(host: str, port: int, timeout: float) -> Optional[str]:
    """None when a TLS handshake with host:port completes within `timeout` (certificate
    not checked: only whether the port speaks TLS), else why not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock):
                return None
    except socket.timeout:
        return f"no TLS handshake within {round(timeout, 1):g} s"
    except (ssl.SSLError, OSError) as exc:
        return f"no TLS handshake ({getattr(exc, 'reason', None) or exc.strerror or exc})"


def first_reply(host: str, port: int, timeout: float) -> bytes:
    """The first bytes host:port sends back to a plain HTTP request line within `timeout`
    (b"": none, or it closed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(64)
    except OSError:  # refused, reset, or silent until the bound
        return b""


def speaks_another_protocol(reply: bytes) -> bool:
    """Whether a first reply to plain HTTP is neither HTTP nor TLS: Redis' "-ERR", a
    database's or SSH's greeting. A TLS port closes, sends an alert (a TLS record, first
    byte 0x14-0x17) or answers HTTP 400 (Go, nginx); a starting app closes."""
    return bool(reply) and not reply.startswith(b"HTTP/") and reply[0] not in range(0x14, 0x18)


# What servers answer (with 400) to plain HTTP on a TLS port: nginx, Go's net/http,
# Apache's mod_ssl.
_TLS_PORT_SAYS = (b"plain HTTP request was sent to HTTPS port",
                  b"Client sent an HTTP request to an HTTPS server",
                  b"speaking plain HTTP to an SSL-enabled server port")


def says_tls_port(answer: Answer) -> bool:
    """Whether a plain-HTTP answer says in words that the port speaks TLS (so a failed
    handshake there means its TLS is not up yet, not that it has none)."""
    return answer.status == 400 and any(s in (answer.body or b"") for s in _TLS_PORT_SAYS)


def falls_back_to_https(answer: Answer) -> bool:
    """True when a plain-HTTP attempt suggests the port may speak HTTPS: it failed in a way
    no HTTP server fails, or it got 400 Bad Request, which is what nginx ("The plain HTTP
    request was sent to HTTPS port"), Go's net/http (Caddy, Traefik: "Client sent an HTTP
    request to an HTTPS server"), Apache's mod_ssl and others answer on a TLS port. An
    https attempt then decides: a port without TLS keeps its plain answer."""
    return answer.protocol_error or answer.status == 400


def _is_protocol_error(exc: requests.RequestException) -> bool:
    # Refused/reset/garbled connections and TLS failures; not timeouts (a slow app).
    return isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout)


def describe_error(exc: BaseException, timeout: Timeout) -> str:
    """A short human reason instead of urllib3's nested exception text."""
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        seconds = timeout[0] if isinstance(timeout, tuple) else timeout
        return f"no connection within {round(seconds, 1):g} s"
    if isinstance(exc, requests.Timeout):
        # urllib3 bounds the TLS handshake by the connect timeout and then reports a read
        # timeout: the bound that expired is the one in its message.
        said = re.search(r"timeout=([0-9.]+)", text)
        seconds = timeout[1] if isinstance(timeout, tuple) else timeout
        return f"no answer within {round(float(said.group(1)) if said else seconds, 1):g} s"
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed without an answer"),
        ("BadStatusLine", "not an HTTP answer"),
        ("SSL", "TLS handshake failed"),
        ("Connection aborted", "connection closed without an answer"),
        ("ChunkedEncodingError", "answer body cut short"),
    ):
        if needle in text or needle in type(exc).__name__:
            return reason
    return f"{type(exc).__name__}: {text}"[:200]

"""Frozen records the probe package takes and returns: commands, targets, options, results."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Optional

from probes.errors import ProbeSpecError

__all__ = [
    "HTTP_METHODS",
    "PROTOCOLS",
    "STATUS_CLASSES",
    "ProbeCommand",
    "Target",
    "HttpProbeOptions",
    "RequestResult",
    "ProbeSummary",
    "ReadyInfo",
    "ContinueAfter",
    "CONTINUE_AFTER_MODES",
    "DISCOVERED_BY",
    "APISPEC_METHODS",
    "UNSUPPORTED_STATUSES",
    "NOT_HTTP",
    "LOOPBACK_ONLY",
    "ApiDocument",
    "ApiSpecUse",
]

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
PROTOCOLS = ("http", "https")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "unsupported", "error")
CONTINUE_AFTER_MODES = ("probe", "timeout", "signal", "enter", "exec")
FAIL_ON = ("5xx", "none")
# How a request came to be made: minify's own GET/HEAD /, the user's probe commands, a
# link found while crawling, a path every browser and crawler asks for (robots.txt,
# favicon.ico, a sitemap, API documents), or an operation of an API document.
DISCOVERED_BY = ("default", "user", "crawl", "well-known", "apispec")
APISPEC_METHODS = ("get", "all")  # "get": only GET and HEAD operations (never destructive)
# Answers meaning "this server does not do that method here": for a request minify made
# up itself they say nothing about the app's health.
UNSUPPORTED_STATUSES = (405, 501)
NOT_HTTP = "not-http"  # ReadyInfo.protocol of a port that accepts TCP but speaks no HTTP
# ReadyInfo.protocol of a port the app listens on only on its own loopback: the target's
# published port cannot reach it
LOOPBACK_ONLY = "loopback-only"


def _valid_port(port: object) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


@dataclass(frozen=True)
class ProbeCommand:
    """One user-defined request (docker-slim's `--http-probe-cmd` / probe-file entry)."""

    method: str = "GET"
    resource: str = "/"  # path (and query) on the app, always starting with "/"
    port: Optional[int] = None  # container port; None = every probe port
    protocol: Optional[str] = None  # "http" / "https"; None = whatever the port speaks
    headers: tuple[tuple[str, str], ...] = ()
    body: Optional[str] = None
    body_file: Optional[str] = None  # absolute path; its bytes are sent as the body
    username: Optional[str] = None  # basic auth
    password: Optional[str] = None
    crawl: bool = False  # crawl from this resource too


@dataclass(frozen=True)
class Target:
    """Where the app answers: container port -> published host port on `host`.

    Requests go only to `host` (loopback by default), never to another address. The app
    is addressed, in its Host header, by `host` and the container port: the published
    port is picked at random in each run, the container port is the same in all of them,
    so an answer that echoes its host (an absolute URL, a server's error page) is the
    same in every run, and a link to that address is a link within the app.
    """

    ports: Mapping[int, int]
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        for cport, hport in self.ports.items():
            if not (_valid_port(cport) and _valid_port(hport)):
                raise ValueError(f"invalid port mapping {cport!r} -> {hport!r}")
        object.__setattr__(self, "ports", MappingProxyType(dict(self.ports)))

    def origin(self, port: int, protocol: str) -> str:
        """The base URL (no trailing slash) for container `port` spoken as `protocol`."""
        return f"{protocol}://{self.host}:{self.ports[port]}"

    def authority(self, port: int, protocol: str) -> str:
        """The Host header for container `port`: `host`, and the container port unless it
        is the protocol's own (80, 443), as a browser writes it."""
        default = {"http": 80, "https": 443}.get(protocol)
        return self.host if port == default else f"{self.host}:{port}"

    def app_origin(self, port: int, protocol: str) -> str:
        """The base URL the app is addressed as (the Host header's), the same in every run:
        what links within the app are resolved against."""
        return f"{protocol}://{self.authority(port, protocol)}"

    def headers(self, port: int, protocol: str,
                extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        """`extra` with the Host header added, unless `extra` names one itself."""
        extra = dict(extra or {})
        if any(name.lower() == "host" for name in extra):
            return extra
        return {"Host": self.authority(port, protocol), **extra}


@dataclass(frozen=True)
class ApiDocument:
    """An OpenAPI 3.x or Swagger 2.0 document, parsed, and where it came from."""

    source: str  # a path in the app ("/openapi.json") or a file name
    version: str  # "3.0.2", "3.1.0" or "2.0"
    doc: Mapping[str, object] = field(hash=False)  # the parsed document (JSON or YAML)
    base_path: str = ""  # what the document's servers/basePath put before every path


@dataclass(frozen=True)
class HttpProbeOptions:
    """How to probe: which ports, what to send, and the bounds on time and requests."""

    ports: tuple[int, ...] = ()  # container ports to probe; empty = all in the target
    start_wait: float = 60.0  # how long to wait for the first HTTP answer
    default_probe: bool = True  # GET / and HEAD / on each port
    crawl: bool = True
    max_depth: int = 3
    max_pages: int = 1000  # crawled pages per port
    commands: tuple[ProbeCommand, ...] = ()
    fail_on: str = "5xx"  # or "none"
    request_timeout: float = 10.0
    time_budget: float = 300.0  # overall bound on probing time
    max_requests: int = 5000
    # with the crawl: robots.txt, favicon.ico, the sitemaps robots.txt names, and API
    # documents linked from / or at well-known paths
    well_known: bool = True
    apispec_paths: tuple[str, ...] = ()  # API documents at these paths in the app
    apispec_docs: tuple[ApiDocument, ...] = ()  # API documents given as files
    apispec_methods: str = "get"  # "get": GET and HEAD operations only; "all": every one

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON:
            raise ProbeSpecError(f"fail_on: {self.fail_on!r} is not one of {', '.join(FAIL_ON)}")
        if self.apispec_methods not in APISPEC_METHODS:
            raise ProbeSpecError(f"apispec methods: {self.apispec_methods!r} is not one of "
                                 f"{', '.join(APISPEC_METHODS)}")
        for path in self.apispec_paths:
            if not path.startswith("/"):
                raise ProbeSpecError(f"apispec path {path!r} does not start with '/'")
        for name in ("start_wait", "request_timeout", "time_budget"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ProbeSpecError(f"{name}: {value!r} is not a positive number of seconds")
        for name in ("max_depth", "max_pages", "max_requests"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 0):
                raise ProbeSpecError(f"{name}: {value!r} is not a non-negative integer")


@dataclass(frozen=True)
class RequestResult:
    """One request as sent (enough to replay it) and the answer it got."""

    method: str
    url: str
    path: str  # path and query, as sent
    port: int  # container port
    protocol: str
    status: Optional[int]  # None when no HTTP answer came
    content_type: Optional[str]
    length: Optional[int]  # body bytes received
    sha256: Optional[str]  # of the body received
    elapsed: float  # seconds, including reading the body
    error: Optional[str]  # why no answer came
    discovered_by: str  # one of DISCOVERED_BY
    headers: tuple[tuple[str, str], ...] = ()  # headers we added (not the library defaults)
    body: Optional[bytes] = None  # body sent

    @property
    def invented(self) -> bool:
        """Minify chose this request itself (the user did not ask for it)."""
        return self.discovered_by != "user"

    @property
    def status_class(self) -> str:
        """"2xx".."5xx" from the status, "unsupported" for a 405/501 to a request minify
        invented, or "error" when there was no answer."""
        if self.status is None or not 100 <= self.status <= 599:
            return "error"
        if self.invented and self.status in UNSUPPORTED_STATUSES:
            return "unsupported"
        if self.status < 200:
            return "2xx"  # informational finals do not reach us; treat as answered
        return f"{self.status // 100}xx"

    @property
    def succeeded(self) -> bool:
        return self.status_class in ("2xx", "3xx")

    def describe(self) -> str:
        """`GET /x -> 500` or `GET /x -> connection refused`."""
        outcome = str(self.status) if self.status is not None else (self.error or "no answer")
        return f"{self.method} {self.path} -> {outcome}"


@dataclass(frozen=True)
class ApiSpecUse:
    """One API document the run used on one port, and what it made of it."""

    source: str  # path in the app, or file name
    port: int
    version: str
    discovered_by: str  # "well-known", "crawl" (linked from /), "user" (flag or file)
    operations: int  # operations in the document
    requests: int  # requests sent for them
    skipped: tuple[str, ...] = ()  # "POST /orders: ..." operations not sent, and why


@dataclass(frozen=True)
class ProbeSummary:
    """Everything one probing run did and whether it counts as passed."""

    requests: tuple[RequestResult, ...]
    discovered: tuple[str, ...]  # same-origin URLs found by crawling
    counts: Mapping[str, int]  # by status class: 2xx 3xx 4xx 5xx unsupported error
    failure: Optional[str]  # why the run failed, or None
    notes: tuple[str, ...] = field(default=())  # bounds hit, URLs left unfetched
    apispecs: tuple[ApiSpecUse, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class ReadyInfo:
    """A port that gave its first HTTP answer (or showed it never will): how it spoke
    and after how long."""

    port: int  # container port
    # "http", "https"; NOT_HTTP: accepts connections, speaks no HTTP; LOOPBACK_ONLY:
    # listened on only where the published port cannot reach
    protocol: str
    elapsed: float  # seconds since waiting started
    status: Optional[int] = None  # of the answer that ended the wait (None: no answer)

    @property
    def speaks_http(self) -> bool:
        return self.protocol in PROTOCOLS


@dataclass(frozen=True)
class ContinueAfter:
    """When tracing should stop: after probing, a timeout, a signal, Enter, or exec commands."""

    mode: str
    seconds: Optional[float] = None  # only for mode "timeout"

    def __post_init__(self) -> None:
        if self.mode not in CONTINUE_AFTER_MODES:
            raise ProbeSpecError(
                f"continue-after: {self.mode!r} is not one of {', '.join(CONTINUE_AFTER_MODES)}"
            )
        if (self.mode == "timeout") != (self.seconds is not None):
            raise ProbeSpecError("continue-after: seconds go with mode 'timeout' and only with it")

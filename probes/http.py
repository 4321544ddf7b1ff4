"""Exercise the app over HTTP: default probe, user commands, well-known paths, API
documents, crawl; judge and replay the results."""

from __future__ import annotations

import base64
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urljoin

from requests import Session

from probes import discovery
from probes.errors import ProbeSpecError
from probes.links import extract_links, path_of, same_origin
from probes.ready import target_ports
from probes.records import (
    STATUS_CLASSES,
    ApiSpecUse,
    HttpProbeOptions,
    ProbeCommand,
    ProbeSummary,
    RequestResult,
    Target,
)
from probes.transport import Answer, falls_back_to_https, make_session, send

__all__ = ["run", "replay", "evaluate", "counts"]

OnRequest = Optional[Callable[[RequestResult], None]]
Headers = tuple[tuple[str, str], ...]
_LISTED = 5  # how many offending requests a failure message names
# A link that ends the session the probes log in with (Django's /admin/logout/): every
# page crawled after it would be the login page.
_LOG_OUT = re.compile(r"(?i)(?:^|/)(?:log|sign)[-_]?(?:out|off)(?:[/.?;]|$)")
_HOW = {"crawl": "found by crawling", "well-known": "a well-known path",
        "apispec": "from the API document"}


def run(target: Target, options: HttpProbeOptions, on_request: OnRequest = None) -> ProbeSummary:
    """Probe every port: GET/HEAD /, the commands, the well-known paths (robots.txt,
    favicon.ico, a sitemap, API documents), the API operations, then the crawl; all
    within bounds."""
    ports = target_ports(target, options.ports)
    bodies = _command_bodies(target, options.commands)
    with make_session() as session:
        prober = _Prober(target, options, session, on_request)
        if options.default_probe:
            for port in ports:
                prober.request(port, "GET", "/", "default")
                prober.request(port, "HEAD", "/", "default")
        for index, command in enumerate(options.commands):
            for port in (command.port,) if command.port else ports:
                prober.command(port, command, bodies[index])
        # Only on ports that answered at all: a port that refuses everything gets no
        # dozen more refused requests.
        sitemap_seeds = {p: discovery.well_known(prober, p)
                         if prober.discovering and p in prober.protocols else [] for p in ports}
        doc_pages = {p: discovery.api_documents(prober, p) for p in ports}
        extra = sorted({c.port for c in options.commands if c.port} - set(ports))
        for port in (*ports, *extra):
            seeds = [("/", "crawl")] if options.crawl and port in ports else []
            seeds += [(c.resource, "crawl") for c in options.commands
                      if c.crawl and (c.port == port or (c.port is None and port in ports))]
            if options.crawl:
                seeds += sitemap_seeds.get(port, []) + doc_pages.get(port, [])
            prober.crawl(port, seeds)
    results = tuple(prober.results)
    failure = "; ".join(p for p in (evaluate(results, options.fail_on), *prober.problems) if p)
    return ProbeSummary(
        requests=results,
        discovered=tuple(prober.discovered),
        counts=counts(results),
        failure=failure or None,
        notes=prober.notes(),
        apispecs=tuple(prober.apispecs),
    )


def replay(
    target: Target,
    requests: Sequence[RequestResult],
    *,
    timeout: float = 10.0,
    on_request: OnRequest = None,
) -> tuple[RequestResult, ...]:
    """Send the same requests again, in order, and return what the app answers now."""
    if requests:
        target_ports(target, sorted({r.port for r in requests}))
    results = []
    with make_session() as session:
        for old in requests:
            url = target.origin(old.port, old.protocol) + old.path
            answer = send(session, old.method, url,
                          headers=target.headers(old.port, old.protocol, dict(old.headers)),
                          body=old.body, timeout=timeout)
            result = _result(old.method, url, old.path, old.port, old.protocol, answer,
                             old.discovered_by, old.headers, old.body)
            results.append(result)
            if on_request is not None:
                on_request(result)
    return tuple(results)


def counts(requests: Sequence[RequestResult]) -> dict[str, int]:
    """Requests per status class: 2xx, 3xx, 4xx, 5xx, unsupported, error (all keys)."""
    tally = dict.fromkeys(STATUS_CLASSES, 0)
    for result in requests:
        tally[result.status_class] += 1
    return tally


def evaluate(requests: Sequence[RequestResult], fail_on: str) -> Optional[str]:
    """Why the probing failed, or None. 4xx answers are reported elsewhere, never fatal,
    and so are 405/501 answers to requests minify invented ("unsupported").

    Fails when no request got a 2xx/3xx, when a default or user request got no answer
    at all, and (fail_on "5xx") when any request got a 5xx.
    """
    if not requests:
        return "no request was made"
    many_ports = len({r.port for r in requests}) > 1
    problems = []
    if not any(r.succeeded for r in requests):
        tally = counts(requests)
        summary = ", ".join(f"{n} {k}" for k, n in tally.items() if n)
        problems.append(f"no request succeeded ({summary})")
    unanswered = [r for r in requests
                  if r.status is None and r.discovered_by in ("default", "user")]
    if unanswered:
        problems.append("no answer: " + _listing(unanswered, many_ports))
    if fail_on == "5xx":
        errors = [r for r in requests if r.status_class == "5xx"]
        if errors:
            problems.append("server errors: " + _listing(errors, many_ports))
    return "; ".join(problems) or None


def _listing(results: Sequence[RequestResult], many_ports: bool) -> str:
    names = []
    for r in results:
        notes = [f"port {r.port}"] if many_ports else []
        notes += [_HOW[r.discovered_by]] if r.discovered_by in _HOW else []
        name = r.describe() + (f" ({', '.join(notes)})" if notes else "")
        if name not in names:
            names.append(name)
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _command_bodies(target: Target, commands: Sequence[ProbeCommand]) -> list[Optional[bytes]]:
    bodies: list[Optional[bytes]] = []
    for index, command in enumerate(commands):
        if command.port is not None and command.port not in target.ports:
            published = ", ".join(str(p) for p in sorted(target.ports))
            raise ProbeSpecError(f"commands[{index}].port: container port {command.port} is "
                                 f"not published (published: {published})")
        if command.body_file is not None:
            try:
                bodies.append(Path(command.body_file).read_bytes())
            except OSError as exc:
                raise ProbeSpecError(f"commands[{index}].body_file: cannot read "
                                     f"{command.body_file!r}: {exc.strerror}") from exc
        else:
            bodies.append(command.body.encode() if command.body is not None else None)
    return bodies


def _result(method: str, url: str, path: str, port: int, protocol: str, answer: Answer,
            discovered_by: str, headers: Headers, body: Optional[bytes]) -> RequestResult:
    return RequestResult(
        method=method, url=url, path=path, port=port, protocol=protocol,
        status=answer.status, content_type=answer.content_type, length=answer.length,
        sha256=answer.sha256, elapsed=answer.elapsed, error=answer.error,
        discovered_by=discovered_by, headers=headers, body=body,
    )


class _Prober:
    """The state of one probing run: results so far, each port's protocol, links, bounds."""

    def __init__(self, target: Target, options: HttpProbeOptions,
                 session: Session, on_request: OnRequest) -> None:
        self.target, self.options, self.session = target, options, session
        self.on_request = on_request
        self.deadline = time.monotonic() + options.time_budget
        self.results: list[RequestResult] = []
        self.discovered: dict[str, None] = {}  # an ordered set
        self.protocols: dict[int, str] = {}
        self.page_links: dict[tuple[int, str], list[str]] = {}  # GET responses' links (paths)
        self.root_answers: dict[int, Answer] = {}  # each port's GET / answer
        self.sent: set[tuple[int, str, str, Optional[bytes]]] = set()
        self.crawl_seen: dict[int, set[str]] = {}
        self.crawl_pages: dict[int, int] = {}
        self.skipped = 0  # default/user requests not sent because a bound was hit
        self.unfetched: dict[int, tuple[int, str]] = {}  # port -> (URLs left, why)
        self.logout_links: dict[int, list[str]] = {}  # port -> log-out links not crawled
        self.bound_hit: Optional[str] = None
        self.apispecs: list[ApiSpecUse] = []
        self.problems: list[str] = []  # failures that are not about one answer
        # Well-known paths and API documents are found like pages: part of the crawl.
        self.discovering = options.crawl and options.well_known

    def command(self, port: int, command: ProbeCommand, body: Optional[bytes]) -> None:
        headers = command.headers
        if command.username is not None:
            pair = f"{command.username}:{command.password or ''}".encode()
            headers += (("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")),)
        self.request(port, command.method, command.resource, "user", headers=headers,
                     body=body, protocol=command.protocol)

    def request(self, port: int, method: str, path: str, discovered_by: str, *,
                headers: Headers = (), body: Optional[bytes] = None,
                protocol: Optional[str] = None) -> Optional[RequestResult]:
        """Send one request (finding the port's protocol on first use) and record it."""
        sent = self.exchange(port, method, path, discovered_by, headers=headers, body=body,
                             protocol=protocol)
        return sent[0] if sent is not None else None

    def exchange(self, port: int, method: str, path: str, discovered_by: str, *,
                 headers: Headers = (), body: Optional[bytes] = None,
                 protocol: Optional[str] = None) -> Optional[tuple[RequestResult, Answer]]:
        """`request`, also giving the answer (with its body); None when a bound was hit."""
        if not self._within_bounds():
            self.skipped += discovered_by in ("default", "user")
            return None
        protocol = protocol or self.protocols.get(port)
        answer, used = self._send(port, protocol or "http", method, path, headers, body)
        if protocol is None and falls_back_to_https(answer):
            secure, _ = self._send(port, "https", method, path, headers, body)
            if secure.status is not None:
                answer, used = secure, "https"
            elif answer.status is None:
                answer = replace(answer, error=f"http: {answer.error}; https: {secure.error}")
        if protocol is None and answer.status is not None:
            self.protocols[port] = used
        url = self.target.origin(port, used) + path
        result = _result(method, url, path, port, used, answer, discovered_by, headers, body)
        self.results.append(result)
        self.sent.add((port, method, path, body))
        if method == "GET":
            self.page_links[(port, path)] = self._links(
                self.target.app_origin(port, used) + path, answer)
            if path == "/":
                self.root_answers[port] = answer
        if self.on_request is not None:
            self.on_request(result)
        return result, answer

    def _send(self, port: int, protocol: str, method: str, path: str,
              headers: Headers, body: Optional[bytes]) -> tuple[Answer, str]:
        remaining = max(self.deadline - time.monotonic(), 0.05)
        url = self.target.origin(port, protocol) + path
        return send(self.session, method, url,
                    headers=self.target.headers(port, protocol, dict(headers)), body=body,
                    timeout=min(self.options.request_timeout, remaining)), protocol

    def _links(self, url: str, answer: Answer) -> list[str]:
        """Paths to crawl from an answer: its HTML/CSS links, or a same-origin redirect.
        `url` is the page as the app is addressed (Target.app_origin): a link to that
        origin is a link within the app."""
        found: list[str] = []
        if answer.status is not None and 300 <= answer.status < 400 and answer.location:
            location = urljoin(url, answer.location.strip()).split("#", 1)[0]
            if same_origin(location, url):
                found.append(location)
        elif answer.status is not None and 200 <= answer.status < 300:
            found = extract_links(url, answer.content_type, answer.body)
        return [path_of(link) for link in found]

    def _within_bounds(self) -> bool:
        if self.bound_hit is None:
            if len(self.results) >= self.options.max_requests:
                self.bound_hit = f"stopped at max_requests ({self.options.max_requests})"
            elif time.monotonic() >= self.deadline:
                self.bound_hit = f"stopped at the time budget ({self.options.time_budget:g} s)"
        return self.bound_hit is None

    def crawl(self, port: int, seeds: Sequence[tuple[str, str]]) -> None:
        """Breadth-first GETs from the seeds (path, how it was found), each path once per
        port, within the bounds."""
        seen = self.crawl_seen.setdefault(port, set())
        queue: deque[tuple[str, int, str]] = deque()
        for seed, how in seeds:
            if seed not in seen:
                seen.add(seed)
                queue.append((seed, 0, how))
        while queue:
            path, depth, how = queue.popleft()
            links = self._page(port, path, how)
            if links is None:
                left = self.unfetched.get(port, (0, ""))[0] + len(queue) + 1
                why = self.bound_hit or f"stopped at max_pages ({self.options.max_pages})"
                self.unfetched[port] = (left, why)
                return
            for link in links:
                url = self.target.app_origin(port, self.protocols.get(port, "http")) + link
                self.discovered.setdefault(url, None)
                if depth < self.options.max_depth and link not in seen:
                    seen.add(link)
                    if _LOG_OUT.search(link.split("?", 1)[0]):
                        self.logout_links.setdefault(port, []).append(link)
                        continue
                    queue.append((link, depth + 1, "crawl"))

    def _page(self, port: int, path: str, how: str) -> Optional[list[str]]:
        """The links of a page, fetched now unless an earlier GET already did; None = stop."""
        if (port, path) in self.page_links:
            return self.page_links[(port, path)]
        if self.crawl_pages.get(port, 0) >= self.options.max_pages:
            return None
        if self.request(port, "GET", path, how) is None:
            return None
        self.crawl_pages[port] = self.crawl_pages.get(port, 0) + 1
        return self.page_links[(port, path)]

    def notes(self) -> tuple[str, ...]:
        """One line per bound that cut the run short, with what was left undone."""
        notes = []
        if self.bound_hit is not None and self.skipped:
            notes.append(f"{self.bound_hit}; {self.skipped} default/command request(s) not sent")
        for port, (left, why) in sorted(self.unfetched.items()):
            notes.append(f"port {port}: crawl {why}; {left} URL(s) not fetched")
        for port, links in sorted(self.logout_links.items()):
            notes.append(f"port {port}: not crawled, as a log-out link would end the probes' "
                         f"session: {', '.join(links[:_LISTED])}")
        return tuple(notes)

"""What every browser and crawler asks a site for, and the API behind it.

robots.txt, favicon.ico and the sitemaps robots.txt names (a sitemap's URLs become crawl
seeds; their host is ignored, as sitemaps name the public host and the app here is that
site); then OpenAPI/Swagger documents: at the paths the user gave, as files the user
gave, or else linked from the root answer and at every one of the frameworks' well-known
paths, and the pages that show them (Swagger UI, Redoc). Each operation of a document
becomes a request; a page found there (HTML, or a redirect to one) becomes a crawl seed,
so what it loads is asked for too. A 404 on any of these is an honest answer.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Optional

from probes.apispec import (
    DOC_PAGES,
    WELL_KNOWN_PATHS,
    looks_like_spec_path,
    parse_document,
    plan_requests,
)
from probes.errors import ProbeSpecError
from probes.links import path_of, quoted_paths, robots_sitemaps, sitemap_urls, sniff
from probes.records import ApiDocument, ApiSpecUse, RequestResult
from probes.transport import Answer

if TYPE_CHECKING:  # the prober's state lives in probes.http, which calls these
    from probes.http import _Prober

__all__ = ["well_known", "api_documents"]

_MAX_SITEMAP = 8 * 1024 * 1024  # bytes of a gzip'ed sitemap inflated at most
_MAX_LINKED = 5  # document candidates taken from the root answer
_Seeds = list[tuple[str, str]]


def well_known(prober: _Prober, port: int) -> _Seeds:
    """GET /robots.txt and /favicon.ico; return the pages the named sitemaps list."""
    seeds: _Seeds = []
    robots = prober.exchange(port, "GET", "/robots.txt", "well-known")
    prober.request(port, "GET", "/favicon.ico", "well-known")
    if robots is not None and robots[0].succeeded and robots[1].body:
        for url in robots_sitemaps(robots[1].body.decode("utf-8", "replace")):
            seeds += _sitemap(prober, port, path_of(url), nested=True)
    unique: dict[str, None] = dict.fromkeys(path for path, _ in seeds)
    return [(path, "well-known") for path in unique]


def _sitemap(prober: _Prober, port: int, path: str, nested: bool) -> _Seeds:
    sent = prober.exchange(port, "GET", path, "well-known")
    if sent is None or not sent[0].succeeded or not sent[1].body:
        return []
    body = sent[1].body
    if body[:2] == b"\x1f\x8b":  # sitemap.xml.gz
        body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, _MAX_SITEMAP)
    index, urls = sitemap_urls(body.decode("utf-8", "replace"))
    if not index:
        return [(path_of(url), "well-known") for url in urls]
    if not nested:
        return []  # an index inside an index: sitemaps nest one level only
    return [seed for url in urls for seed in _sitemap(prober, port, path_of(url), False)]


def api_documents(prober: _Prober, port: int) -> _Seeds:
    """Find the port's API documents and send one request per operation; return the
    pages found at the documents' addresses, to crawl."""
    options = prober.options
    found: list[tuple[ApiDocument, str]] = []
    for path in options.apispec_paths:
        doc, why = _fetch_document(prober, port, path, "user")
        if doc is not None:
            found.append((doc, "user"))
        elif why:
            prober.problems.append(f"--http-probe-apispec {path} (port {port}): {why}")
    found += [(doc, "user") for doc in options.apispec_docs]
    pages: _Seeds = []
    if not found and prober.discovering and port in prober.protocols:
        # Every candidate, not the first document only: an app may serve its document at
        # one address and the page that shows it at another (/openapi.json, /api-docs).
        for path, how in _candidates(prober, port):
            sent = prober.exchange(port, "GET", path, how)
            if sent is None:
                break  # a bound was hit
            doc, _ = _document(*sent, path)
            if doc is not None:
                found.append((doc, how))
            elif _a_page(prober, port, *sent):
                pages.append((path, how))
    for doc, how in found:
        _exercise(prober, port, doc, how)
    return pages


def _candidates(prober: _Prober, port: int) -> _Seeds:
    """Document addresses named in the root answer first, then the well-known paths of
    documents and of the pages that show them."""
    root = prober.root_answers.get(port)
    linked: list[str] = []
    if root is not None and root.status is not None and 200 <= root.status < 300:
        base = prober.target.app_origin(port, prober.protocols.get(port, "http")) + "/"
        linked = [p for p in quoted_paths(base, root.body) if looks_like_spec_path(p)]
        linked = linked[:_MAX_LINKED]
    return [(p, "crawl") for p in linked] + [(p, "well-known")
                                             for p in (*WELL_KNOWN_PATHS, *DOC_PAGES)
                                             if p not in linked]


def _fetch_document(prober: _Prober, port: int, path: str,
                    how: str) -> tuple[Optional[ApiDocument], str]:
    """The document at `path`, or None and why not ("" when a bound stopped the run)."""
    sent = prober.exchange(port, "GET", path, how)
    if sent is None:
        return None, ""
    return _document(*sent, path)


def _document(result: RequestResult, answer: Answer,
              path: str) -> tuple[Optional[ApiDocument], str]:
    if not (result.status is not None and 200 <= result.status < 300):
        return None, f"{result.describe()}, no API document there"
    try:
        return parse_document(answer.body or b"", path), ""
    except ProbeSpecError as exc:
        return None, exc.message


def _a_page(prober: _Prober, port: int, result: RequestResult, answer: Answer) -> bool:
    """An HTML page, or a redirect (to one, as a browser follows it), that is not the
    root answer again (a single-page app gives its index page for every path)."""
    root = prober.root_answers.get(port)
    if root is not None and answer.sha256 == root.sha256 and answer.status == root.status:
        return False
    if result.status is not None and 300 <= result.status < 400:
        return True
    return result.succeeded and sniff(result.url, answer.content_type, answer.body) == "html"


def _exercise(prober: _Prober, port: int, doc: ApiDocument, how: str) -> None:
    plan = plan_requests(doc, prober.options.apispec_methods)
    covered = 0
    for req in plan.requests:
        if (port, req.method, req.path, req.body) in prober.sent:
            covered += 1  # the same request was already made (by the user, or GET /)
        elif prober.request(port, req.method, req.path, "apispec", headers=req.headers,
                            body=req.body) is not None:
            covered += 1
    prober.apispecs.append(ApiSpecUse(
        source=doc.source, port=port, version=doc.version, discovered_by=how,
        operations=plan.operations, requests=covered, skipped=plan.skipped))

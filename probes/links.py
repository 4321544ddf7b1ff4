"""Find same-origin links in HTML and CSS so the crawler can request them, reading a
page the way a browser would: an answer without a usable Content-Type is sniffed
(WHATWG MIME sniffing for HTML), and robots.txt and sitemaps are read like a crawler."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Optional, Union
from urllib.parse import urldefrag, urljoin, urlsplit

__all__ = ["extract_links", "is_html", "is_css", "same_origin", "sniff", "robots_sitemaps",
           "sitemap_urls", "refresh_url", "path_of", "quoted_paths"]

# (tag, attribute) pairs whose value is one URL.
_URL_ATTRS = {
    ("a", "href"), ("area", "href"), ("link", "href"), ("script", "src"), ("img", "src"),
    ("source", "src"), ("iframe", "src"), ("frame", "src"), ("embed", "src"),
    ("video", "src"), ("video", "poster"), ("audio", "src"), ("track", "src"),
    ("input", "src"), ("object", "data"), ("body", "background"), ("table", "background"),
    ("td", "background"), ("html", "manifest"),
}
_SRCSET_ATTRS = {("img", "srcset"), ("source", "srcset"), ("link", "imagesrcset")}
# Content-Types that say nothing about the body: a browser sniffs those (text/plain is
# sniffed here too, as the crawler wants the pages a hand-written server mislabels).
_GENERIC_TYPES = {"", "application/octet-stream", "unknown/unknown", "application/unknown",
                  "*/*", "binary/octet-stream", "text/plain"}
# WHATWG MIME sniffing, "rules for identifying an unknown MIME type": after leading
# whitespace, one of these (case-insensitive) followed by a space or ">" means HTML.
_HTML_SIGNATURES = (b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1",
                    b"<div", b"<font", b"<table", b"<a", b"<style", b"<title", b"<b",
                    b"<body", b"<br", b"<p", b"<!--")
_SNIFF_BYTES = 1445  # the spec's resource header length
_WHITESPACE = b"\t\n\x0c\r "
_REFRESH = re.compile(r"^\s*[0-9.]*\s*[;,]?\s*(?:url\s*=\s*)?(['\"]?)(.*?)\1\s*$", re.I | re.S)
_SITEMAP_LINE = re.compile(r"^\s*sitemap\s*:\s*(\S+)", re.I | re.M)
_LOC = re.compile(r"<loc>\s*([^<\s]+)\s*</loc>", re.I)
# A URL or absolute path standing alone in quotes, parentheses or whitespace: how HTML
# attributes, JSON strings and inline scripts all name one.
_QUOTED_PATH = re.compile(r"""(?:https?://[^\s"'<>()]+|(?<![\w.:/<])/[^\s"'<>()]*)""")
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s'"]*))\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.I)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_html(content_type: Optional[str]) -> bool:
    return _mime(content_type) in ("text/html", "application/xhtml+xml")


def is_css(content_type: Optional[str]) -> bool:
    return _mime(content_type) == "text/css"


def same_origin(a: str, b: str) -> bool:
    """True when two absolute URLs share scheme, host and port."""
    return _origin(a) is not None and _origin(a) == _origin(b)


def sniff(url: str, content_type: Optional[str], body: Union[bytes, str, None]) -> str:
    """What a browser would take the body for: "html", "css" or "" (anything else).

    A declared HTML or CSS type is believed; a missing or generic one (no header,
    application/octet-stream, text/plain) is decided from the body's first bytes
    (WHATWG's HTML signatures), or from a `.css` file name for a style sheet.
    """
    if is_html(content_type):
        return "html"
    if is_css(content_type):
        return "css"
    if _mime(content_type) not in _GENERIC_TYPES or not body:
        return ""
    head = (body.encode("utf-8", "replace") if isinstance(body, str) else body)[:_SNIFF_BYTES]
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE).lower()
    for signature in _HTML_SIGNATURES:
        if head.startswith(signature) and head[len(signature):len(signature) + 1] in (b" ",
                                                                                        b">"):
            return "html"
    if urlsplit(url).path.lower().endswith(".css"):
        return "css"
    return ""


def extract_links(
    base_url: str, content_type: Optional[str], body: Union[bytes, str, None]
) -> list[str]:
    """Same-origin absolute URLs (no fragment) linked from an HTML or CSS body, in order.

    Anything that is neither HTML nor CSS (as declared or sniffed) yields no links.
    """
    if not body:
        return []
    kind = sniff(base_url, content_type, body)
    text = body if isinstance(body, str) else body.decode(_charset(content_type), "replace")
    if kind == "html":
        collector = _LinkCollector()
        collector.feed(text)
        collector.close()
        raw, base = collector.found, urljoin(base_url, collector.base_href or "")
    elif kind == "css":
        raw, base = css_urls(text), base_url
    else:
        return []
    links: list[str] = []
    for value in raw:
        url = _resolve(base, value)
        if url is not None and same_origin(url, base_url) and url not in links:
            links.append(url)
    return links


def css_urls(text: str) -> list[str]:
    """The raw `url(...)` and `@import "..."` references in a style sheet, in order."""
    text = _CSS_COMMENT.sub(" ", text)
    found = []
    for match in sorted([*_CSS_URL.finditer(text), *_CSS_IMPORT.finditer(text)],
                        key=lambda m: m.start()):
        found.append(next(g for g in match.groups() if g is not None))
    return found


def path_of(url: str) -> str:
    """The path and query of a URL ("/" when it has no path)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def quoted_paths(base_url: str, body: Union[bytes, str, None]) -> list[str]:
    """The paths of every same-origin URL or absolute path a body names anywhere (HTML,
    JSON, a script), in order: a looser reading than `extract_links`, for finding a
    document's address in a root page of any kind."""
    if not body:
        return []
    text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    found: list[str] = []
    for match in _QUOTED_PATH.finditer(text):
        url = _resolve(base_url, match.group(0))
        if url is not None and same_origin(url, base_url) and path_of(url) not in found:
            found.append(path_of(url))
    return found


def refresh_url(content: str) -> Optional[str]:
    """The URL of a `<meta http-equiv="refresh" content="5; url=/next">`, if it names one."""
    match = _REFRESH.match(content)
    if match is None or not match.group(2).strip():
        return None
    return match.group(2).strip()


def robots_sitemaps(text: str) -> list[str]:
    """The `Sitemap:` URLs a robots.txt names, in order."""
    return [m.group(1) for m in _SITEMAP_LINE.finditer(text)]


def sitemap_urls(text: str) -> tuple[bool, list[str]]:
    """(is a sitemap index, the `<loc>` URLs) of a sitemap XML document.

    A regular expression, not an XML parser: a sitemap is a flat list, and an untrusted
    document then cannot expand entities.
    """
    index = "<sitemapindex" in text[:2048].lower()
    return index, [m.group(1).replace("&amp;", "&") for m in _LOC.finditer(text)]


def srcset_urls(value: str) -> list[str]:
    """The URLs of a `srcset` value such as `a.png 1x, b.png 2x`."""
    urls = []
    for candidate in value.split(","):
        parts = candidate.split()
        if parts:
            urls.append(parts[0])
    return urls


class _LinkCollector(HTMLParser):
    """Collects raw URL references from tags, inline styles and `<style>` blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.base_href: Optional[str] = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and self.base_href is None and "href" in values:
            self.base_href = values["href"]
        if tag == "style":
            self._in_style = True
        for name, value in attrs:
            if value and (tag, name) in _URL_ATTRS:
                self.found.append(value)
            elif value and (tag, name) in _SRCSET_ATTRS:
                self.found.extend(srcset_urls(value))
        if tag == "form" and values.get("method", "get").strip().lower() in ("", "get"):
            self.found.append(values.get("action") or "")
        if tag == "meta" and values.get("http-equiv", "").strip().lower() == "refresh":
            target = refresh_url(values.get("content", ""))
            if target is not None:
                self.found.append(target)
        if values.get("style"):
            self.found.extend(css_urls(values["style"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found.extend(css_urls(data))


def _resolve(base: str, value: str) -> Optional[str]:
    value = value.strip()
    scheme = urlsplit(value).scheme.lower()
    if scheme and scheme not in _DEFAULT_PORTS:
        return None  # mailto:, javascript:, data:, tel:, ...
    try:
        url, _fragment = urldefrag(urljoin(base, value))
    except ValueError:
        return None  # e.g. an invalid IPv6 host
    return url


def _origin(url: str) -> Optional[tuple[str, str, int]]:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def _mime(content_type: Optional[str]) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _charset(content_type: Optional[str]) -> str:
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type or "", re.I)
    if match:
        try:
            "".encode(match.group(1))
            return match.group(1)
        except LookupError:
            pass
    return "utf-8"

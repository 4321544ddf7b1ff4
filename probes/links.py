"""Find same-origin links in HTML and CSS so the crawler can request them."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Optional, Union
from urllib.parse import urldefrag, urljoin, urlsplit

__all__ = ["extract_links", "is_html", "is_css", "same_origin"]

# (tag, attribute) pairs whose value is one URL.
_URL_ATTRS = {
    ("a", "href"), ("area", "href"), ("link", "href"), ("script", "src"), ("img", "src"),
    ("source", "src"), ("iframe", "src"), ("frame", "src"), ("embed", "src"),
    ("video", "src"), ("video", "poster"), ("audio", "src"), ("track", "src"),
    ("input", "src"),
}
_SRCSET_TAGS = {"img", "source"}
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


def extract_links(
    base_url: str, content_type: Optional[str], body: Union[bytes, str, None]
) -> list[str]:
    """Same-origin absolute URLs (no fragment) linked from an HTML or CSS body, in order.

    Anything that is not HTML or CSS yields no links.
    """
    if not body:
        return []
    text = body if isinstance(body, str) else body.decode(_charset(content_type), "replace")
    if is_html(content_type):
        collector = _LinkCollector()
        collector.feed(text)
        collector.close()
        raw, base = collector.found, urljoin(base_url, collector.base_href or "")
    elif is_css(content_type):
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
        if tag in _SRCSET_TAGS and values.get("srcset"):
            self.found.extend(srcset_urls(values["srcset"]))
        if tag == "form" and values.get("method", "get").strip().lower() in ("", "get"):
            self.found.append(values.get("action") or "")
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

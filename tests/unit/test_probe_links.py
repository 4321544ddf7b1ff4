"""Link extraction from HTML and CSS: exact same-origin URL lists."""

from __future__ import annotations

import pytest

from probes.links import (
    extract_links,
    quoted_paths,
    refresh_url,
    robots_sitemaps,
    sitemap_urls,
    sniff,
)

BASE = "http://127.0.0.1:8080/docs/index.html"

HTML = b"""<!doctype html>
<html><head>
  <link rel="stylesheet" href="/static/site.css">
  <link rel="icon" href="favicon.ico#x">
  <script src="app.js"></script>
  <script src="https://cdn.example.com/lib.js"></script>
  <style>
    body { background: url('/img/bg.png'); }
    /* url(/commented-out.png) */
    @import "print.css";
  </style>
</head><body style="background-image: url(&quot;/img/body.png&quot;)">
  <a href="page.html#section">page</a>
  <a href="/docs/index.html">self</a>
  <a href="page.html">page again</a>
  <a href="http://127.0.0.1:8080/abs?q=1">absolute</a>
  <a href="http://127.0.0.1:9999/other-port">other port</a>
  <a href="https://127.0.0.1:8080/other-scheme">other scheme</a>
  <a href="//example.org/protocol-relative">other host</a>
  <a href="mailto:someone@example.com">mail</a>
  <a href="javascript:void(0)">js</a>
  <a href="#top">fragment only</a>
  <img src="data:image/png;base64,AAAA">
  <img src="logo.png" srcset="logo-2x.png 2x, /img/logo-3x.png 3x">
  <picture><source srcset="hero.webp 1x,hero@2x.webp 2x" type="image/webp"></picture>
  <video><source src="clip.mp4"></video>
  <iframe src="/embed/frame.html"></iframe>
  <form action="/search"><input name="q"></form>
  <form method="GET" action="/find"></form>
  <form method="post" action="/login"></form>
</body></html>
"""


def test_html_links_are_same_origin_absolute_in_document_order() -> None:
    links = extract_links(BASE, "text/html; charset=utf-8", HTML)
    assert links == [
        "http://127.0.0.1:8080/static/site.css",
        "http://127.0.0.1:8080/docs/favicon.ico",
        "http://127.0.0.1:8080/docs/app.js",
        "http://127.0.0.1:8080/img/bg.png",
        "http://127.0.0.1:8080/docs/print.css",
        "http://127.0.0.1:8080/img/body.png",
        "http://127.0.0.1:8080/docs/page.html",
        "http://127.0.0.1:8080/docs/index.html",
        "http://127.0.0.1:8080/abs?q=1",
        "http://127.0.0.1:8080/docs/logo.png",
        "http://127.0.0.1:8080/docs/logo-2x.png",
        "http://127.0.0.1:8080/img/logo-3x.png",
        "http://127.0.0.1:8080/docs/hero.webp",
        "http://127.0.0.1:8080/docs/hero@2x.webp",
        "http://127.0.0.1:8080/docs/clip.mp4",
        "http://127.0.0.1:8080/embed/frame.html",
        "http://127.0.0.1:8080/search",
        "http://127.0.0.1:8080/find",
    ]


def test_post_form_and_foreign_links_are_excluded() -> None:
    links = extract_links(BASE, "text/html", HTML)
    assert "http://127.0.0.1:8080/login" not in links
    assert not [u for u in links if "other" in u or "example" in u or "commented" in u]


def test_form_without_action_targets_the_page_itself() -> None:
    links = extract_links(BASE, "text/html", b"<form><input name=q></form>")
    assert links == [BASE]


def test_base_href_changes_resolution_but_not_the_origin_check() -> None:
    html = b'<base href="/v2/"><a href="a.html"></a><a href="http://evil.test/x"></a>'
    assert extract_links(BASE, "text/html", html) == ["http://127.0.0.1:8080/v2/a.html"]


def test_css_response_urls_and_imports() -> None:
    css = b"""
    @import "base.css";
    @import url('/theme/dark.css');
    /* background: url(ignored.png); */
    .logo { background: url(../img/logo.svg) no-repeat; }
    .hero { background-image: url( "hero.jpg" ); }
    @font-face { src: url(/fonts/a.woff2#iefix) format("woff2"), url(data:font/woff;base64,AA); }
    .ext { background: url(https://cdn.example.com/x.png); }
    """
    links = extract_links("http://127.0.0.1:8080/static/css/site.css", "text/css", css)
    assert links == [
        "http://127.0.0.1:8080/static/css/base.css",
        "http://127.0.0.1:8080/theme/dark.css",
        "http://127.0.0.1:8080/static/img/logo.svg",
        "http://127.0.0.1:8080/static/css/hero.jpg",
        "http://127.0.0.1:8080/fonts/a.woff2",
    ]


def test_other_content_types_yield_nothing() -> None:
    assert extract_links(BASE, "application/json", b'{"href": "/x"}') == []
    assert extract_links(BASE, "image/png", b'<a href="/x">') == []
    assert extract_links(BASE, None, b'{"links": ["<a href=/x>"]}') == []
    assert extract_links(BASE, None, b"just text, <a href=/x> later") == []
    assert extract_links(BASE, "text/html", b"") == []


# Issue 14: a page without a usable Content-Type is read the way a browser reads it.
@pytest.mark.parametrize("ctype", [None, "", "application/octet-stream", "text/plain",
                                   "text/plain; charset=utf-8", "unknown/unknown"])
@pytest.mark.parametrize("body", [
    b'<!DOCTYPE html><html><a href="/x">x</a>',
    b'\xef\xbb\xbf \n\t<HTML><body><a href="/x">x</a>',
    b'<a href="/x">x</a>',
    b'<p>see <a href="/x">x</a></p>',
    b'<!-- made by hand -->\n<a href="/x">x</a>',
    b'  <div class="page"><a href="/x">x</a></div>',
])
def test_untyped_html_is_sniffed(ctype, body) -> None:
    assert sniff(BASE, ctype, body) == "html"
    assert extract_links(BASE, ctype, body) == ["http://127.0.0.1:8080/x"]


@pytest.mark.parametrize("ctype,body,kind", [
    (None, b"<ahref='/x'>", ""),  # "<a" must end at a space or ">"
    (None, b"<pre>", ""),  # "<p" followed by "r": not a signature
    ("application/json", b"<html>", ""),  # a declared type is believed
    ("image/svg+xml", b"<html>", ""),
    ("text/html", b"{}", "html"),
    (None, b"body { color: red }", ""),
])
def test_sniff_signatures(ctype, body, kind) -> None:
    assert sniff(BASE, ctype, body) == kind


def test_untyped_css_is_read_by_its_name() -> None:
    css = b"body { background: url(bg.png) } @import 'more.css';"
    url = "http://127.0.0.1:8080/static/site.css"
    assert extract_links(url, None, css) == ["http://127.0.0.1:8080/static/bg.png",
                                             "http://127.0.0.1:8080/static/more.css"]
    assert extract_links("http://127.0.0.1:8080/static/site.txt", None, css) == []


def test_meta_refresh_object_and_link_srcsets() -> None:
    html = b"""<html><head>
      <meta http-equiv="Refresh" content="5; URL='/next.html'">
      <meta http-equiv="refresh" content="10">
      <meta name="refresh" content="0; url=/not-a-refresh">
      <link rel="preload" as="image" imagesrcset="/hero-1x.png 1x, /hero-2x.png 2x">
    </head><body background="/paper.gif">
      <object data="/movie.swf"></object>
    </body></html>"""
    assert extract_links(BASE, "text/html", html) == [
        "http://127.0.0.1:8080/next.html",
        "http://127.0.0.1:8080/hero-1x.png",
        "http://127.0.0.1:8080/hero-2x.png",
        "http://127.0.0.1:8080/paper.gif",
        "http://127.0.0.1:8080/movie.swf",
    ]


@pytest.mark.parametrize("content,url", [
    ("0; url=/a", "/a"), ("0;URL=/a", "/a"), ("3, url='/a b'", "/a b"), ('1; url="/a"', "/a"),
    ("0", None), ("", None), ("  7 ; url = /x?y=1 ", "/x?y=1"),
])
def test_refresh_url(content, url) -> None:
    assert refresh_url(content) == url


def test_robots_and_sitemaps() -> None:
    robots = ("User-agent: *\nDisallow: /private\n# Sitemap: /commented.xml\n"
              "Sitemap: https://www.example.com/sitemap.xml\nSITEMAP:/news.xml\n")
    assert robots_sitemaps(robots) == ["https://www.example.com/sitemap.xml", "/news.xml"]
    urlset = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
              "<url><loc>https://www.example.com/a?x=1&amp;y=2</loc></url>"
              "<url><loc> /b </loc></url></urlset>")
    assert sitemap_urls(urlset) == (False, ["https://www.example.com/a?x=1&y=2", "/b"])
    index = ("<sitemapindex><sitemap><loc>https://www.example.com/s1.xml</loc></sitemap>"
             "</sitemapindex>")
    assert sitemap_urls(index) == (True, ["https://www.example.com/s1.xml"])


def test_quoted_paths_finds_addresses_in_any_text() -> None:
    base = "http://127.0.0.1:8080/"
    body = (b'{"docs": "/docs", "spec": "http://127.0.0.1:8080/api/openapi.json", '
            b'"other": "http://example.com/x", "ratio": "1/2"}'
            b"<script>SwaggerUIBundle({url: '/v3/api-docs?group=a'})</script>")
    assert quoted_paths(base, body) == ["/docs", "/api/openapi.json", "/v3/api-docs?group=a"]


def test_charset_from_content_type_is_used() -> None:
    body = '<a href="/caf\u00e9">x</a>'.encode("latin-1")
    links = extract_links(BASE, "text/html; charset=ISO-8859-1", body)
    assert links == ["http://127.0.0.1:8080/caf\u00e9"]

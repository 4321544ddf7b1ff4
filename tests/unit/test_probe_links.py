"""Link extraction from HTML and CSS: exact same-origin URL lists."""

from __future__ import annotations

from probes.links import extract_links

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
    assert extract_links(BASE, None, b'<a href="/x">') == []
    assert extract_links(BASE, "text/html", b"") == []


def test_charset_from_content_type_is_used() -> None:
    body = '<a href="/caf\u00e9">x</a>'.encode("latin-1")
    links = extract_links(BASE, "text/html; charset=ISO-8859-1", body)
    assert links == ["http://127.0.0.1:8080/caf\u00e9"]

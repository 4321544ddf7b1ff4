"""--report-html: the page of a real build, opened in real headless Chromium (Debian's
`chromium`, installed by `make test-tools`), renders without a console message, an
exception or a blocked load, makes no request but for itself, and its DOM holds the
figures of the JSON report of the same run.

The sample is `mixed` (Redis next to HTTP and HTTPS): three kinds of port, a warning
with `<client command>` in it (escaping), twenty-odd probe requests.
"""

from __future__ import annotations

import json

import pytest

from minifier.output.summary import human_size

from . import helpers
from .browser import Browser
from .conftest import SANDBOX

pytestmark = pytest.mark.e2e

TAG = "minify-test/html-mixed.min:e2e"

# Everything the test compares, read from the page's DOM by the browser itself.
DOM = """(() => {
  const text = s => [...document.querySelectorAll(s)].map(e => e.textContent);
  const rows = id => [...document.querySelectorAll(`#${id} tbody tr`)]
      .map(tr => [...tr.children].map(td => td.textContent));
  const dirs = [...document.querySelectorAll('#treemap g.dir')].map(g => {
      const r = g.querySelector('rect').getBBox();
      return {path: g.dataset.path, kept: +g.dataset.kept, removed: +g.dataset.removed,
              area: r.width * r.height, title: g.querySelector('title').textContent};
  });
  const box = document.querySelector('#treemap').viewBox.baseVal;
  return {title: document.title, cards: text('.card'), probes: rows('probes'),
          ports: rows('ports'), verification: rows('verification'),
          verify: document.querySelector('#verify').textContent,
          warnings: text('#warnings li'), dirs, treemap: box.width * box.height,
          visible: document.querySelector('#treemap').getBoundingClientRect().width};
})()"""


@pytest.fixture(scope="module")
def built(client, tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    proc = helpers.minify("build", SANDBOX["mixed"], "--tag", TAG,
                          "--report-file", str(out / "report.json"),
                          "--report-html", str(out / "report.html"), timeout=600)
    yield proc, out
    try:
        client.images.remove(TAG, force=True)
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture(scope="module")
def page(built):
    proc, out = built
    assert proc.code == 0, proc.stderr[-3000:]
    with Browser() as browser:
        loaded = browser.load(out / "report.html", DOM, screenshot=True)
    (out / "report.png").write_bytes(loaded.screenshot)  # for a person to look at
    return loaded, json.loads((out / "report.json").read_text()), out


def test_page_renders_without_errors_and_loads_nothing(page):
    loaded, _, out = page
    assert loaded.console == []
    assert loaded.exceptions == []
    assert loaded.log == []
    assert loaded.requests == [(out / "report.html").resolve().as_uri()]
    assert loaded.value["visible"] > 0
    assert len(loaded.screenshot) > 10_000  # a real picture, not an empty page


def test_the_harness_sees_what_a_broken_page_does(page, tmp_path):
    """The checks above can fail: the same page with an inline script and an image from
    elsewhere (loopback, never fetched) shows both as blocked."""
    _, _, out = page
    bad = tmp_path / "bad.html"
    bad.write_text((out / "report.html").read_text().replace(
        "<main>", '<main><img src="http://127.0.0.1:9/x.png"><script>console.error(1)'
                  "</script>", 1))
    with Browser() as browser:
        loaded = browser.load(bad, "1")
    assert [(level, source) for level, source, _, _ in loaded.log] == [
        ("error", "security"), ("error", "security")]
    assert "img-src data:" in loaded.log[0][2] and "inline script" in loaded.log[1][2]
    assert loaded.console == []  # the script never ran


def test_sizes_and_ratio(page):
    loaded, doc, _ = page
    cards = loaded.value["cards"]
    src, out = doc["source"]["size"], doc["output"]["size"]
    assert cards[0] == f"before{human_size(src)}{src:,} bytes"
    assert cards[1] == f"after{human_size(out)}{out:,} bytes"
    assert cards[2] == f"smaller{doc['ratio']}xratio of the image sizes"
    files = doc["files"]
    assert cards[3].startswith(f"files kept{files['kept']} of {files['total']}")
    assert cards[4] == "verificationpassed"
    assert loaded.value["title"] == f"minify: {SANDBOX['mixed']} → {TAG}"


def test_probe_table_is_the_reports_requests(page):
    loaded, doc, _ = page
    expected = [[r["method"], r["path"], str(r["port"]), r["protocol"],
                 str(r["status"]), r["outcome"], r["discovered_by"],
                 f"{r['elapsed'] * 1000:.1f}", r["content_type"] or "", str(r["length"])]
                for r in doc["probe"]["requests"]]
    assert loaded.value["probes"] == expected
    assert {r[3] for r in expected} == {"http", "https"}
    assert loaded.value["ports"] == [[str(p["port"]), p["speaks"], str(p["ready_after"])]
                                     for p in doc["probe"]["ports"]]
    assert [p["speaks"] for p in doc["probe"]["ports"]] == ["not-http", "http", "https",
                                                            "https"]


def test_verification_table_is_the_reports(page):
    loaded, doc, _ = page
    verify = doc["verify"]
    assert loaded.value["verify"] == verify["status"] == "passed"
    rows = loaded.value["verification"]
    assert len(rows) == len(verify["requests"]) + len(verify.get("execs") or [])
    for row, r in zip(rows, verify["requests"]):
        assert row[1] == f"{r['method']} {r['path']} (port {r['port']})"
        assert row[2:] == [r["compared"], str(r["original_status"]),
                           str(r["minified_status"]), "same"]


def test_warnings_are_the_reports_and_escaped(page):
    loaded, doc, _ = page
    assert loaded.value["warnings"] == doc["warnings"]
    assert ("port 6379 accepts connections but does not speak HTTP: probe it with --exec "
            "'<client command>'") in loaded.value["warnings"]


def test_treemap_areas_are_the_bytes_of_each_directory(page):
    loaded, doc, _ = page
    drawn = loaded.value["dirs"]
    by_path = {d["path"]: d for d in doc["dirs"]}
    assert len(drawn) == min(60, len(doc["dirs"]))
    total = sum(d["kept"] + d["removed"] for d in doc["dirs"])
    for d in drawn[:-1] if len(doc["dirs"]) > 60 else drawn:
        assert (d["kept"], d["removed"]) == (by_path[d["path"]]["kept"],
                                             by_path[d["path"]]["removed"])
        # Coordinates are written to 1/100 of a unit: a square unit of slack.
        share = (d["kept"] + d["removed"]) / total
        assert d["area"] == pytest.approx(share * loaded.value["treemap"], rel=0.01, abs=1)
        assert f"({d['kept']:,} bytes)" in d["title"]
    assert sum(d["kept"] for d in drawn) == sum(d["kept"] for d in doc["dirs"])
    assert sum(d["kept"] for d in doc["dirs"]) == sum(k["size"] for k in doc["kept"])

"""The HTML report's rendering rules: the treemap layout, escaping, no way to load
anything, and both shapes of the verification part (the e2e test renders a real report
in Chromium)."""

import itertools
import json

import pytest

from minifier.output.html_report import render_html, squarify


@pytest.mark.parametrize("values", [[6, 6, 4, 3, 2, 2, 1], [100], [5, 1, 1, 1, 1, 1, 1, 1],
                                    [1000, 1, 1], list(range(60, 0, -1))])
def test_squarify_fills_the_area_without_overlap(values):
    w, h = 960, 420
    rects = squarify(values, 0, 0, w, h)
    assert len(rects) == len(values)
    total = sum(values)
    for v, (x, y, rw, rh) in zip(values, rects):
        assert rw * rh == pytest.approx(v * w * h / total, rel=1e-9)  # area ∝ value
        assert -1e-6 <= x and x + rw <= w + 1e-6 and -1e-6 <= y and y + rh <= h + 1e-6
    for (ax, ay, aw, ah), (bx, by, bw, bh) in itertools.combinations(rects, 2):
        overlap_w = min(ax + aw, bx + bw) - max(ax, bx)
        overlap_h = min(ay + ah, by + bh) - max(ay, by)
        assert overlap_w <= 1e-6 or overlap_h <= 1e-6


def test_squarify_keeps_rectangles_squarish():
    rects = squarify([6, 6, 4, 3, 2, 2, 1], 0, 0, 6, 4)  # the paper's example
    assert max(max(w / h, h / w) for _, _, w, h in rects) < 3


def _doc(**over):
    doc = {
        "schema": "minify.report/v2",
        "source": {"image": "app:1", "id": "sha256:" + "a" * 64, "size": 10_000_000},
        "output": {"image": "app.min:1", "id": "sha256:" + "b" * 64, "size": 500_000},
        "ratio": 20.0, "files": {"kept": 2, "total": 1000, "kept_size": 400_000,
                                 "total_size": 9_000_000},
        "probe": {"requests": [{"method": "GET", "path": "/<x>", "port": 80,
                                "protocol": "http", "status": 200, "outcome": "2xx",
                                "discovered_by": "default", "elapsed": 0.0123,
                                "content_type": "text/html", "length": 12}],
                  "ports": [{"port": 80, "speaks": "http", "ready_after": 0.5}],
                  "execs": []},
        "verify": {"status": "passed", "mismatches": [],
                   "requests": [{"method": "GET", "path": "/<x>", "port": 80,
                                 "compared": "status+body", "original_status": 200,
                                 "minified_status": 200}]},
        "selfcheck": {"status": "passed", "findings": []},
        "dirs": [{"path": "/usr/bin", "kept": 400_000, "removed": 100},
                 {"path": "/usr/share/doc", "kept": 0, "removed": 2_000_000}],
        "warnings": ["port 6379 accepts connections but does not speak HTTP: probe it with "
                     "--exec '<client command>'"],
        "timings": {"run": 1.5},
    }
    doc.update(over)
    return doc


def test_page_loads_nothing_and_escapes_what_the_image_says():
    page = render_html(_doc())
    assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">") in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;client command&gt;" in page and "<client command>" not in page
    assert "<code>/&lt;x&gt;</code>" in page
    assert "10,000,000 bytes" in page and "500,000 bytes" in page and "20.0x" in page
    assert page.count('<g class="dir"') == 2
    assert 'data-path="/usr/bin" data-kept="400000" data-removed="100"' in page


def test_more_directories_than_drawn_become_one_rectangle():
    dirs = [{"path": f"/d{i}", "kept": 0, "removed": 1000 - i} for i in range(100)]
    page = render_html(_doc(dirs=dirs))
    assert page.count('<g class="dir"') == 60
    rest = sum(1000 - i for i in range(59, 100))
    assert f'data-path="41 other directories" data-kept="0" data-removed="{rest}"' in page


def test_verification_of_the_frozen_records_shape():
    # Rounds, explicit ok flags, exec rows and health/liveness verdicts (issue 12's report).
    verify = {"status": "failed", "reason": "GET / differs",
              "mismatches": [{"kind": "request", "text": "GET / (port 80): original 200, "
                              "minified 500 (after docker restart)"}],
              "requests": [{"round": 2, "method": "GET", "path": "/", "port": 80,
                            "compared": "status+body", "original_status": 200,
                            "minified_status": 500, "nondeterministic": False, "ok": False}],
              "execs": [{"round": 1, "argv": ["jq", "."], "compared": "exit code+stdout",
                         "original_exit_code": 0, "minified_exit_code": 0, "ok": True}],
              "health": {"status": "passed", "reason": ""},
              "liveness": {"status": "failed", "reason": "exited after 1 s"}}
    page = render_html(_doc(verify=verify))
    assert '<span id="verify" class="failed">failed</span>: GET / differs' in page
    assert ("<td>2</td><td>GET <code>/</code> (port 80)</td><td>status+body</td><td>200</td>"
            '<td>500</td><td><span class="bad">differs</span></td>') in page
    assert "<td>exec <code>jq .</code></td>" in page
    assert "after docker restart" in page
    assert "<p>liveness: failed — exited after 1 s</p>" in page


def test_a_real_report_file_renders():
    # The same document as written to --report-file, read back from JSON.
    doc = json.loads(json.dumps(_doc(warnings=[])))
    page = render_html(doc)
    assert '<p id="warnings">none</p>' in page

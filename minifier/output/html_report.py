"""The report as one self-contained HTML page (`--report-html FILE`).

Rendered from the report's JSON document alone, so whatever shape the report takes the
page follows it. One file, no scripts, no fonts, no requests: styles inline, pictures
inline SVG, and a Content-Security-Policy that forbids loading anything, so the page
works offline and a browser says so if something ever tries. Sections: before/after
sizes, a treemap of kept and removed bytes by directory, the probe table, the
verification table, the self-check, warnings and timings.
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Mapping, Sequence

from minifier.output.summary import human_size

__all__ = ["render_html", "squarify"]

_W, _H = 960, 420  # the treemap's size in SVG user units
_TREEMAP_MAX = 60  # directories drawn; the rest become one "other" rectangle
_KEPT, _REMOVED = "#2f9e44", "#d9d9d9"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
color:#1b1b1b;background:#fafafa}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#555;margin:0 0 16px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#555;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}table+table,table+ul,svg+table{margin-top:12px}td.n{text-align:right;font-variant-numeric:tabular-nums}
.passed,.ok{color:#1e7b34;font-weight:600}.failed,.bad{color:#b3261e;font-weight:600}
.skipped,.other{color:#666;font-weight:600}
svg text{font:11px system-ui,sans-serif;pointer-events:none}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;
vertical-align:-2px}
ul.warn li{margin:2px 0}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _bytes(n: object) -> str:
    return f"{int(n or 0):,} bytes"


def _status_class(status: object) -> str:
    return {"passed": "passed", "failed": "failed", "incomplete": "failed"}.get(
        str(status), "skipped")


def _table(table_id: str, heads: Sequence[str], rows: Iterable[Sequence[str]],
           numeric: Sequence[int] = (), empty: str = "none") -> str:
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(heads)}">{_e(empty)}</td></tr>'
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- treemap ----------------------------------------------------------------------------


def _worst(row: Sequence[float], side: float) -> float:
    total = sum(row)
    return max(max(row) * side * side / (total * total),
               total * total / (side * side * min(row)))


def squarify(values: Sequence[float], x: float, y: float, w: float,
             h: float) -> list[tuple[float, float, float, float]]:
    """Squarified treemap (Bruls, Huizing, van Wijk): one rectangle per value (values
    sorted largest first, all > 0), in order, together filling the w x h area."""
    total = sum(values)
    areas = [v * w * h / total for v in values]
    out: list[tuple[float, float, float, float]] = []
    i = 0
    while i < len(areas):
        side = min(w, h)
        row = [areas[i]]
        i += 1
        while i < len(areas) and _worst([*row, areas[i]], side) <= _worst(row, side):
            row.append(areas[i])
            i += 1
        thick = sum(row) / side
        pos = y if w >= h else x
        for a in row:
            length = a / thick
            out.append((x, pos, thick, length) if w >= h else (pos, y, length, thick))
            pos += length
        if w >= h:
            x, w = x + thick, w - thick
        else:
            y, h = y + thick, h - thick
    return out


def _treemap_dirs(doc: Mapping) -> list[tuple[str, int, int]]:
    rows = [(str(d["path"]), int(d.get("kept") or 0), int(d.get("removed") or 0))
            for d in doc.get("dirs") or ()]
    rows = sorted((r for r in rows if r[1] + r[2] > 0), key=lambda r: (-(r[1] + r[2]), r[0]))
    if len(rows) > _TREEMAP_MAX:
        rest = rows[_TREEMAP_MAX - 1:]
        rows = rows[:_TREEMAP_MAX - 1] + [(f"{len(rest)} other directories",
                                           sum(r[1] for r in rest), sum(r[2] for r in rest))]
    return rows


def _cell(path: str, kept: int, removed: int, rect: tuple[float, float, float, float]) -> str:
    x, y, w, h = rect
    share = kept / (kept + removed)
    # The kept part along the longer side, so a thin rectangle still shows its split.
    kx, ky, kw, kh = (x, y, w * share, h) if w >= h else (x, y + h * (1 - share), w, h * share)
    title = (f"{path}: {human_size(kept)} kept ({_bytes(kept)}), {human_size(removed)} "
             f"removed ({_bytes(removed)})")
    parts = [f'<g class="dir" data-path="{_e(path)}" data-kept="{kept}" '
             f'data-removed="{removed}"><title>{_e(title)}</title>',
             f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" '
             f'fill="{_REMOVED}" stroke="#fff"/>']
    if kept:
        parts.append(f'<rect x="{kx:.2f}" y="{ky:.2f}" width="{kw:.2f}" height="{kh:.2f}" '
                     f'fill="{_KEPT}" stroke="#fff"/>')
    if w > 70 and h > 16:
        chars = int(w / 6.5)
        label = path if len(path) <= chars else "…" + path[-(chars - 1):]
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13:.1f}">{_e(label)}</text>')
        if h > 30:
            parts.append(f'<text x="{x + 4:.1f}" y="{y + 26:.1f}">'
                         f'{_e(human_size(kept + removed))}</text>')
    return "".join(parts) + "</g>"


def _treemap(doc: Mapping) -> str:
    rows = _treemap_dirs(doc)
    if not rows:
        return "<p>No file bytes to show.</p>"
    rects = squarify([k + r for _, k, r in rows], 0, 0, _W, _H)
    cells = "".join(_cell(p, k, r, rect) for (p, k, r), rect in zip(rows, rects))
    return (f'<svg id="treemap" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
            f'aria-label="bytes by directory">'
            f"{cells}</svg>"
            f'<p class="legend"><span style="background:{_KEPT}"></span>kept'
            f'<span style="background:{_REMOVED}"></span>removed — each rectangle is a '
            "directory (up to three levels deep), its area the bytes of its files in the "
            "original image</p>")


# -- sections ---------------------------------------------------------------------------


def _sizes(doc: Mapping) -> str:
    src, out, files = doc["source"], doc["output"], doc.get("files") or {}
    before, after = int(src.get("size") or 0), int(out.get("size") or 0)
    verify = (doc.get("verify") or {}).get("status")
    cards = [
        ("before", human_size(before), _bytes(before), "source-size"),
        ("after", human_size(after), _bytes(after), "output-size"),
        ("smaller", f"{doc.get('ratio')}x", "ratio of the image sizes", "ratio"),
        ("files kept", f"{files.get('kept', 0)} of {files.get('total', 0)}",
         f"{human_size(files.get('kept_size', 0))} of "
         f"{human_size(files.get('total_size', 0))}", "files"),
        ("verification", str(verify), "", "verify-status"),
    ]
    html = "".join(f'<div class="card" id="{i}"><span>{_e(t)}</span><b>{_e(v)}</b>'
                   f"<span>{_e(s)}</span></div>" for t, v, s, i in cards)
    width = 600 * after / before if before else 0
    bars = (f'<svg id="sizes" viewBox="0 0 760 56" width="100%" '
            f'role="img" aria-label="sizes">'
            f'<rect x="90" y="4" width="600" height="20" fill="{_REMOVED}"/>'
            f'<text x="0" y="18">before</text><text x="696" y="18">{_e(human_size(before))}'
            f'</text><rect x="90" y="32" width="{width:.1f}" height="20" fill="{_KEPT}"/>'
            f'<text x="0" y="46">after</text><text x="{96 + width:.1f}" y="46">'
            f"{_e(human_size(after))}</text></svg>")
    return f'<div class="cards">{html}</div>{bars}'


def _probe_rows(probe: Mapping) -> list[list[str]]:
    rows = []
    for r in probe.get("requests") or ():
        status = r.get("status")
        rows.append([_e(r.get("method")), f"<code>{_e(r.get('path'))}</code>",
                     _e(r.get("port")), _e(r.get("protocol")),
                     _e(status if status is not None else r.get("error") or "no answer"),
                     _e(r.get("outcome")), _e(r.get("discovered_by")),
                     _e(f"{float(r.get('elapsed') or 0) * 1000:.1f}"),
                     _e(r.get("content_type") or ""), _e(r.get("length"))])
    return rows


def _probes(doc: Mapping) -> str:
    probe = doc.get("probe") or {}
    parts = [_table("probes", ["method", "path", "port", "protocol", "status", "outcome",
                               "discovered by", "time (ms)", "content type", "bytes"],
                    _probe_rows(probe), numeric=(7, 9), empty="no HTTP requests")]
    ports = [[_e(p.get("port")), _e(p.get("speaks")), _e(p.get("ready_after"))]
             for p in probe.get("ports") or ()]
    if ports:
        parts.append(_table("ports", ["port", "speaks", "answered after (s)"], ports,
                            numeric=(2,)))
    execs = [[f"<code>{_e(' '.join(e.get('argv') or ()))}</code>", _e(e.get("exit_code"))]
             for e in probe.get("execs") or ()]
    if execs:
        parts.append(_table("execs", ["exec probe", "exit code"], execs))
    notes = probe.get("notes") or ()
    if notes:
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _verify_rows(verify: Mapping) -> list[list[str]]:
    rows = []
    for r in verify.get("requests") or ():
        ok = r.get("ok", r.get("original_status") == r.get("minified_status"))
        what = f"{r.get('method')} <code>{_e(r.get('path'))}</code> (port {_e(r.get('port'))})"
        rows.append([_e(r.get("round", 1)), what, _e(r.get("compared")),
                     _e(r.get("original_status")), _e(r.get("minified_status")),
                     '<span class="ok">same</span>' if ok else '<span class="bad">differs</span>'])
    for e in verify.get("execs") or ():
        ok = e.get("ok", e.get("original_exit_code") == e.get("minified_exit_code"))
        rows.append([_e(e.get("round", 1)),
                     f"exec <code>{_e(' '.join(e.get('argv') or ()))}</code>",
                     _e(e.get("compared")), _e(e.get("original_exit_code")),
                     _e(e.get("minified_exit_code")),
                     '<span class="ok">same</span>' if ok else '<span class="bad">differs</span>'])
    return rows


def _verification(doc: Mapping) -> str:
    verify = doc.get("verify") or {}
    status = verify.get("status")
    head = (f'<p>status: <span id="verify" class="{_status_class(status)}">{_e(status)}'
            f"</span>{_e(': ' + str(verify['reason'])) if verify.get('reason') else ''}</p>")
    table = _table("verification", ["round", "request", "compared", "original", "minified",
                                    "result"], _verify_rows(verify),
                   empty="nothing compared" if status != "skipped" else "skipped")
    mismatches = verify.get("mismatches") or ()
    listed = "".join(f"<li>{_e(m.get('text'))}</li>" for m in mismatches)
    return (head + table + (f'<ul id="mismatches">{listed}</ul>' if listed else "")
            + "".join(_verdict(key, verify.get(key)) for key in ("health", "liveness")))


def _verdict(name: str, verdict: object) -> str:
    """A health or liveness verdict (when the report has them): its status and reason."""
    if not isinstance(verdict, Mapping):
        return ""
    reason = f" — {verdict['reason']}" if verdict.get("reason") else ""
    # The liveness verdict says `ok` (and the app's shape) rather than a status.
    status = verdict.get("status") or (
        f"{'passed' if verdict.get('ok') else 'failed'} ({verdict.get('shape')})")
    return f"<p>{_e(name)}: {_e(status)}{_e(reason)}</p>"


def _selfcheck(doc: Mapping) -> str:
    check = doc.get("selfcheck") or {}
    findings = "".join(f"<li>{_e(f.get('text'))}</li>" for f in check.get("findings") or ())
    return (f'<p>status: <span class="{_status_class(check.get("status"))}">'
            f"{_e(check.get('status'))}</span></p>" + (f"<ul>{findings}</ul>" if findings else ""))


def _warnings(doc: Mapping) -> str:
    warnings = doc.get("warnings") or ()
    if not warnings:
        return '<p id="warnings">none</p>'
    return '<ul id="warnings" class="warn">' + "".join(
        f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"


def _dir_table(doc: Mapping) -> str:
    rows = [[f"<code>{_e(p)}</code>", _e(_bytes(k)), _e(_bytes(r))]
            for p, k, r in _treemap_dirs(doc)[:20]]
    return _table("dirs", ["directory", "kept", "removed"], rows, numeric=(1, 2))


def render_html(doc: Mapping) -> str:
    """The page for one report document (the dict `--report-file` holds)."""
    src, out = doc["source"], doc["output"]
    timings = [[_e(k), _e(f"{float(v):.2f}")] for k, v in (doc.get("timings") or {}).items()]
    title = f"minify: {src['image']} → {out['image']}"
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">output image id <code>{_e(out.get("id"))}</code> · report schema '
        f"<code>{_e(doc.get('schema'))}</code></p>",
        "<h2>Before and after</h2>", _sizes(doc),
        "<h2>Kept and removed bytes by directory</h2>", _treemap(doc), _dir_table(doc),
        "<h2>Probes</h2>", _probes(doc),
        "<h2>Verification</h2>", _verification(doc),
        "<h2>Self-check</h2>", _selfcheck(doc),
        "<h2>Warnings</h2>", _warnings(doc),
        "<h2>Timings</h2>", _table("timings", ["stage", "seconds"], timings, numeric=(1,)),
        "</main></body></html>\n",
    ])

"""Names that are not UTF-8 in minify's JSON: valid UTF-8 that strict parsers and jq read
without loss (jsonsafe), in the documents minify writes."""

from __future__ import annotations

import base64
import json

from minifier.jsonsafe import escape, safe
from minifier.output.report import write_json

RAW = b"/srv/caf\xe9 \xff.txt"  # latin-1 bytes: not UTF-8
NAME = RAW.decode("utf-8", "surrogateescape")  # how Python holds it: "/srv/caf\udce9 \udcff.txt"


def strict_load(data: bytes):
    """What a strict parser does: UTF-8 only, and no lone surrogate anywhere."""
    text = data.decode("utf-8")  # raises on invalid UTF-8
    assert "\\ud" not in text.lower()  # no surrogate escapes for a strict parser to refuse
    return json.loads(text)


def test_undecodable_bytes_are_escaped_and_kept_exact_alongside():
    assert escape(NAME) == "/srv/caf\\xe9 \\xff.txt"
    assert escape("/srv/café ü.txt") == "/srv/café ü.txt"  # UTF-8 names are untouched
    doc = safe({"kept": [{"path": NAME, "size": 3}, {"path": "/ok", "size": 1}],
                "excluded": [NAME], "warnings": [f"{NAME}: odd"]})
    assert doc == {
        "kept": [{"path": "/srv/caf\\xe9 \\xff.txt",
                  "path_b64": base64.b64encode(RAW).decode(), "size": 3},
                 {"path": "/ok", "size": 1}],
        "excluded": ["/srv/caf\\xe9 \\xff.txt"],
        "warnings": ["/srv/caf\\xe9 \\xff.txt: odd"]}
    assert base64.b64decode(doc["kept"][0]["path_b64"]) == RAW


def test_a_surrogate_no_file_name_makes_is_escaped_too():
    assert escape("a\ud800b") == "a\\ud800b"
    assert safe({"x": "a\ud800b"}) == {"x": "a\\ud800b"}  # no base64: no bytes to give


def test_written_documents_are_strict_utf8(tmp_path):
    out = tmp_path / "report.json"
    write_json({"schema": "x", "kept": [{"path": NAME}], "dirs": {NAME: 1}}, str(out))
    doc = strict_load(out.read_bytes())
    assert doc["kept"][0]["path"] == "/srv/caf\\xe9 \\xff.txt"
    assert base64.b64decode(doc["kept"][0]["path_b64"]) == RAW
    assert doc["dirs"] == {"/srv/caf\\xe9 \\xff.txt": 1}  # a key: the escaped form


def test_a_reader_of_minifys_output_gets_the_exact_name_back():
    """xray --build-report reads a build's kept paths: the name it compares is the
    original one, not its escaped form."""
    from minifier.jsonsafe import exact

    row = json.loads(json.dumps(safe({"path": NAME, "size": 3})))
    assert exact(row, "path") == NAME and exact({"path": "/ok"}, "path") == "/ok"

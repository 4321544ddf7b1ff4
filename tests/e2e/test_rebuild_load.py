"""Rebuild end to end: export the real Debian sandbox, keep cat + a file, load, run."""

from __future__ import annotations

import docker
import pytest

from minifier.engine import image_info_from_attrs
from minifier.image.closure import plan
from minifier.image.imagefs import scan
from minifier.image.rebuild import load_image, output_config, write_layer
from minifier.image.source import DockerExportSource
from minifier.options import KeepOptions

pytestmark = pytest.mark.e2e
REF = "minify-sandbox/debian:bookworm"
TAG = "minify-test/rebuild:e2e"


@pytest.fixture()
def engine(client):
    """The shared engine (the `client` fixture also checks for leftover containers)."""
    client.images.get(REF)
    yield client
    try:
        client.images.remove(TAG, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_rebuild_and_load(engine, tmp_path):
    info = image_info_from_attrs(REF, engine.api.inspect_image(REF))
    source = DockerExportSource(engine, info.id)
    with source.open() as stream:
        fs = scan(stream)
    assert fs.lookup("/.dockerenv").artefact
    p = plan(fs, ["/usr/bin/cat", "/etc/debian_version"], info, KeepOptions(), source)
    kept = {k.path: k for k in p.kept}
    interp = fs.resolve("/lib64/ld-linux-x86-64.so.2")  # however the image lays it out
    assert {interp.final, *interp.via, "/usr/lib/x86_64-linux-gnu/libc.so.6"} <= set(kept)
    assert kept["/usr/bin/cat"].reasons == ("accessed",)
    assert not p.warnings and len(kept) < 40 and p.total_files > 1000
    layer = write_layer(fs, p, source, str(tmp_path / "layer.tar"))
    labels = {"minify.source": REF}
    result = load_image(engine, output_config(info, labels), layer, TAG)

    image = engine.images.get(TAG)
    assert image.id == result.image_id and len(image.attrs["RootFS"]["Layers"]) == 1
    assert image.attrs["RootFS"]["Layers"] == [f"sha256:{layer.sha256}"]
    cfg = image.attrs["Config"]
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "Volumes", "StopSignal"):
        assert cfg.get(key) == info.config.get(key), key
    assert cfg["Labels"] == {**(info.labels or {}), **labels}
    assert result.size < 10_000_000

    want = engine.containers.run(REF, ["/usr/bin/cat", "/etc/debian_version"], remove=True)
    got = engine.containers.run(TAG, ["/usr/bin/cat", "/etc/debian_version"], remove=True)
    assert got == want and got.strip()
    # nothing else from the original survived (running it would leave a failed container)
    assert "/usr/bin/ls" not in kept and fs.lookup("/usr/bin/ls") is not None

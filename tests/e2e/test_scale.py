"""A 1 GB image with 100k files: minified and verified, without holding it in memory.

Timing and memory targets live in bench/ (make bench); this only asserts behaviour.
The generated image is kept as a cache (tag below) so a second `make test` is quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest

from .conftest import SANDBOX
from .helpers import minify

TAG = "minify-test/scale-1g:cache"
FILES, FILE_SIZE, PER_DIR = 100_000, 10_000, 1000


def _generate(client) -> None:
    """Stream busybox's filesystem plus 100k files of 10 kB straight into `docker import`."""
    proc = subprocess.Popen(
        ["docker", "import", "--change", 'ENTRYPOINT ["/bin/httpd","-f","-p","8080","-h","/www"]',
         "--change", "EXPOSE 8080", "-", TAG], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    pool = os.urandom(FILE_SIZE + PER_DIR)
    base = client.containers.create(SANDBOX["busybox"], command=["/none"],
                                    labels={"minify.run": "test"})
    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|") as out:
            src = tarfile.open(fileobj=_Stream(base.export()), mode="r|")
            for ti in src:
                out.addfile(ti, src.extractfile(ti) if ti.isfile() else None)
            for d in range(FILES // PER_DIR):
                _add_dir(out, f"data/d{d:03d}")
                for i in range(PER_DIR):
                    ti = tarfile.TarInfo(f"data/d{d:03d}/f{i:04d}")
                    ti.size = FILE_SIZE
                    out.addfile(ti, _Bytes(pool[i:i + FILE_SIZE]))
    finally:
        base.remove(force=True)
        proc.stdin.close()
    assert proc.wait(timeout=600) == 0


def _add_dir(out, name):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    out.addfile(ti)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk, self._pos = self._data[self._pos:end], min(end, len(self._data))
        return chunk


class _Stream:
    """A file-like view of the SDK's chunk iterator."""

    def __init__(self, chunks) -> None:
        self._chunks, self._buf = iter(chunks), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        return out


@pytest.fixture(scope="module")
def big_image(client):
    try:
        client.images.get(TAG)
    except Exception:  # noqa: BLE001 - not cached yet
        _generate(client)
    return TAG


def test_one_gigabyte_image_with_100k_files(client, big_image, tmp_path):
    image = client.images.get(big_image)
    assert image.attrs["Size"] >= 1_000_000_000
    out_tag = "minify-test/scale-1g.min:e2e"
    report_file = tmp_path / "report.json"
    run = minify("build", big_image, "--tag", out_tag, "--report-file", str(report_file),
                 timeout=900)
    try:
        assert run.code == 0, run.stderr
        report = json.loads(report_file.read_text())
        assert report["files"]["total"] > FILES
        assert report["verify"]["status"] == "passed"
        assert not any(k["path"].startswith("/data/d") for k in report["kept"])
        assert report["output"]["size"] < 3_000_000
        assert report["ratio"] > 300
    finally:
        client.images.remove(out_tag, force=True)



"""Scale: generated images of ~100 MB, 500 MB and 1 GB (10k, 50k, 100k files).

Each image is the busybox sandbox image (static busybox, /www, httpd entrypoint on 8080)
plus /data/dNNN/fNNNNNN files of incompressible bytes, generated as one tar stream and
`docker import`ed straight from Python (no file on disk). Tags minify-bench/scale-*:latest
are kept as a cache (generation is skipped when the tag exists); remove them with
`docker rmi minify-bench/scale-100m minify-bench/scale-500m minify-bench/scale-1g`.

`minify build` runs as a subprocess through bench.rss_wrapper, which reports the minify
process's own peak RSS (and the tracer child's) after the build.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

from minifier.image.imagefs import iter_members
from minifier.image.source import DockerExportSource

from .buildtime import _export_scan
from .common import HERE, SANDBOX, image_exists, log, remove_image

FILE_SIZE = 10_000
SIZES = (("100m", 10_000), ("500m", 50_000), ("1g", 100_000))  # name, file count
PER_DIR = 1000
TARGET_RSS = 200 * 1024 * 1024
SUPERLINEAR_TOLERANCE = 1.25
CHANGES = ['ENTRYPOINT ["/bin/httpd","-f","-p","8080","-h","/www"]', "EXPOSE 8080",
           "ENV PATH=/bin", "LABEL minify.bench=scale"]


def tag_for(name: str) -> str:
    return f"minify-bench/scale-{name}:latest"


def _write_tar(c, files: int, fileobj, file_size: int = FILE_SIZE) -> None:
    pool = os.urandom(8 << 20)
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as out:
        base = c.images.get(SANDBOX["busybox"]).id
        with DockerExportSource(c, base, run_id="bench").open() as stream:
            for tf, ti in iter_members(stream):
                out.addfile(ti, tf.extractfile(ti) if ti.isfile() else None)
        seen_dirs = set()
        for i in range(files):
            d = f"data/d{i // PER_DIR:03d}"
            if d not in seen_dirs:
                for p in ("data", d):
                    if p not in seen_dirs:
                        ti = tarfile.TarInfo(p)
                        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                        out.addfile(ti)
                        seen_dirs.add(p)
            ti = tarfile.TarInfo(f"{d}/f{i:06d}")
            ti.size, ti.mode, ti.mtime = file_size, 0o644, 1700000000
            off = (i * 7919) % (len(pool) - file_size)
            out.addfile(ti, io.BytesIO(pool[off:off + file_size]))


def generate(c, name: str, files: int, file_size: int = FILE_SIZE) -> float:
    """Import the generated image; seconds taken (0 when the cached tag exists)."""
    tag = tag_for(name)
    if image_exists(c, tag):
        return 0.0
    log(f"scale: generating {tag} ({files} files of {file_size} bytes)")
    r, w = os.pipe()
    errors = []

    def producer() -> None:
        try:
            with os.fdopen(w, "wb", buffering=1 << 20) as f:
                _write_tar(c, files, f, file_size)
        except BaseException as exc:  # noqa: BLE001 - reported by the consumer
            errors.append(exc)

    def chunks():
        with os.fdopen(r, "rb", buffering=0) as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    return
                yield b

    t0 = time.monotonic()
    th = threading.Thread(target=producer, daemon=True)
    th.start()
    repo, _, tg = tag.rpartition(":")
    c.api.import_image(src=chunks(), repository=repo, tag=tg, changes=CHANGES, stream_src=True)
    th.join()
    if errors:
        remove_image(c, tag)
        raise errors[0]
    return time.monotonic() - t0


def measure(c, name: str) -> dict:
    src = tag_for(name)
    out_tag = f"minify-bench/scale-{name}-min:latest"
    with tempfile.TemporaryDirectory(prefix="minify-bench-") as d:
        rss_path = os.path.join(d, "rss.json")
        cmd = [sys.executable, "-m", "bench.rss_wrapper", rss_path, "build", "--json",
               "--tag", out_tag, src]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              cwd=os.path.dirname(HERE))
        wall = time.monotonic() - t0
        try:
            with open(rss_path) as f:
                rss = json.load(f)
        except OSError:
            rss = {}
    remove_image(c, out_tag)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    image = c.images.get(src)
    # The engine's share: one `docker export` read through tarfile, nothing else (the
    # build streams the export three times: index, plan's ELF pass, rebuild).
    t0 = time.monotonic()
    _export_scan(c, image.id)
    export_s = time.monotonic() - t0
    return {
        "export_scan_s": round(export_s, 3),
        "image": src, "image_size": int(image.attrs.get("Size") or 0),
        "files": report.get("files", {}).get("total"),
        "exit_code": proc.returncode, "wall_s": round(wall, 3),
        "timings": report.get("timings", {}), "verify": report.get("verify", {}).get("status"),
        "output_size": report.get("output", {}).get("size"),
        "maxrss_bytes": rss.get("maxrss_bytes"),
        "tracer_maxrss_bytes": rss.get("children_maxrss_bytes"),
        "cpu_s": rss.get("cpu_s"),
        "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
    }


def run(c) -> dict:
    rows = {}
    for name, files in SIZES:
        gen = generate(c, name, files)
        log(f"scale: minify build {tag_for(name)}")
        rows[name] = {"generate_s": round(gen, 1), **measure(c, name)}
    return _judge(rows)


def _judge(rows: dict) -> dict:
    ok_rows = [r for r in rows.values() if r["exit_code"] == 0 and r["maxrss_bytes"]]
    big = rows.get("1g", {})
    rss_met = bool(big.get("maxrss_bytes")) and big["maxrss_bytes"] <= TARGET_RSS
    # Linear: the marginal seconds per GB between 500 MB and 1 GB must not exceed the one
    # between 100 MB and 500 MB by more than the tolerance.
    linear = None
    slopes = []
    if len(ok_rows) == 3:
        pts = [(r["image_size"], r["wall_s"]) for r in ok_rows]
        slopes = [(pts[i + 1][1] - pts[i][1]) / ((pts[i + 1][0] - pts[i][0]) / 1e9)
                  for i in range(2)]
        linear = slopes[1] <= SUPERLINEAR_TOLERANCE * slopes[0]
    return {"sizes": rows, "rss_target_bytes": TARGET_RSS, "rss_met": rss_met,
            "marginal_s_per_gb": [round(s, 2) for s in slopes], "linear_met": linear}


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "size", "files", "build wall", "index / plan / rebuild / verify",
               "one docker export alone",
               "minify peak RSS (target <= 200 MB at 1 GB)", "tracer peak RSS", "exit"]
    rows = []
    for r in res["sizes"].values():
        t = r["timings"]
        st = " / ".join(f"{t.get(k, 0):.1f}" for k in ("index", "plan", "rebuild", "verify"))
        rss = f"{(r['maxrss_bytes'] or 0) / 2**20:.0f} MiB"
        rows.append([r["image"], f"{r['image_size'] / 1e6:.0f} MB", r["files"],
                     f"{r['wall_s']:.1f} s", f"{st} s", f"{r['export_scan_s']:.1f} s", rss,
                     f"{(r['tracer_maxrss_bytes'] or 0) / 2**20:.0f} MiB",
                     f"{r['exit_code']} ({r['verify']})"])
    return headers, rows

"""Scale: generated images from 100 MB / 10k files to 5 GB / 500k files, trivial app.

Each image is the busybox sandbox image (static busybox, /www, httpd entrypoint on 8080)
plus /data/dNNN/fNNNNNN files of 10 kB of incompressible bytes, generated as one tar
stream and `docker import`ed straight from Python (no file on disk). An image this run
generated is removed at the end unless BENCH_KEEP_IMAGES=1; one that existed is reused
and kept.

Per image, BENCH_SCALE_REPS (default 3) interleaved repetitions of, in this order:
  export    baseline (a): `docker export` of a created container to /dev/null
  storage   `minify build` reading the layer directories, with an empty cache directory
  cached    the same build again, the index now in that cache directory
  fallback  `minify build --image-source export --no-cache` (the export stream)
  run       baseline (b): plain `docker run`, the build's requests replayed, `docker kill`
  verify    one verification run, as minify's verification does it on the minified
            image: start, requests, the liveness hold, `docker restart`, requests again
  peer      BENCH_PEER's build of the same image (optional)
Every `minify build` runs as its own process through bench.rss_wrapper: wall time, and
the peak RSS and CPU of the minify process and of the tracer process, each its own.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import threading
import time

from minifier.image.source import DockerExportSource
from minifier.image.tarstream import TarStream

from .common import (
    SANDBOX,
    export_devnull,
    fmt_spread,
    image_exists,
    log,
    minify_cli,
    peer_build,
    recorded_requests,
    remove_image,
    run_requests_stop,
    spread,
)

FILE_SIZE = 10_000
SIZES = (("100m", 10_000), ("500m", 50_000), ("1g", 100_000), ("5g", 500_000))
PER_DIR = 1000
PORT = 8080
RSS_SMALL = 64 * 1024 * 1024  # up to 500 MB images
RSS_1G = 100 * 1024 * 1024  # at 1 GB / 100k files
STORAGE_RATIO, FALLBACK_RATIO, CACHED_RATIO = 1.3, 2.0, 0.3  # x one export, at 1 GB
FLAT = 1.15  # 5 GB against 1 GB: per-GB time and peak RSS within 15 %
CHANGES = ['ENTRYPOINT ["/bin/httpd","-f","-p","8080","-h","/www"]', "EXPOSE 8080",
           "ENV PATH=/bin", "LABEL minify.bench=scale"]
KINDS = ("storage", "cached", "fallback")


def tag_for(name: str) -> str:
    return f"minify-bench/scale-{name}:latest"


def _write_tar(c, files: int, fileobj, file_size: int = FILE_SIZE) -> None:
    pool = os.urandom(8 << 20)
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as out:
        base = c.images.get(SANDBOX["busybox"]).id
        with DockerExportSource(c, base, run_id="bench").open() as stream:
            tar = TarStream(stream)
            for m in tar:
                ti = tarfile.TarInfo(m.name)
                for attr in ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "size",
                             "linkname", "devmajor", "devminor"):
                    setattr(ti, attr, getattr(m, attr))
                out.addfile(ti, io.BytesIO(tar.read()) if m.isfile() else None)
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
    """Import the generated image; seconds taken (0 when the tag exists)."""
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


def _rep(c, name: str, rep: int) -> dict:
    src = tag_for(name)
    out = {"export": export_devnull(c, src)}
    with tempfile.TemporaryDirectory(prefix="minify-bench-cache-") as cache:
        for kind, args in (("storage", ["--cache-dir", cache]),
                           ("cached", ["--cache-dir", cache]),
                           ("fallback", ["--image-source", "export", "--no-cache"])):
            tag = f"minify-bench/scale-{name}-{kind}:latest"
            log(f"scale: {name} rep {rep}: minify build ({kind})")
            out[kind] = minify_cli([*args, src], tag)
            if kind == "storage" and out[kind]["exit_code"] == 0:
                recorded = recorded_requests(out[kind]["requests"])
                out["run"] = run_requests_stop(c, src, PORT, recorded)
                out["verify"] = run_requests_stop(c, tag, PORT, recorded, restart=True,
                                                  hold=out[kind]["liveness_hold_s"])
            remove_image(c, tag)
            out[kind].pop("requests", None)
    peer = peer_build(src, f"minify-bench/scale-{name}-peer:latest")
    if peer is not None:
        out["peer"] = peer
        remove_image(c, f"minify-bench/scale-{name}-peer:latest")
    return out


def _disk_ok(files: int) -> bool:
    need = 3 * files * FILE_SIZE  # the image, its import, and room to spare
    return shutil.disk_usage("/var/lib/docker").free > need


def run(c) -> dict:
    reps = int(os.environ.get("BENCH_SCALE_REPS", "3"))
    only = {s for s in os.environ.get("BENCH_SCALE_SIZES", "").split(",") if s}
    keep = os.environ.get("BENCH_KEEP_IMAGES") == "1"
    rows = {}
    for name, files in SIZES:
        if only and name not in only:
            continue
        if not _disk_ok(files) and not image_exists(c, tag_for(name)):
            rows[name] = {"skipped": "not enough free disk under /var/lib/docker"}
            continue
        gen = generate(c, name, files)
        image = c.images.get(tag_for(name))
        runs = []
        try:
            for rep in range(reps):
                runs.append(_rep(c, name, rep + 1))
        finally:
            if gen and not keep:  # only what this run generated: others may share the tag
                remove_image(c, tag_for(name))
        rows[name] = _summary(name, files, image, gen, runs)
    return _judge(rows)


def _summary(name: str, files: int, image, gen: float, runs: list[dict]) -> dict:
    s = {"image": tag_for(name), "files": files, "image_size": int(image.attrs.get("Size") or 0),
         "generate_s": round(gen, 1), "runs": runs,
         "export_s": spread([r["export"]["seconds"] for r in runs]),
         "run_s": spread([r.get("run", {}).get("seconds") for r in runs]),
         "verify_run_s": spread([r.get("verify", {}).get("seconds") for r in runs])}
    for kind in KINDS:
        ok = [r[kind] for r in runs if r[kind]["exit_code"] == 0]
        s[kind] = {"wall_s": spread([b["wall_s"] for b in ok]),
                   "index_s": spread([b["timings"].get("index") for b in ok]),
                   "maxrss_bytes": spread([b["maxrss_bytes"] for b in ok]),
                   "tracer_maxrss_bytes": spread([b["tracer_maxrss_bytes"] for b in ok]),
                   "tracer_cpu_s": spread([b["tracer_cpu_s"] for b in ok]),
                   "failed": len(runs) - len(ok), "cmd": runs[0][kind]["cmd"],
                   "reader": (ok[0]["index"].get("reader") if ok else None),
                   "cache": sorted({b["index"].get("cache", "") for b in ok})}
        # per-rep ratios to that rep's own export: interleaved, so both saw the same load
        s[kind]["x_export"] = spread([r[kind]["wall_s"] / r["export"]["seconds"]
                                      for r in runs if r[kind]["exit_code"] == 0])
    s["baseline_c_s"] = spread([r["export"]["seconds"] + r["run"]["seconds"]
                                + r["verify"]["seconds"] for r in runs if "run" in r])
    s["storage"]["x_baseline_c"] = spread([
        r["storage"]["wall_s"] / (r["export"]["seconds"] + r["run"]["seconds"]
                                  + r["verify"]["seconds"]) for r in runs if "run" in r])
    peers = [r["peer"] for r in runs if "peer" in r]
    if peers:
        s["peer"] = {"wall_s": spread([p["wall_s"] for p in peers if p["exit_code"] == 0]),
                     "cmd": peers[0]["cmd"], "failed": sum(p["exit_code"] != 0 for p in peers)}
    return s


def _med(row: dict, kind: str, key: str):
    return ((row.get(kind) or {}).get(key) or {}).get("median")


def _judge(rows: dict) -> dict:
    targets = []

    def target(name: str, measured, limit, ok) -> None:
        targets.append({"target": name, "measured": measured, "limit": limit,
                        "met": None if measured is None else bool(ok)})

    g1 = rows.get("1g", {})
    for kind, limit in (("storage", STORAGE_RATIO), ("fallback", FALLBACK_RATIO),
                        ("cached", CACHED_RATIO)):
        m = _med(g1, kind, "x_export")
        target(f"1 GB build ({kind}) / one docker export", m, limit,
               m is not None and m <= limit)
    for name, limit in (("100m", RSS_SMALL), ("500m", RSS_SMALL), ("1g", RSS_1G)):
        m = _med(rows.get(name, {}), "storage", "maxrss_bytes")
        target(f"peak RSS of minify, {name} (storage reader)", m, limit,
               m is not None and m <= limit)
        m = _med(rows.get(name, {}), "fallback", "maxrss_bytes")
        target(f"peak RSS of minify, {name} (export stream)", m, limit,
               m is not None and m <= limit)
    g5 = rows.get("5g", {})
    for kind in ("storage", "fallback"):
        t1, t5 = _med(g1, kind, "wall_s"), _med(g5, kind, "wall_s")
        size1, size5 = g1.get("image_size"), g5.get("image_size")
        per = (t5 / (size5 / 1e9)) / (t1 / (size1 / 1e9)) if t1 and t5 else None
        target(f"time per GB, 5 GB / 1 GB ({kind})", per, FLAT, per is not None and per <= FLAT)
        r1, r5 = _med(g1, kind, "maxrss_bytes"), _med(g5, kind, "maxrss_bytes")
        ratio = r5 / r1 if r1 and r5 else None
        target(f"peak RSS, 5 GB / 1 GB ({kind})", ratio, FLAT,
               ratio is not None and ratio <= FLAT)
    return {"sizes": rows, "targets": targets}


def render(res: dict) -> tuple[list[str], list[list]]:
    headers = ["image", "size", "files", "reader", "build wall (min-max)", "x one export",
               "index stage", "minify peak RSS", "tracer peak RSS", "tracer CPU"]
    rows = []
    for name, r in res["sizes"].items():
        if "skipped" in r:
            rows.append([name, "-", "-", "-", r["skipped"], "-", "-", "-", "-", "-"])
            continue
        gb = r["image_size"] / 1e9
        rows.append([name, f"{gb:.2f} GB", r["files"], "docker export (a)",
                     fmt_spread(r["export_s"]), "1.00", "-", "-", "-", "-"])
        for kind in KINDS:
            k = r[kind]
            label = {"storage": "storage", "cached": "storage, cached index",
                     "fallback": "export stream"}[kind]
            rows.append(["", "", "", label + (f" ({k['failed']} failed)" if k["failed"] else ""),
                         fmt_spread(k["wall_s"]), fmt_spread(k["x_export"], "x", digits=2),
                         fmt_spread(k["index_s"]),
                         fmt_spread(k["maxrss_bytes"], "MiB", 2**20, 0),
                         fmt_spread(k["tracer_maxrss_bytes"], "MiB", 2**20, 0),
                         fmt_spread(k["tracer_cpu_s"], "s", digits=2)])
        rows.append(["", "", "", "(a)+(b)+verify run", fmt_spread(r["baseline_c_s"]),
                     "-", "-", "-", "-", "-"])
        if "peer" in r:
            rows.append(["", "", "", "BENCH_PEER", fmt_spread(r["peer"]["wall_s"]), "-", "-",
                         "-", "-", "-"])
    return headers, rows

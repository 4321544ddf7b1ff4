"""`python -m bench`: run the four benchmarks, print their tables, write the results.

Environment: BENCH_ONLY=overhead,buildtime,size,scale,xray runs a subset (the other sections
are kept from the previous bench/results.json); BENCH_REPS (overhead, default 3),
BENCH_BUILD_REPS (default 3), BENCH_SCALE_REPS (default 3), BENCH_SCALE_SIZES (e.g.
100m,1g; default all four), BENCH_KEEP_IMAGES=1 (keep the generated scale images),
BENCH_XRAY_REPS (default 2), BENCH_REQUESTS (default 2000), BENCH_CONCURRENCY (default
8), BENCH_PEER and
BENCH_PEER_ARGS (another minifier timed on the same images, see common.peer_build).
"""

from __future__ import annotations

import json
import os
import sys
import time

from . import buildtime, overhead, results, scale, size, xray
from .common import HERE, cleanup_bench_containers, client, leftover_containers, log, machine_info


def _write(doc: dict, path: str, t0: float) -> None:
    """results.json and RESULTS.md as they stand (after every section: a crash later keeps
    what was measured)."""
    doc["machine"]["bench_seconds"] = round(time.monotonic() - t0, 1)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
        f.write(results.render_markdown(doc))


def main() -> int:
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}

    def want(name: str) -> bool:
        return not only or name in only

    c = client()
    doc: dict = {}
    path = os.path.join(HERE, "results.json")
    if only and os.path.exists(path):
        # A partial run keeps the other sections of the previous results.
        with open(path) as f:
            doc = {k: v for k, v in json.load(f).items() if k != "machine"}
    doc["machine"] = machine_info(c)
    t0 = time.monotonic()
    sections = (
        ("overhead", lambda: overhead.run(
            c, reps=int(os.environ.get("BENCH_REPS", "3")),
            total=int(os.environ.get("BENCH_REQUESTS", "2000")),
            concurrency=int(os.environ.get("BENCH_CONCURRENCY", "8")))),
        ("buildtime", lambda: buildtime.run(c, reps=int(os.environ.get("BENCH_BUILD_REPS",
                                                                        "3")))),
        ("size", lambda: size.run(c)),
        ("scale", lambda: scale.run(c)),
        ("xray", lambda: xray.run(c, reps=int(os.environ.get("BENCH_XRAY_REPS", "2")))),
    )
    try:
        for name, run in sections:
            if want(name):
                doc[name] = run()
                _write(doc, path, t0)
    finally:
        left = leftover_containers(c)
        if left:
            log(f"removing leftover bench containers: {[x.name for x in left]}")
            cleanup_bench_containers(c)
    _write(doc, path, t0)
    sys.stdout.write(results.render_tables(doc) + "\n")
    log(f"wrote {path} and {os.path.join(HERE, 'RESULTS.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

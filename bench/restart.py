"""What the traced restart costs a build, on the sandbox samples.

After probing, observation restarts the app once, traced (minifier/observe/restart.py):
stop like `docker stop`, start again in the same container, wait for readiness, send the
recorded HTTP requests and exec probes again. Per sample this builds the image twice,
interleaved, BENCH_RESTART_REPS times (default 1): as by default, and with
`--no-restart-trace`; both with `--no-verify` (verification does not change with it)
and one shared index cache (so indexing is no noise). It reports the wall time of both,
their difference, the build's own `restart` stage time (from the report's `timings`),
the requests and exec probes sent again, and the files the restart added.

    .venv/bin/python -m bench.restart        # writes bench/restart.json and RESTART.md
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from .common import HERE, SANDBOX, client, log, machine_info, median, minify_cli, remove_image
from .common import table as md_table

PSQL = "psql -h 127.0.0.1 -U postgres -c 'select 1'"
# (name, sample, extra arguments): the e2e suite's ways of building each sample.
CASES = (
    ("nginx", "nginx", ()),
    ("python", "python", ()),
    ("headless", "headless", ()),
    ("node", "node", ()),
    ("java", "java", ()),
    ("postgres", "postgres", ("--no-http-probe", "--exec", PSQL)),
    ("redis", "redis", ("--no-http-probe", "--exec", "redis-cli -h 127.0.0.1 ping")),
    ("oneshot", "oneshot", ("--no-http-probe",)),
    ("lifecycle", "lifecycle", ()),
)


def _build(name: str, args: tuple[str, ...], cache: str, traced: bool) -> dict:
    tag = f"minify-bench/{name}-restart:latest"
    extra = () if traced else ("--no-restart-trace",)
    try:
        out = minify_cli(["--no-verify", "--cache-dir", cache, *extra, *args], tag,
                         full_report=True)
    finally:
        remove_image(client(), tag)
    report = out.pop("report", {}) or {}
    restart = (report.get("observation") or {}).get("restart") or {}
    return {"cmd": out["cmd"], "exit_code": out["exit_code"], "wall_s": out["wall_s"],
            "restart_stage_s": out["timings"].get("restart", 0.0),
            "requests": restart.get("requests", 0), "execs": restart.get("execs", 0),
            "kept": {k["path"] for k in report.get("kept", [])},
            "stderr_tail": out["stderr_tail"]}


def run(reps: int) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="minify-bench-cache-") as cache:
        for name, sample, args in CASES:
            image = SANDBOX.get(sample) or f"minify-sandbox/{sample}:latest"
            log(f"restart: {name}")
            _build(name, (image, *args), cache, traced=False)  # fills the index cache
            traced, plain = [], []
            for _ in range(reps):
                traced.append(_build(name, (image, *args), cache, traced=True))
                plain.append(_build(name, (image, *args), cache, traced=False))
            added = sorted(traced[-1]["kept"] - plain[-1]["kept"])
            rows[name] = {
                "cmd": traced[-1]["cmd"],
                "exit_codes": [b["exit_code"] for b in traced + plain],
                "traced_s": [b["wall_s"] for b in traced],
                "plain_s": [b["wall_s"] for b in plain],
                "restart_stage_s": [b["restart_stage_s"] for b in traced],
                "requests": traced[-1]["requests"], "execs": traced[-1]["execs"],
                "files_added": added,
                "errors": [b["stderr_tail"] for b in traced + plain if b["exit_code"]],
            }
    return rows


def render(doc: dict) -> str:
    rows = []
    for name, r in doc["rows"].items():
        traced, plain = median(r["traced_s"]), median(r["plain_s"])
        rows.append((name, f"{plain:.1f}", f"{traced:.1f}", f"{traced - plain:+.1f}",
                     f"{median(r['restart_stage_s']):.1f}", r["requests"], r["execs"],
                     ", ".join(r["files_added"]) or "-"))
    machine = doc["machine"]
    return "\n".join([
        "# The traced restart's cost per build",
        "",
        f"{machine.get('date')}: {machine.get('cores')} cores ({machine.get('cpu')}), load "
        f"{machine.get('loadavg')} at the start; {doc['reps']} repetition(s), medians.",
        "Both builds with `--no-verify` and a warm index cache: `plain` adds "
        "`--no-restart-trace`. `restart stage` is the report's `timings.restart`.",
        "",
        md_table(("sample", "plain s", "traced s", "difference s", "restart stage s",
                  "requests again", "execs again", "files only the restart kept"), rows),
        "",
    ])


def main() -> int:
    reps = int(os.environ.get("BENCH_RESTART_REPS", "1"))
    doc = {"machine": machine_info(client()), "reps": reps, "rows": run(reps)}
    with open(os.path.join(HERE, "restart.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    text = render(doc)
    with open(os.path.join(HERE, "RESTART.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

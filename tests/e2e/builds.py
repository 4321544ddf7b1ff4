"""`minify build` runs that more than one e2e test asserts on, shared by the whole
session: each case (a sample and its arguments) runs once, whichever test asks for it
first, and its image is removed when the session ends (conftest's `build` fixture).

The report contract (test_report_contract.py) pins its keys on these same runs, so it
costs no build of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import helpers
from .helpers import Run

PSQL_PROBE = "psql -h 127.0.0.1 -U postgres -c 'select 1'"
TOOLS_INCOMPLETE = ("--include-bin", "/usr/bin/curl", "--include-bin", "sh",
                    "--exclude-pattern", "**/libbrotlicommon.so*")

CASES: dict[str, tuple[str, ...]] = {
    # test_app_shapes: every app shape, and a broken variant of each
    "postgres": ("postgres", "--no-http-probe", "--exec", PSQL_PROBE),
    "postgres-broken": ("postgres", "--no-http-probe", "--exec", PSQL_PROBE,
                        "--exclude-pattern", "/usr/share/postgresql/15/postgres.bki"),
    "redis": ("redis", "--no-http-probe", "--exec", "redis-cli -h 127.0.0.1 ping"),
    # No probe at all: liveness alone must catch an app that cannot start.
    "redis-broken": ("redis", "--no-http-probe", "--continue-after", "timeout:2",
                     "--exclude-pattern", "/etc/redis/minify.conf"),
    "health": ("health",),
    "health-broken": ("health", "--exclude-pattern", "/usr/bin/curl"),
    "health-opt-out": ("health", "--no-healthcheck"),
    # No option at all: an image exposing no port is run without HTTP probing (a note).
    "oneshot": ("oneshot",),
    "oneshot-broken": ("oneshot", "--no-http-probe",
                       "--exclude-pattern", "/usr/share/oneshot/items.txt"),
    "oneshot-no-start": ("oneshot", "--no-http-probe",
                         "--exclude-pattern", "/usr/local/bin/summary"),
    # --json: the error document on stdout (test_report_contract pins it)
    "oneshot-exec-fails": ("oneshot", "--no-http-probe", "--exec", "cat /etc/no-such-file",
                           "--json"),
    "oneshot-exec-allowed": ("oneshot", "--no-http-probe", "--exec", "cat /etc/no-such-file",
                             "--exec-allow-fail"),
    # test_probe_shapes: the plain build of each probing sample
    "headless-plain": ("headless", "--http-probe"),
    "untyped-plain": ("untyped", "--http-probe"),
    "jsonapi-plain": ("jsonapi", "--http-probe"),
    "mixed-plain": ("mixed", "--http-probe"),
    # test_verify: a file one endpoint needs, excluded
    "python-broken": ("python", "--exclude-pattern", "/app/data/items.json", "--json"),
    # test_closure: a library excluded, built anyway
    "tools-incomplete": ("tools", "--no-http-probe", *TOOLS_INCOMPLETE, "--allow-incomplete",
                         "--entrypoint", "head -n1 /etc/tools.txt"),
}


@dataclass
class Built:
    """One case's run: the command's result, the image tag it built, its report ({}
    when it wrote none)."""

    run: Run
    tag: str
    report: dict

    @property
    def error_line(self) -> str:
        lines = [ln for ln in self.run.stderr.splitlines() if ln.startswith("minify: error:")]
        assert len(lines) == 1, self.run.stderr
        assert "Traceback" not in self.run.stderr
        return lines[0]


def run_case(case: str) -> Built:
    sample, *args = CASES[case]
    report_file = Path(helpers.TMP) / f"{case}-report.json"
    tag = f"minify-test/shared-{case}.min:e2e"  # unique to these cases: run in parallel
    run = helpers.minify("build", f"minify-sandbox/{sample}:latest", "--tag", tag,
                         "--report-file", str(report_file), *args)
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return Built(run, tag, report)

"""Run the `minify` CLI in this process and record what it cost, process by process.

    python -m bench.rss_wrapper OUT.json build [minify build options] IMAGE

OUT.json gets the exit code, this process's own peak RSS (the minify process: VmHWM of
/proc/self/status, the high-water mark of its memory since exec; `ru_maxrss` would also
count the memory of whoever spawned it, which exec inherits as a starting point) and
CPU (getrusage), and for each child process (the tracer, one per traced launch) its
peak RSS after exec (VmHWM) and its own CPU (utime + stime of /proc/PID/stat), sampled
every 20 ms while it lives: RUSAGE_CHILDREN would count the fork's copy of minify's
memory and the waited-for children all in one.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading

from minifier.cli import main as minify_main

_TICK = os.sysconf("SC_CLK_TCK")
_PERIOD = 0.02


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _sample(pid: int) -> tuple[str, int, float] | None:
    """(command line, VmHWM bytes, CPU seconds) of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        with open(f"/proc/{pid}/status") as f:
            hwm = next((int(line.split()[1]) * 1024 for line in f
                        if line.startswith("VmHWM:")), 0)
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return cmd, hwm, (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


class _Watcher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[int, dict] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.wait(_PERIOD):
            for pid in _children(me):
                got = _sample(pid)
                if got is not None and got[0]:
                    cmd, hwm, cpu = got
                    rec = self.seen.get(pid)
                    if rec is None or rec["cmd"] != cmd[:200]:
                        # new, or exec'd since: only what the program itself used counts
                        rec = self.seen[pid] = {"cmd": cmd[:200], "maxrss_bytes": 0,
                                                "cpu_s": 0.0}
                    rec["maxrss_bytes"] = max(rec["maxrss_bytes"], hwm)
                    rec["cpu_s"] = max(rec["cpu_s"], cpu)


def main() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    watcher = _Watcher()
    watcher.start()
    try:
        code = minify_main(args)
    finally:
        watcher.stop.set()
        watcher.join()
    me = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    tracers = [c for c in watcher.seen.values() if "minifier.sensor.tracer" in c["cmd"]]
    with open(out, "w") as f:
        json.dump({"exit_code": int(code), "maxrss_bytes": hwm,
                   "cpu_s": round(me.ru_utime + me.ru_stime, 3),
                   "tracer_maxrss_bytes": max((t["maxrss_bytes"] for t in tracers), default=0),
                   "tracer_cpu_s": round(sum(t["cpu_s"] for t in tracers), 3),
                   "children": list(watcher.seen.values())}, f)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

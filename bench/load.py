"""A bounded loopback HTTP load: a fixed number of GETs from a fixed number of threads.

Each thread keeps one HTTP/1.1 connection (http.client, reconnecting when the server
closes it, as werkzeug's HTTP/1.0 server does). http.client rather than requests: it
costs the client about a third of the CPU per request, and the client shares the two
cores with the server and docker-proxy.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    ok: int
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "errors": self.errors,
                "seconds": round(self.seconds, 3), "rps": round(self.rps, 1)}


def run_load(port: int, path: str, total: int = 2000, concurrency: int = 8,
             host: str = "127.0.0.1", timeout: float = 10.0) -> LoadResult:
    counter = itertools.count()
    lock = threading.Lock()
    stats = {"ok": 0, "errors": 0}
    start = threading.Barrier(concurrency + 1)

    def worker() -> None:
        conn = None
        ok = errors = 0
        start.wait()
        while next(counter) < total:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    ok += 1
                else:
                    errors += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            stats["ok"] += ok
            stats["errors"] += errors

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return LoadResult(total, stats["ok"], stats["errors"], time.monotonic() - t0)

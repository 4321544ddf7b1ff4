"""Run the `minify` CLI in this process and record its own peak RSS.

    python -m bench.rss_wrapper OUT.json build [minify build options] IMAGE

OUT.json gets the exit code, this process's ru_maxrss (the minify process itself) and
RUSAGE_CHILDREN's ru_maxrss (the largest waited-for child: the tracer subprocess).
"""

from __future__ import annotations

import json
import resource
import sys

from minifier.cli import main as minify_main


def main() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    code = minify_main(args)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        json.dump({"exit_code": int(code), "maxrss_bytes": me.ru_maxrss * 1024,
                   "children_maxrss_bytes": kids.ru_maxrss * 1024,
                   "cpu_s": round(me.ru_utime + me.ru_stime, 3),
                   "children_cpu_s": round(kids.ru_utime + kids.ru_stime, 3)}, f)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

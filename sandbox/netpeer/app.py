"""A service that needs another container at start and on every request, as an app needs
its database: it reads $PEER_URL (http://db:8000/secret.txt, the host name `db` resolved
by Docker's DNS on a user network or through a --link alias) and refuses to start when
the peer cannot be reached."""

import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PEER = os.environ["PEER_URL"]


def fetch() -> bytes:
    with urllib.request.urlopen(PEER, timeout=5) as answer:
        return answer.read()


try:
    FIRST = fetch()
except OSError as exc:
    print(f"fatal: cannot reach the peer at {PEER}: {exc}", file=sys.stderr, flush=True)
    sys.exit(1)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/":
            body, status = b"at start: " + FIRST, 200
        elif self.path == "/now":
            try:
                body, status = b"now: " + fetch(), 200
            except OSError as exc:
                body, status = f"peer unreachable: {exc}\n".encode(), 502
        else:
            body, status = b"not found\n", 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()

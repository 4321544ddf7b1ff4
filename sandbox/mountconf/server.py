"""A service configured by a file that each deployment mounts over the image's default
(/etc/app/app.conf, /etc/app -> /config): the file names the greeting to serve (a file
of the image, outside the mount) and the service's time zone. Refuses to start without
its configuration, like many services do."""

import sys
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CONF = "/etc/app/app.conf"


def load(path: str) -> dict:
    try:
        with open(path) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except OSError as exc:
        print(f"fatal: cannot read {path}: {exc.strerror}", file=sys.stderr, flush=True)
        sys.exit(1)


CONFIG = load(CONF)
ZONE = ZoneInfo(CONFIG["zone"])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            with open(CONFIG["greeting_file"], "rb") as f:
                self.answer(200, f.read())
        elif url.path == "/time":  # no page links here: only a caller who knows asks
            name = parse_qs(url.query).get("tz", [CONFIG["zone"]])[0]
            try:
                offset = datetime(2024, 1, 15, 12, tzinfo=ZoneInfo(name)).strftime("%z")
                self.answer(200, f"{name} {offset}\n".encode())
            except (ZoneInfoNotFoundError, ValueError) as exc:
                self.answer(500, f"unknown time zone {name}: {exc}\n".encode())
        else:
            self.answer(404, b"not found\n")

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()

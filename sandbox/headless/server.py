"""A hand-written stdlib web app, the way many are: BaseHTTPRequestHandler with do_GET
only (HEAD gets the library's 501), HTTP/1.0 (the connection closes after each answer),
every page and file read from disk when it is asked for."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = "/app/data"
STATIC = "/app/static"
TYPES = {".css": "text/css", ".png": "image/png", ".js": "text/javascript"}

INDEX = """<!doctype html>
<html><head><title>headless</title>
<link rel="stylesheet" href="/static/site.css">
<script src="/static/app.js"></script></head>
<body><h1>headless</h1>
<img src="/static/logo.png" alt="logo">
<ul><li><a href="/about">about</a></li><li><a href="/notes">notes</a></li></ul>
</body></html>
"""


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.answer(INDEX.encode(), "text/html; charset=utf-8")
        elif path == "/about":
            self.answer(b"<p>" + read(f"{DATA}/about.txt") + b"</p>", "text/html")
        elif path == "/notes":
            items = read(f"{DATA}/notes.txt").decode().splitlines()
            body = "".join(f'<li><a href="/notes/{n}">{n}</a></li>' for n in items)
            self.answer(f"<ul>{body}</ul>".encode(), "text/html")
        elif path.startswith("/notes/") and path[7:].isalnum():
            self.answer(read(f"{DATA}/notes/{path[7:]}.txt"), "text/plain")
        elif path == "/crash":
            os._exit(3)  # a bug that takes the whole app down
        elif path == "/fail":
            raise RuntimeError("unhandled")  # http.server drops the connection
        elif path.startswith("/static/") and ".." not in path:
            name = f"{STATIC}/{path[8:]}"
            if os.path.isfile(name):
                self.answer(read(name), TYPES.get(os.path.splitext(name)[1]))
            else:
                self.send_error(404)
        else:
            self.send_error(404)

    def answer(self, body, ctype):
        self.send_response(200)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    print("listening on 8000", flush=True)
    ThreadingHTTPServer(("", 8000), Handler).serve_forever()

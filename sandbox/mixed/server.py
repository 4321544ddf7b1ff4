"""The web side of the mixed sample: HTTP on 8080 and HTTPS on 8443 (not 443), each
page reading its own data file; Redis listens on 6379 next to it (start.sh)."""

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGES = {
    8080: {"/": '<a href="/status">status</a>', "/status": "/app/data/status.txt"},
    8443: {"/": '<a href="/vault">vault</a>', "/vault": "/app/data/vault.txt"},
}


def handler(port):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            page = PAGES[port].get(self.path)
            if page is None:
                self.send_error(404)
                return
            if page.startswith("/app/"):
                with open(page, "rb") as f:
                    body, ctype = f.read(), "text/plain"
            else:
                body, ctype = page.encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Handler


def main():
    plain = ThreadingHTTPServer(("", 8080), handler(8080))
    secure = ThreadingHTTPServer(("", 8443), handler(8443))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain("/app/tls/cert.pem", "/app/tls/key.pem")
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    threading.Thread(target=secure.serve_forever, daemon=True).start()
    print("listening on 8080 (http) and 8443 (https)", flush=True)
    plain.serve_forever()


if __name__ == "__main__":
    main()

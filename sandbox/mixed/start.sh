#!/bin/sh
# A cache next to the web app, as many small images bundle them.
redis-server --port 6379 --save '' --appendonly no --protected-mode no &
# ... and a Go web server with TLS (Caddy, its own internal CA) in front of static files.
caddy run --config /app/Caddyfile --adapter caddyfile &
exec python3 /app/server.py

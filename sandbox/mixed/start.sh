#!/bin/sh
# A cache next to the web app, as many small images bundle them.
redis-server --port 6379 --save '' --appendonly no --protected-mode no &
exec python3 /app/server.py

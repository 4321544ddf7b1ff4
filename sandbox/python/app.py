"""Flask sample app for the minify sandbox (Debian's python3-flask)."""

import datetime
import json
import os
import subprocess

from flask import Flask, jsonify, request

DATA_FILE = "/app/data/items.json"

app = Flask(__name__)


@app.get("/")
def index():
    return (
        "<!doctype html><html><head><title>minify sandbox: python</title></head><body>"
        "<h1>minify sandbox: python</h1><ul>"
        '<li><a href="/api/items">/api/items</a></li>'
        '<li><a href="/api/time">/api/time</a></li>'
        '<li><a href="/health">/health</a></li>'
        '<li><a href="/api/uname">/api/uname</a></li>'
        "</ul></body></html>"
    )


@app.get("/health")
def health():
    return jsonify({"status": "ok"})


@app.get("/api/items")
def items():
    # Read at request time, so leaving the file out breaks only this endpoint.
    with open(DATA_FILE, encoding="utf-8") as f:
        return jsonify(json.load(f))


@app.post("/api/echo")
def echo():
    if request.headers.get("X-Probe-Token") != "minify":
        return jsonify({"error": "missing or wrong X-Probe-Token"}), 403
    body = request.get_json(silent=True)
    if body is None:
        return jsonify({"error": "expected a JSON body"}), 400
    return jsonify({"echo": body, "greeting": os.environ.get("APP_GREETING")})


@app.get("/api/time")
def now():
    return jsonify({"now": datetime.datetime.now(datetime.timezone.utc).isoformat()})


@app.get("/api/uname")
def uname():
    # A program executed per request.
    out = subprocess.run(
        ["/usr/bin/uname", "-s"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return jsonify({"uname": out})


@app.get("/api/greeting")
def greeting():
    return jsonify(
        {"greeting": os.environ["APP_GREETING"], "cwd": os.getcwd(), "uid": os.getuid()}
    )


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080, threaded=True)

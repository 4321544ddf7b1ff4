"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
fd 3 carries commands in, fd 4 answers and events out, each message JSON ended by a NUL),
so no port is opened and nothing but the page itself is loaded.

`load(path)` opens a local file and returns what a person would need to trust the page:
every console message and uncaught exception, every browser log entry (a blocked or
failed load, a Content-Security-Policy violation), every network request the page made,
and the values of a JavaScript expression evaluated in it (the DOM's figures).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Flags that work on the project's machines (no GPU, no network but the registries).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--remote-debugging-pipe"]


def chromium_path() -> str:
    return shutil.which("chromium") or shutil.which("chromium-browser") or ""


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are not fd 3 or 4, which the shell moves them onto."""
    import fcntl

    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


@dataclass
class PageLoad:
    console: list = field(default_factory=list)  # (type, text)
    exceptions: list = field(default_factory=list)
    log: list = field(default_factory=list)  # (level, source, text, url)
    requests: list = field(default_factory=list)  # urls
    value: object = None
    screenshot: bytes = b""


class Browser:
    """One Chromium process; use as a context manager."""

    def __init__(self, timeout: float = 60) -> None:
        self.timeout = timeout
        self._buf = b""
        self._id = 0
        self._events: list[dict] = []

    def __enter__(self) -> Browser:
        exe = chromium_path()
        assert exe, "chromium is not installed: run `make test-tools` (make test does)"
        self._profile = tempfile.mkdtemp(prefix="minify-chromium-")
        to_chrome_r, self._to_chrome = _high_pipe()
        self._from_chrome, from_chrome_w = _high_pipe()
        # The browser reads commands on fd 3 and writes on fd 4.
        shell = (f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} '
                 f"{to_chrome_r}<&- {from_chrome_w}>&-")
        self._proc = subprocess.Popen(
            ["bash", "-c", shell, exe, *FLAGS, f"--user-data-dir={self._profile}",
             "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol ---------------------------------------------------------------

    def _send(self, method: str, params: dict | None = None, session: str = "") -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._id

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            assert left > 0, "Chromium did not answer in time"
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 16)
                assert chunk, f"Chromium exited: {self._proc.stderr.read()[-2000:]!r}"
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str = "") -> dict:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._next(deadline)
            if msg.get("id") == wanted:
                assert "error" not in msg, (method, msg["error"])
                return msg.get("result") or {}
            self._events.append(msg)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for i, msg in enumerate(self._events):
            if msg.get("method") == method:
                return self._events.pop(i)
        while True:
            msg = self._next(deadline)
            if msg.get("method") == method:
                return msg
            self._events.append(msg)

    # -- one page -------------------------------------------------------------------

    def load(self, path: Path, expression: str, screenshot: bool = False) -> PageLoad:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self._events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_for("Page.loadEventFired")
        # Anything late (a lazy resource, a timer) has a moment to show up as an event.
        self.call("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 300))",
                                       "awaitPromise": True}, session=session)
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True}, session=session)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        page = PageLoad(value=result["result"].get("value"))
        if screenshot:
            import base64
            shot = self.call("Page.captureScreenshot", {"captureBeyondViewport": True},
                             session=session)
            page.screenshot = base64.b64decode(shot["data"])
        self._collect(page, session)
        self.call("Target.closeTarget", {"targetId": target})
        return page

    def _collect(self, page: PageLoad, session: str) -> None:
        for msg in self._events:
            if msg.get("sessionId") != session:
                continue
            method, params = msg.get("method"), msg.get("params") or {}
            if method == "Runtime.consoleAPICalled":
                page.console.append((params.get("type"), " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"])))
            elif method == "Runtime.exceptionThrown":
                page.exceptions.append(params["exceptionDetails"].get("text"))
            elif method == "Log.entryAdded":
                e = params["entry"]
                page.log.append((e.get("level"), e.get("source"), e.get("text"), e.get("url")))
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        self._events.clear()

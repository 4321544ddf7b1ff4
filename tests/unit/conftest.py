"""Fixtures several unit test modules use."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest


def serve_tcp(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1, one thread calling `handle` on each connection it
    accepts; yields its port. A connection `handle` leaves open stays open until the end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop, conns = threading.Event(), []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            handle(conn)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in conns:
            conn.close()
        listener.close()


@pytest.fixture
def closing_port() -> Iterator[int]:
    """Accepts TCP connections and closes them at once, like Docker's proxy with no app."""
    yield from serve_tcp(lambda conn: conn.close())

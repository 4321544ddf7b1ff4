"""Errors the probe package raises; each carries a one-line message meant for the user.

Every one derives from `ProbesError`, so a caller (the minifier's CLI) can map the whole
package's errors in one place and none escapes as an unexplained crash.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ProbesError", "ProbeSpecError", "NotReadyError", "AppExitedError"]


def _one_line(message: str) -> str:
    return " ".join(message.split())


class ProbesError(Exception):
    """Base of every error of the probes package: a one-line `message` for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))
        self.message = _one_line(message)


class ProbeSpecError(ProbesError, ValueError):
    """A probe specification (flag value or file) is malformed.

    The message names where the problem is: the file (or flag) and the field path,
    e.g. ``probes.json: commands[2].method: 'FETCH' is not an HTTP method``.
    """


class NotReadyError(ProbesError, RuntimeError):
    """The app never gave an HTTP answer on some ports within the wait bound."""

    def __init__(self, message: str, *, ports: Sequence[int] = (), waited: float = 0.0) -> None:
        super().__init__(message)
        self.ports = tuple(ports)
        self.waited = waited


class AppExitedError(ProbesError, RuntimeError):
    """The app exited before it answered on every probe port."""

    def __init__(self, message: str, *, elapsed: float = 0.0) -> None:
        super().__init__(message)
        self.elapsed = elapsed

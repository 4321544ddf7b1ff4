"""Progress output: a live display on a terminal, plain lines otherwise (CI logs).

All progress goes to stderr so stdout stays free for the report (or JSON).
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress"]


class Progress:
    """Stage-by-stage progress. `live` is decided by the caller from isatty()."""

    def __init__(self, stream: TextIO = sys.stderr, live: Optional[bool] = None,
                 quiet: bool = False) -> None:
        self._live = stream.isatty() if live is None else live
        self._quiet = quiet
        self._console = _console(stream) if self._live else None
        self._stream = stream
        self._status = None
        self._stage = ""
        self._text = ""
        self._started = 0.0
        self.timings: dict[str, float] = {}

    def stage(self, name: str, text: str) -> None:
        self._end_stage()
        self._stage, self._started, self._text = name, time.monotonic(), text
        if self._quiet:
            return
        if self._live:
            self._status = self._console.status(f"[bold]{text}[/]")
            self._status.start()
        else:
            self._stream.write(f"minify: {text}\n")
            self._stream.flush()

    def info(self, text: str) -> None:
        if self._quiet:
            return
        if self._live:
            self._console.print(f"  {text}", markup=False)
        else:
            self._stream.write(f"minify:   {text}\n")
            self._stream.flush()

    def warn(self, text: str) -> None:
        if self._live:
            self._console.print(f"[yellow]warning:[/] {text}")
        else:
            self._stream.write(f"minify: warning: {text}\n")
            self._stream.flush()

    def done(self) -> None:
        self._end_stage()

    def _end_stage(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
            # On a terminal a finished stage stays on screen, with its time.
            took = time.monotonic() - self._started
            self._console.print(f"[green]✓[/] {self._text} [dim]({took:.1f} s)[/]")
        if self._stage:
            self.timings[self._stage] = round(time.monotonic() - self._started, 3)
            self._stage = ""


def _console(stream: TextIO):
    # Imported here: a CI log (no terminal) gets plain lines and does not pay for rich.
    from rich.console import Console

    return Console(file=stream, force_terminal=True, highlight=False, soft_wrap=True)

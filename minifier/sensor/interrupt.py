"""Requests to cut a trace short: SIGTERM or SIGINT to the tracer process, with their sender.

minify stops a tracer process when it must end a trace early (an exec probe that ran
too long, cleanup after an error or Ctrl-C); the tracer then kills what it traces and
still writes its result. A traced process must never end the trace that way: the
launcher puts every traced program in a session of its own (launch.py), so `kill 0`
from the app reaches only the app's own processes, as in a container; and a signal whose
sender is a traced process is ignored here all the same. Python's own signal handlers
do not say who sent a signal, so the two signals are blocked in every thread and taken
by one thread with sigwaitinfo, which does (si_pid, si_code).
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass
from typing import Callable

__all__ = ["STOP_SIGNALS", "StopRequest", "block", "listen"]

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
_SI_KERNEL = 0x80


@dataclass(frozen=True)
class StopRequest:
    """One stop signal: which, and who sent it (`pid` as this process sees it, 0 for the
    kernel)."""

    signum: int
    pid: int
    code: int

    def text(self) -> str:
        """"SIGTERM from pid 812 (minify)", "SIGINT from the kernel"."""
        name = signal.Signals(self.signum).name
        if self.code == _SI_KERNEL or self.pid <= 0:
            return f"{name} from the kernel"
        return f"{name} from pid {self.pid} ({_command(self.pid)})"


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "gone"


def block() -> None:
    """Block the stop signals in this thread (threads started later inherit that): call
    before listen(). A launched child gets an empty signal mask before its exec."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def listen(on_request: Callable[[StopRequest], bool]) -> threading.Thread:
    """Take stop signals in a thread of their own; `on_request` says whether the request
    was taken (the listening ends) or ignored (it goes on)."""
    def loop() -> None:
        while True:
            info = signal.sigwaitinfo(STOP_SIGNALS)
            request = StopRequest(info.si_signo, info.si_pid, info.si_code)
            if on_request(request):
                return
            print(f"tracer: ignored {request.text()}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=loop, name="stop-signals", daemon=True)
    thread.start()
    return thread

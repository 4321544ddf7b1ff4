"""The ptrace monitor as the runner sees it: one `python -m minifier.sensor.tracer`
process, its spec file in, its result file out.

The tracer runs as a process of its own (it reaps every child of the process it runs
in, and joining the container's pid namespace changes its pid_for_children); this class
owns that process and its files in the run's directory, so the runner only starts,
stops and reads it like any other monitor.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from minifier.engine import signals_deferred
from minifier.errors import CapabilityError, MinifyError
from minifier.records import LaunchSpec, TraceResult
from minifier.sensor.tracejson import (
    CONFINEMENT_FAILED,
    LAUNCH_FD,
    SPARE,
    result_from_json,
    spec_to_json,
)

__all__ = ["SpareTracer", "TracerProcess", "tail"]


def tail(path: str, lines: int = 20) -> str:
    """The last lines of a log file (its last 64 kB), "" when there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@dataclass
class _Started:
    """A tracer process and two descriptors to wait on it without polling: `exited` (a
    pidfd, readable once it has exited) and `launched` (its launch pipe's read end,
    readable once its program runs, or at end of file once the tracer gave up)."""

    proc: subprocess.Popen
    exited: int
    launched: int

    def close_launched(self) -> None:
        fd, self.launched = self.launched, -1
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        self.close_launched()
        fd, self.exited = self.exited, -1
        if fd >= 0:
            os.close(fd)


def _start(args: list[str], log_path: str, stdin) -> _Started:
    launched, tell = os.pipe()
    try:
        log = open(log_path, "wb")
        try:
            # Own session: a terminal's Ctrl-C reaches minify only, which then cleans up.
            proc = subprocess.Popen(
                [sys.executable, "-m", "minifier.sensor.tracer", LAUNCH_FD, str(tell), *args],
                stdin=stdin, stdout=log, stderr=log, start_new_session=True,
                pass_fds=(tell,))
        finally:
            log.close()
    except BaseException:
        os.close(launched)
        raise
    finally:
        os.close(tell)
    os.set_blocking(launched, False)
    # Before anything could reap it: the pidfd is this very process, never a reused pid.
    return _Started(proc, os.pidfd_open(proc.pid), launched)


def _said(fd: int) -> bool:
    """Whether the tracer wrote on its launch pipe (False: it closed it, or not yet)."""
    try:
        return bool(os.read(fd, 64))
    except BlockingIOError:
        return False


def _readable(fds: list[int], timeout: Optional[float]) -> bool:
    """Whether one of `fds` became readable within `timeout` s (None: no bound)."""
    return bool(select.select(fds, [], [], timeout)[0])


class SpareTracer:
    """A tracer process started ahead of need: its interpreter starts and imports while
    the container starts (or the app runs), so a launch costs only the launch. Used at
    most once; `discard()` ends one that was not (it also ends by itself with minify)."""

    def __init__(self, workdir: str, label: str) -> None:
        self._started: Optional[_Started] = _start(
            [SPARE], os.path.join(workdir, f"tracer-spare-{label}.log"), subprocess.PIPE)

    @property
    def pid(self) -> Optional[int]:
        """The waiting process; None once taken or discarded."""
        return self._started.proc.pid if self._started is not None else None

    def take(self, spec_path: str, result_path: str, log_path: str) -> Optional[_Started]:
        """The process, now tracing with these files; None when it is gone."""
        started, self._started = self._started, None
        if started is None:
            return None
        proc = started.proc
        if proc.poll() is not None:  # it died waiting (its log says why)
            proc.stdin.close()
            started.close()
            return None
        try:
            proc.stdin.write(json.dumps([spec_path, result_path, log_path]).encode() + b"\n")
            proc.stdin.close()
        except OSError:  # it died just now
            proc.kill()
            proc.wait()
            started.close()
            return None
        return started

    def discard(self) -> None:
        started, self._started = self._started, None
        if started is not None:
            started.proc.kill()
            started.proc.wait()
            started.proc.stdin.close()
            started.close()


class TracerProcess:
    """One traced program (the app, an exec probe, a health command) in its tracer process.

    `label` names its files in `workdir`: LABEL.spec.json, LABEL.trace.json (and its .pid),
    tracer-LABEL.log. `within` bounds the launch and each step of the stop. How long the
    trace may run by itself before it is stopped is the caller's choice (`wait`).
    """

    name = "ptrace"
    degraded = None  # nothing is recorded without it: a run cannot go on

    def __init__(self, spec: LaunchSpec, workdir: str, label: str, within: float,
                 spare: Optional[SpareTracer] = None) -> None:
        self.spec = spec
        self._spare = spare
        self.label = label
        self._within = within
        self._spec_path = os.path.join(workdir, f"{label}.spec.json")
        self._result_path = os.path.join(workdir, f"{label}.trace.json")
        self._log_path = os.path.join(workdir, f"tracer-{label}.log")
        self._started: Optional[_Started] = None
        self._proc: Optional[subprocess.Popen] = None
        self._result: Optional[TraceResult] = None
        self._pidfd: Optional[int] = None  # the launched program, whatever its pid becomes

    def start(self) -> None:
        """Start the tracer and return once its program runs (its first exec is done),
        or could not start (launch_error() says why), or the tracer gave up.
        A confinement it could not reproduce is a CapabilityError: nothing of the image
        runs freer than under `docker run`."""
        with open(self._spec_path, "w") as f:
            json.dump(spec_to_json(self.spec), f)
        spare, self._spare = self._spare, None
        with signals_deferred():  # a tracer started is a tracer known, to be stopped
            started = spare.take(self._spec_path, self._result_path, self._log_path) \
                if spare is not None else None
            if started is None:
                started = _start([self._spec_path, self._result_path], self._log_path,
                                 subprocess.DEVNULL)
            self._started, self._proc = started, started.proc
        self._await_launch()

    def _await_launch(self) -> None:
        started = self._started
        if _readable([started.launched, started.exited], self._within) \
                and not _said(started.launched):
            # The pipe ended without a pid: the tracer gave up and is exiting (a process's
            # files close before it can be reaped); its result says why.
            _readable([started.exited], self._within)
        started.close_launched()
        pid = self.pid
        if pid is not None and self.alive():
            # Held from its launch on: once it has ended and its tracer reaped it, its
            # pid may be given to another process of the host, never to be signalled.
            with contextlib.suppress(OSError):
                self._pidfd = os.pidfd_open(pid)
        if self._proc.poll() == CONFINEMENT_FAILED:
            result = self.read_result()
            reason = result.warnings[0] if result and result.warnings else "no reason given"
            raise CapabilityError(f"cannot confine {self.spec.argv[0]} like docker run "
                                  f"would: {reason}")

    @property
    def pid(self) -> Optional[int]:
        """The launched program's host pid, once it runs."""
        try:
            with open(self._result_path + ".pid") as f:
                return int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def tracer_pid(self) -> Optional[int]:
        """The tracer process itself, once started."""
        return self._proc.pid if self._proc is not None else None

    def signal_program(self, signum: int) -> bool:
        """Send `signum` to the launched program (not to what it left running); whether
        it was still there to take it."""
        if self._pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, signum)
        except OSError:  # it has ended (ESRCH)
            return False
        return True

    def alive(self) -> bool:
        """The traced program, or something it left running, is still traced."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: Optional[float]) -> bool:
        """Until the trace has ended, at most `timeout` s (None: no bound); whether it has."""
        if self._proc is None:
            return True
        if self._proc.poll() is None and not _readable([self._started.exited], timeout):
            return False
        self._proc.wait()  # it has exited: this only reaps it
        self._close_fds()
        return True

    def _close_fds(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)
        if self._started is not None:
            self._started.close()

    def stop(self) -> None:
        """Ask the tracer to stop now (it kills its tracees and still writes its result),
        and kill it as a last resort; at once when the trace has already ended."""
        if not self.alive():
            self._close_fds()
            return
        for step in (self._proc.terminate, self._proc.kill):
            step()
            if self.wait(self._within):
                return
        self._proc.wait()
        self._close_fds()

    def launch_error(self) -> str:
        """Why the program could not start, once start() has returned ("": it runs, or
        ran)."""
        if self.alive():
            return ""
        result = self.read_result()
        return result.launch_error if result is not None else ""

    def read_result(self) -> Optional[TraceResult]:
        """The trace once the tracer has written it, else None."""
        if self._result is None:
            try:
                with open(self._result_path) as f:
                    self._result = result_from_json(json.load(f))
            except (OSError, ValueError):
                return None
        return self._result

    def result(self) -> TraceResult:
        """The trace; an error carrying the tracer's log when it wrote none."""
        result = self.read_result()
        if result is None:
            raise MinifyError("the tracer ended without a result", detail=tail(self._log_path))
        return result

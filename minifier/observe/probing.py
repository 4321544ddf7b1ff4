"""Exercise the traced app: readiness, HTTP probes, exec probes, then wait as asked.

This is the orchestration between the runner and the `probes` package: probes know
nothing of containers; they get a Target (127.0.0.1 and the published ports) and a
way to ask whether the app is still alive.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from typing import Optional

import probes
from minifier.errors import AppError, ProbeError, UsageError
from minifier.observe.runner import TracedContainer
from minifier.options import ProbeSetup
from minifier.procfs import listening_ports
from minifier.records import ImageInfo, Observation
from minifier.ui import Progress
from probes import ContinueAfter, Target

__all__ = ["probe_ports", "observe", "check_probes", "not_http_message"]

EXIT_GRACE = 2.0  # seconds for the tracer to report an exit after unanswered requests


def probe_ports(image: ImageInfo, setup: ProbeSetup, expose: tuple[str, ...]) -> tuple[int, ...]:
    """The container ports to probe; an error naming both fixes when there are none, and
    one naming the port when a probe command asks for a port the container does not
    publish (both before anything starts)."""
    if setup.http is None:
        return ()
    published = sorted({int(p.split("/")[0]) for p in (*image.exposed_ports, *expose)
                        if p.endswith("/tcp") or "/" not in p})
    for command in setup.http.commands:
        if command.port is not None and command.port not in published:
            raise UsageError(
                f"probe command {command.method} {command.resource} names port {command.port}, "
                f"which the container does not publish (published: "
                f"{', '.join(map(str, published)) or 'none'}): add --expose {command.port}")
    if setup.http.ports:
        return tuple(setup.http.ports)
    if not published:
        raise UsageError(f"image {image.ref} exposes no TCP port to probe: pass --expose PORT "
                         "or --http-probe-ports PORT (or --no-http-probe with --exec)")
    return tuple(published)


def not_http_message(port: int) -> str:
    return (f"port {port} accepts connections but does not speak HTTP: probe it with "
            "--exec '<client command>'")


def observe(tc: TracedContainer, ports: tuple[int, ...], setup: ProbeSetup,
            ui: Progress) -> Observation:
    summary, target, ready, warnings = None, None, (), []
    if setup.http is not None:
        ready = _wait_ready(tc, ports, setup, ui)
        http_ports = tuple(r.port for r in ready if r.speaks_http)
        for info in ready:
            if not info.speaks_http:
                warnings.append(not_http_message(info.port))
                ui.warn(warnings[-1])
        if http_ports:
            target = Target(host="127.0.0.1", ports={p: tc.ports[p] for p in http_ports})
            ui.stage("probe", "probing over HTTP")
            summary = probes.run(target, setup.http,
                                 on_request=lambda r: ui.info(_request_line(r)))
    alive = _outlived_probing(tc, summary)
    execs = []
    for argv in setup.execs:
        ui.stage("exec", f"exec probe: {' '.join(argv)}")
        outcome = tc.run_exec(argv, setup.exec_timeout)
        ui.info(f"exit code {outcome.exit_code}")
        execs.append(outcome)
    _continue_after(tc, setup.continue_after, ui)
    return Observation(http=summary, execs=tuple(execs), target=target,
                       app_alive_after_probes=alive, ports=tuple(ready),
                       warnings=tuple(warnings))


def _outlived_probing(tc: TracedContainer, summary: Optional[probes.ProbeSummary]) -> bool:
    """Whether the app is still running after HTTP probing (before minify stops it).
    After requests that got no answer at all, the tracer gets a short, bounded moment to
    report an exit that is under way, so a crash on the last request is not missed."""
    proc = tc.app_process
    if summary is not None and summary.counts.get("error") and proc is not None:
        try:
            proc.wait(timeout=EXIT_GRACE)
        except subprocess.TimeoutExpired:
            pass  # still running: it did not crash
    return tc.app_alive()


def _wait_ready(tc: TracedContainer, ports: tuple[int, ...], setup: ProbeSetup,
                ui: Progress) -> tuple[probes.ReadyInfo, ...]:
    """Each port's first HTTP(S) answer, or its refusal of HTTP (read from the kernel's
    socket table of the container's network namespace, so said at once)."""
    ui.stage("ready", f"waiting for the app on port(s) {', '.join(map(str, ports))}")
    try:
        ready = probes.wait_ready(Target(host="127.0.0.1", ports={p: tc.ports[p] for p in ports}),
                                  ports, setup.http.start_wait, tc.app_alive,
                                  listening=lambda: listening_ports(tc.pid1))
    except probes.AppExitedError as exc:
        raise AppError(f"the app exited before it was ready: {exc}",
                       detail=_tail(tc.app_output_tail())) from exc
    except probes.NotReadyError as exc:
        hint = ("hint: if the app listens on another port, pass --http-probe-ports PORT; "
                "if it starts slowly, a longer --http-probe-start-wait")
        raise AppError(str(exc), detail=f"{_tail(tc.app_output_tail())}\n{hint}") from exc
    refused = [r.port for r in ready if not r.speaks_http]
    asked = set(setup.http.ports) | {c.port for c in setup.http.commands if c.port}
    # A port the user named for HTTP, or no HTTP port at all and nothing else to probe
    # with, leaves nothing true to build from: say so now.
    if refused and (asked & set(refused) or (len(refused) == len(ready) and not setup.execs)):
        port = sorted(asked & set(refused) or refused)[0]
        extra = "" if asked & set(refused) else " (and --no-http-probe)"
        raise ProbeError(not_http_message(port) + extra)
    return ready


def check_probes(obs: Observation, setup: ProbeSetup, app_output: str = "",
                 app_exit: Optional[int] = None) -> None:
    """Fail the build on dishonest success: 5xx answers or nothing that succeeded.

    What failed is said first; that the app crashed is added only when it is true: when
    it was already gone right after probing (`app_alive_after_probes`), before minify
    sent its own stop signal. `app_exit` (the launched program's status) then is the
    app's own exit, not minify's SIGTERM or SIGKILL.
    """
    if obs.http is not None and obs.http.failure:
        crashed = ""
        if not obs.app_alive_after_probes:
            crashed = f"; the app exited by itself during probing ({_exit_text(app_exit)})"
        raise ProbeError(f"HTTP probing failed: {obs.http.failure}{crashed}",
                         detail=_tail(app_output) if crashed else "")
    for e in obs.execs:
        if e.exit_code is None:
            raise ProbeError(f"exec probe {' '.join(e.argv)!r} did not finish")


def _exit_text(status: Optional[int]) -> str:
    if status is None:
        return "exit status unknown"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _tail(output: str, lines: int = 15) -> str:
    return "last lines of the app's output:\n" + "\n".join(
        f"  {line}" for line in output.splitlines()[-lines:])


def _request_line(r) -> str:
    status = r.status if r.status is not None else f"error: {r.error}"
    return f"{r.method} {r.path} (port {r.port}) -> {status}"


def _continue_after(tc: TracedContainer, mode: ContinueAfter, ui: Progress) -> None:
    if mode.mode in ("probe", "exec"):
        return
    if mode.mode == "timeout":
        ui.stage("wait", f"observing for {mode.seconds:g} s more")
        _wait_app_exit(tc, mode.seconds)
    elif mode.mode == "signal":
        ui.stage("wait", "observing until SIGUSR1")
        _wait_signal(tc)
    elif mode.mode == "enter":
        ui.stage("wait", "observing until Enter is pressed")
        sys.stdin.readline()


def _wait_app_exit(tc: TracedContainer, seconds: Optional[float]) -> None:
    proc = tc.app_process
    if proc is not None:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass  # the app keeps running: observation ends here


def _wait_signal(tc: TracedContainer) -> None:
    """Until SIGUSR1 arrives (or the app ends). The handler only writes to a pipe: an
    Event.set() there could deadlock on the lock that Event.wait() holds when the
    signal interrupts it in the same thread."""
    r, w = os.pipe()
    previous = signal.signal(signal.SIGUSR1, lambda *_: os.write(w, b"x"))
    try:
        while not select.select([r], [], [], 0.5)[0]:
            if not tc.app_alive():
                return
    finally:
        signal.signal(signal.SIGUSR1, previous)
        os.close(r)
        os.close(w)

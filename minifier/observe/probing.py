"""Exercise the traced app: readiness, the image's HEALTHCHECK, HTTP probes, exec probes,
then wait as asked.

This is the orchestration between the runner and the `probes` package: probes know
nothing of containers; they get a Target (127.0.0.1 and the published ports) and a
way to ask whether the app is still alive. Without HTTP probing, readiness is the app
listening on every exposed TCP port, read from the kernel's socket table of the
container's network namespace.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import Optional, Sequence

import probes
from minifier.errors import AppError, ProbeError, UsageError
from minifier.observe.appspec import exposed_tcp_ports
from minifier.observe.runner import TracedContainer
from minifier.options import ProbeSetup
from minifier.procfs import listening_ports, listening_sockets, loopback_only
from minifier.records import ExecOutcome, HealthOutcome, HealthSpec, ImageInfo, Observation
from minifier.ui import Progress
from probes import ContinueAfter, ProbeSummary, Target

__all__ = ["http_probe_ports", "observe", "run_execs", "check_probes", "probe_failed",
           "not_http_message", "default_continue_after", "no_port_note", "loopback_message"]

EXIT_GRACE = 2.0  # seconds for the tracer to report an exit after unanswered requests
POLL = 0.1  # seconds between looks at the socket table while waiting for a port
RETRY = 0.5  # seconds between runs of a first exec probe that does not pass yet


def http_probe_ports(image: ImageInfo, setup: ProbeSetup,
                     expose: tuple[str, ...]) -> tuple[int, ...]:
    """The container ports to probe, decided before anything starts. None at all: HTTP
    probing is skipped (as docker-slim does: a one-shot command or a worker has no port),
    unless it was asked for by name, which is an error naming both fixes. A probe
    command naming a port the container does not publish is an error naming the port."""
    if setup.http is None:
        return ()
    published = exposed_tcp_ports(image, expose)
    for command in setup.http.commands:
        if command.port is not None and command.port not in published:
            raise UsageError(
                f"probe command {command.method} {command.resource} names port {command.port}, "
                f"which the container does not publish (published: "
                f"{', '.join(map(str, published)) or 'none'}): add --expose {command.port}")
    if setup.http.ports:
        return tuple(setup.http.ports)
    if not published and setup.http_asked:
        raise UsageError(f"image {image.ref} exposes no TCP port to probe: pass --expose PORT "
                         "or --http-probe-ports PORT (or --no-http-probe with --exec)")
    return tuple(published)


def no_port_note(image: ImageInfo) -> str:
    return (f"HTTP probing skipped: image {image.ref} exposes no TCP port "
            "(--expose PORT or --http-probe-ports PORT probes one)")


def default_continue_after(http: bool, execs: Sequence[tuple[str, ...]]) -> ContinueAfter:
    """When observation ends unless --continue-after says: after the HTTP probes; after
    the exec probes when there are only those; else 60 s, or the app's own exit."""
    if http:
        return ContinueAfter("probe", None)
    return ContinueAfter("exec", None) if execs else ContinueAfter("timeout", 60.0)


def not_http_message(port: int, execs: bool = False) -> str:
    """`execs`: exec probes were given, so the advice to add one would be no news."""
    if execs:
        return f"port {port} accepts connections but does not speak HTTP: not probed over HTTP"
    return (f"port {port} accepts connections but does not speak HTTP: probe it with "
            "--exec '<client command>'")


def loopback_message(port: int, addresses: Sequence[str]) -> str:
    """The truth about a port the app listens on only inside the container."""
    bound = " and ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses)
    return (f"port {port}: the app listens on {bound or f'127.0.0.1:{port}'} only, inside "
            "the container: a published port cannot reach it; make the app listen on "
            "0.0.0.0 (every address), or probe it with --exec '<client command>'")


def _refusal_message(info: probes.ReadyInfo, pid: int, execs: bool = False) -> str:
    """Why a probe port cannot be probed over HTTP."""
    if info.protocol == probes.LOOPBACK_ONLY:
        return loopback_message(info.port,
                                loopback_only(listening_sockets(pid)).get(info.port, ()))
    return not_http_message(info.port, execs)


def observe(tc: TracedContainer, ports: tuple[int, ...], setup: ProbeSetup,
            ui: Progress, *, listen: tuple[int, ...] = (),
            health: Optional[HealthSpec] = None, notes: tuple[str, ...] = ()) -> Observation:
    """`ports`: the HTTP probe ports (none: no HTTP probing, also when it is on but the
    image exposes no port); `listen`: the exposed TCP ports that make the app ready when
    there is no HTTP probe; `health`: the image's HEALTHCHECK, if any; `notes`: how
    probing was decided, for the report.

    Order: readiness, the health command, HTTP probes, exec probes, then --continue-after.
    """
    summary, target, ready, warnings = None, None, (), []
    for note in notes:
        ui.info(note)
    if setup.http is not None and ports:
        ready = _wait_ready(tc, ports, setup, ui)
        warnings = _readiness_warnings(ready, setup.http.start_wait, tc.pid1, ui,
                                       execs=bool(setup.execs))
    elif listen:
        _wait_listening(tc, listen, setup.start_wait, ui)
    health_outcome = _healthcheck(tc, health, setup.healthcheck, ui)
    http_ports = tuple(r.port for r in ready if r.speaks_http)
    if http_ports:
        target = Target(host="127.0.0.1", ports={p: tc.ports[p] for p in http_ports})
        ui.stage("probe", "probing over HTTP")
        summary = probes.run(target, setup.http,
                             on_request=lambda r: ui.info(_request_line(r)))
    alive = _outlived_probing(tc, summary)
    execs = run_execs(tc, setup, ui)
    _continue_after(tc, setup.continue_after or default_continue_after(
        bool(ports) and setup.http is not None, setup.execs), ui)
    return Observation(http=summary, execs=execs, target=target,
                       app_alive_after_probes=alive, ports=tuple(ready),
                       warnings=tuple(warnings), health=health_outcome, notes=notes)


def run_execs(tc: TracedContainer, setup: ProbeSetup, ui: Progress) -> tuple[ExecOutcome, ...]:
    """Run the exec probes in order; the first waits for the app to serve (_first_exec)."""
    execs = []
    for i, argv in enumerate(setup.execs):
        ui.stage("exec", f"exec probe: {' '.join(argv)}")
        outcome = _first_exec(tc, argv, setup, ui) if i == 0 else \
            tc.run_exec(argv, setup.exec_timeout)
        ui.info(f"exit code {outcome.exit_code}")
        execs.append(outcome)
    return tuple(execs)


def _readiness_warnings(ready: Sequence[probes.ReadyInfo], start_wait: float, pid: int,
                        ui: Progress, execs: bool = False) -> list[str]:
    """Ports probed although readiness did not end well: one that cannot be probed over
    HTTP (it speaks none, or listens out of reach), and one that said "not yet" (a 502,
    503 or 504) until the start wait ran out. `execs`: exec probes were given."""
    warnings = [_refusal_message(info, pid, execs) for info in ready if not info.speaks_http]
    warnings += [f"port {info.port} answered GET / with {info.status} until the start wait "
                 f"({start_wait:g} s) ran out: probing it as it is (if the app starts slowly, "
                 "a longer --http-probe-start-wait)"
                 for info in ready if info.status in probes.NOT_READY_STATUSES]
    for w in warnings:
        ui.warn(w)
    return warnings


def _outlived_probing(tc: TracedContainer, summary: Optional[probes.ProbeSummary]) -> bool:
    """Whether the app is still running after HTTP probing (before minify stops it).
    After requests that got no answer at all, the tracer gets a short, bounded moment to
    report an exit that is under way, so a crash on the last request is not missed."""
    if summary is not None and summary.counts.get("error"):
        tc.wait_app(EXIT_GRACE)  # still running after it: it did not crash
    return tc.app_alive()


def _wait_ready(tc: TracedContainer, ports: tuple[int, ...], setup: ProbeSetup,
                ui: Progress) -> tuple[probes.ReadyInfo, ...]:
    """Each port's first HTTP(S) answer, or its refusal of HTTP (read from the kernel's
    socket table of the container's network namespace, so said at once)."""
    ui.stage("ready", f"waiting for the app on port(s) {', '.join(map(str, ports))}")
    try:
        ready = probes.wait_ready(Target(host="127.0.0.1", ports={p: tc.ports[p] for p in ports}),
                                  ports, setup.http.start_wait, tc.app_alive,
                                  listening=lambda: listening_ports(tc.pid1),
                                  loopback_only=lambda: loopback_only(
                                      listening_sockets(tc.pid1)))
    except probes.AppExitedError as exc:
        raise AppError(f"the app exited before it was ready: {exc}",
                       detail=_titled(tc.app_output_tail())) from exc
    except probes.NotReadyError as exc:
        hint = ("hint: if the app listens on another port, pass --http-probe-ports PORT; "
                "if it starts slowly, a longer --http-probe-start-wait")
        raise AppError(str(exc), detail=f"{_titled(tc.app_output_tail())}\n{hint}") from exc
    refused = [r.port for r in ready if not r.speaks_http]
    asked = set(setup.http.ports) | {c.port for c in setup.http.commands if c.port}
    # A port the user named for HTTP, or no HTTP port at all and nothing else to probe
    # with, leaves nothing true to build from: say so now.
    if refused and (asked & set(refused) or (len(refused) == len(ready) and not setup.execs)):
        port = sorted(asked & set(refused) or refused)[0]
        extra = "" if asked & set(refused) else " (and --no-http-probe)"
        info = next(r for r in ready if r.port == port)
        raise ProbeError(_refusal_message(info, tc.pid1) + extra)
    return ready


def _wait_listening(tc: TracedContainer, ports: Sequence[int], timeout: float,
                    ui: Progress) -> None:
    """Until the app listens on every port (a connect through Docker's proxy proves
    nothing, the container's own socket table does), bounded; the app's exit ends it."""
    ui.stage("ready", f"waiting for the app to listen on port(s) {_ports(ports)}")
    start = time.monotonic()
    while True:
        missing = [p for p in ports if p not in tc.listening_ports()]
        if not missing:
            return
        elapsed = time.monotonic() - start
        if not tc.app_alive():
            raise AppError(f"the app exited after {elapsed:.1f} s, before listening on "
                           f"port(s) {_ports(missing)}", detail=_titled(tc.app_output_tail()))
        if elapsed >= timeout:
            hint = (f"hint: the image exposes port(s) {_ports(missing)}; if the app starts "
                    "slowly, a longer --start-wait")
            raise AppError(f"the app did not listen on port(s) {_ports(missing)} within "
                           f"{timeout:g} s", detail=f"{_titled(tc.app_output_tail())}\n{hint}")
        tc.wait_app(min(POLL, timeout - elapsed))


def _first_exec(tc: TracedContainer, argv: tuple[str, ...], setup: ProbeSetup,
                ui: Progress) -> ExecOutcome:
    """The first exec probe also waits for the app to serve: a server may listen before
    it answers (PostgreSQL says "the database system is starting up" for a moment), so
    while it fails and the app runs, it is run again every RETRY s, within --start-wait."""
    deadline = time.monotonic() + setup.start_wait
    while True:
        outcome = tc.run_exec(argv, setup.exec_timeout)
        if outcome.exit_code == 0 or setup.exec_allow_fail or not tc.app_alive() \
                or time.monotonic() + RETRY > deadline:
            return outcome
        ui.info(f"exit code {outcome.exit_code}: the app may not serve yet, running it again")
        tc.wait_app(RETRY)


def _healthcheck(tc: TracedContainer, spec: Optional[HealthSpec], enabled: bool,
                 ui: Progress) -> Optional[HealthOutcome]:
    """Run the image's health command in the container, traced like the app, on Docker's
    interval until it passes once; failing for as long as Docker would take to call the
    container unhealthy fails the build (the original itself is not healthy)."""
    if spec is None:
        return None
    if not enabled:
        return HealthOutcome(spec=spec, status="skipped")
    ui.stage("health", f"running the image's HEALTHCHECK: {' '.join(spec.argv)}")
    deadline = time.monotonic() + spec.bound
    attempts, last = 0, None
    while tc.app_alive():
        last = tc.run_exec(spec.argv, spec.timeout)
        attempts += 1
        if last.exit_code == 0:
            return HealthOutcome(spec, "passed", attempts, 0, last.output)
        if time.monotonic() + spec.interval > deadline:
            raise AppError(
                f"the image's HEALTHCHECK did not pass within {spec.bound:g} s "
                f"({attempts} attempt(s), last {_probe_exit(last.exit_code)}): "
                "Docker would call the original unhealthy",
                detail=_titled(last.output, title="last lines of the health command's output")
                + "\nhint: --no-healthcheck skips the HEALTHCHECK")
        tc.wait_app(spec.interval)
    # The app ended by itself (a one-shot command): there is nothing left to check.
    return HealthOutcome(spec, "not-run", attempts, last.exit_code if last else None,
                         last.output if last else "")


def probe_failed(obs: Observation, setup: ProbeSetup) -> bool:
    """Whether check_probes() will fail the build."""
    if obs.http is not None and (obs.http.failure or not obs.app_alive_after_probes):
        return True
    return any(e.exit_code is None or (e.exit_code != 0 and not setup.exec_allow_fail)
               for e in obs.execs)


def check_probes(obs: Observation, setup: ProbeSetup, app_output: str = "",
                 app_exit: Optional[int] = None) -> None:
    """Fail the build on dishonest success: 5xx answers, nothing that succeeded, or a
    server that exited while it was probed.

    What failed is said first; that the app crashed is said only when it is true: when
    it was already gone right after probing (`app_alive_after_probes`), before minify
    sent its own stop signal. `app_exit` (the launched program's status) then is the
    app's own exit, not minify's SIGTERM or SIGKILL. A crash on a crawled page whose
    request alone would not fail the build still does: what the app would have run next
    was never seen.
    """
    if obs.http is not None and (obs.http.failure or not obs.app_alive_after_probes):
        crashed = "" if obs.app_alive_after_probes else \
            f"the app exited by itself during probing ({_exit_text(app_exit)})"
        why = "; ".join(p for p in (obs.http.failure, crashed) if p)
        raise ProbeError(f"HTTP probing failed: {why}",
                         detail=_titled(app_output) if crashed else _refused_hint(obs.http))
    for e in obs.execs:
        _check_exec(e, setup.exec_allow_fail)


def _refused_hint(http: ProbeSummary) -> str:
    """What to do when the app answered HTTP but refused every request (a 4xx each): an
    app with no page at the paths minify knows (an HTTP proxy answers 400 to a plain
    GET, an API may need credentials)."""
    if not http.requests or any(r.status is None or r.status_class not in ("4xx", "unsupported")
                                for r in http.requests):
        return ""
    return ("every request was answered with a 4xx: name a path the app serves with "
            "--http-probe-cmd (with a header it needs: --http-probe-cmd-file), or probe it "
            "another way with --exec '<client command>' and --no-http-probe")


def _check_exec(e: ExecOutcome, allow_fail: bool) -> None:
    """An exec probe must succeed: one that "ran" against a server that was not up, or
    whose command is wrong, proves nothing. --exec-allow-fail accepts non-zero exits."""
    command = " ".join(e.argv)
    if e.exit_code is None:
        raise ProbeError(f"exec probe {command!r} did not finish")
    if e.exit_code != 0 and not allow_fail:
        raise ProbeError(
            f"exec probe {command!r} {_probe_exit(e.exit_code)}",
            detail=_titled(e.output, title="last lines of its output") + "\nhint: "
            "--exec-allow-fail accepts exec probes that exit non-zero (verification then "
            "requires the same exit code)")


def _probe_exit(code: Optional[int]) -> str:
    if code is None:
        return "did not finish"
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def _ports(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports)


def _exit_text(status: Optional[int]) -> str:
    if status is None:
        return "exit status unknown"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _titled(output: str, lines: int = 15, title: str = "last lines of the app's output") -> str:
    """An error's detail: the output's last lines, indented under a title."""
    return f"{title}:\n" + "\n".join(f"  {line}" for line in output.splitlines()[-lines:])


def _request_line(r) -> str:
    status = r.status if r.status is not None else f"error: {r.error}"
    return f"{r.method} {r.path} (port {r.port}) -> {status}"


def _continue_after(tc: TracedContainer, mode: ContinueAfter, ui: Progress) -> None:
    if mode.mode in ("probe", "exec"):
        return
    if mode.mode == "timeout":
        if not tc.app_alive():
            ui.info("the app has ended by itself: nothing more to observe")
            return
        ui.stage("wait", f"observing for {mode.seconds:g} s more")
        tc.wait_app(mode.seconds)
    elif mode.mode == "signal":
        ui.stage("wait", "observing until SIGUSR1")
        _wait_signal(tc)
    elif mode.mode == "enter":
        ui.stage("wait", "observing until Enter is pressed")
        sys.stdin.readline()


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

"""Trace one restart of the app after probing, as `docker restart` would run it.

Code that runs only when a container starts again (an entrypoint that initialises its
data on the first start and compresses or migrates it on the next) is never run by a
single start, and verification restarts both images. So the app is restarted once,
traced: stopped like `docker stop`, started again in the same container (its writable
layer keeps what the first run wrote), waited for as on its first start (an HTTP answer
on every probe port, listening on the exposed ports, the HEALTHCHECK passing once, or a
one-shot command's end), sent the recorded HTTP requests and the exec probes again;
`TracedContainer.finish()` then stops it like the first run. Nothing is judged here:
what the restarted app answers is verification's business (it restarts the original
and the minified image itself); what does not go as on the first start is said as a
warning.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import probes
from minifier.observe.probing import probe_failed, run_execs
from minifier.observe.runner import Restarted, TracedContainer
from minifier.options import ProbeSetup
from minifier.records import AppLife, HealthSpec, Observation, RestartTrace
from minifier.ui import Progress
from probes import Target

__all__ = ["trace_restart"]

POLL = 0.1  # seconds between looks at the socket table while waiting for a port


def trace_restart(tc: TracedContainer, obs: Observation, setup: ProbeSetup, ui: Progress,
                  listen: Sequence[int] = ()) -> RestartTrace:
    """Restart the app observed as `obs` and exercise it again; `listen`: the exposed
    TCP ports, waited for without HTTP probing as on the first start."""
    if not setup.restart_trace:
        return RestartTrace("skipped", "--no-restart-trace")
    if probe_failed(obs, setup):
        return RestartTrace("skipped", "probing failed")  # the build fails on it anyway
    ui.stage("restart", "restarting the app under trace, as docker restart would")
    started = time.monotonic()
    one_shot = not tc.app_alive()
    restarted = tc.restart_app()
    first = restarted.life
    ui.info(f"{_first_run(restarted)}; started again")
    failed = tc.launch_error()
    note = f"it could not start again: {failed}" if failed else \
        _until_ended(tc, first, setup) if one_shot else _until_ready(tc, obs, setup, listen, ui)
    requests = execs = 0
    if not note:
        requests = _replay(tc, obs, ui)
        execs = len(run_execs(tc, setup, ui))
    if note:
        note = f"the traced restart did not go as the first start: {note}"
        ui.warn(note)
    return RestartTrace("traced", note, round(time.monotonic() - started, 3), requests, execs)


def _first_run(restarted: Restarted) -> str:
    first = restarted.life
    if first.one_shot:
        return f"its first run had ended by itself (exit code {first.exit_code})"
    if not restarted.stop:
        return f"its first run ended by itself after {first.ran_seconds:.1f} s"
    return f"after {first.ran_seconds:.1f} s of running, {restarted.stop}, as docker stop would"


def _until_ended(tc: TracedContainer, first: AppLife, setup: ProbeSetup) -> str:
    """A one-shot command: until it ends again, given as long as the first run took and
    the start wait; "" once it has."""
    bound = first.ran_seconds + setup.start_wait
    if tc.wait_app(bound):
        return ""
    return (f"the command was still running {bound:g} s after its restart (its first run "
            f"ended after {first.ran_seconds:g} s)")


def _until_ready(tc: TracedContainer, obs: Observation, setup: ProbeSetup,
                 listen: Sequence[int], ui: Progress) -> str:
    """A service: ready as on its first start; "" once it is, else what it did. A port
    that answered HTTP then must answer HTTP again; one that did not (not HTTP, or only on
    the container's loopback) must be listened on again: finding out once more what it
    does not speak would cost a TLS handshake's silence per round."""
    if obs.ports:
        deadline = time.monotonic() + setup.start_wait
        ports = tuple(r.port for r in obs.ports)
        web = tuple(r.port for r in obs.ports if r.speaks_http)
        other = tuple(p for p in ports if p not in web)
        ui.info(f"waiting for the app on port(s) {_ports(ports)}")
        try:
            if web:
                probes.wait_ready(Target(host="127.0.0.1", ports={p: tc.ports[p] for p in web}),
                                  web, setup.start_wait, tc.app_alive,
                                  listening=tc.listening_ports)
        except probes.AppExitedError as exc:
            return f"the app exited before it was ready: {exc}{_last_line(tc)}"
        except probes.NotReadyError as exc:
            return str(exc)
        missing = _until_listening(tc, other, max(0.0, deadline - time.monotonic()))
        if missing:
            return _not_listening(tc, missing, setup.start_wait)
    elif listen:
        ui.info(f"waiting for the app to listen on port(s) {_ports(listen)}")
        missing = _until_listening(tc, listen, setup.start_wait)
        if missing:
            return _not_listening(tc, missing, setup.start_wait)
    if obs.health is not None and obs.health.status == "passed":
        return _until_healthy(tc, obs.health.spec, ui)
    return ""


def _not_listening(tc: TracedContainer, missing: Sequence[int], bound: float) -> str:
    if not tc.app_alive():
        return f"the app exited before listening on port(s) {_ports(missing)}"
    return f"the app did not listen on port(s) {_ports(missing)} within {bound:g} s"


def _until_listening(tc: TracedContainer, ports: Sequence[int], timeout: float) -> list[int]:
    """The ports not listened on when the app ended or `timeout` passed ([]: all are)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [p for p in ports if p not in tc.listening_ports()]
        remaining = deadline - time.monotonic()
        if not missing or not tc.app_alive() or remaining <= 0:
            return missing
        tc.wait_app(min(POLL, remaining))


def _until_healthy(tc: TracedContainer, spec: HealthSpec, ui: Progress) -> str:
    """The image's health command passes once again (it did on the first start)."""
    ui.info(f"running the image's HEALTHCHECK: {' '.join(spec.argv)}")
    deadline = time.monotonic() + spec.bound
    while tc.app_alive():
        last = tc.run_exec(spec.argv, spec.timeout)
        if last.exit_code == 0:
            return ""
        if time.monotonic() + spec.interval > deadline:
            return (f"its HEALTHCHECK did not pass within {spec.bound:g} s (last exit code "
                    f"{last.exit_code})")
        tc.wait_app(spec.interval)
    return f"the app exited before its HEALTHCHECK passed{_last_line(tc)}"


def _replay(tc: TracedContainer, obs: Observation, ui: Progress) -> int:
    if obs.http is None or obs.target is None or not obs.http.requests:
        return 0
    requests = tuple(r for r in obs.http.requests if r.port in obs.target.ports)
    results = probes.replay(obs.target, requests)
    counts = ", ".join(f"{n} {k}" for k, n in probes.counts(results).items() if n)
    ui.info(f"sent the {len(results)} recorded HTTP request(s) again: {counts}")
    return len(results)


def _last_line(tc: TracedContainer) -> str:
    line: Optional[str] = next(iter(tc.app_output_tail(1).splitlines()), None)
    return f" (its last output: {line})" if line else ""


def _ports(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports)

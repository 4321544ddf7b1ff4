"""Prove the minified image behaves like the original: run both the way `docker run`
would, exercise them the way observation exercised the original, compare.

The original image is run first, untraced, with exactly the same script as the minified
one (exercise.py: first start, then `docker restart`): its answers, with those of the
traced run (another container, so another hostname and address), tell what is stable
between runs (an HTTP body, an exec probe's output, a command's output) and so compared
exactly, and which TCP ports it listens on in every run. The minified image must then:
start; answer HTTP, or listen on those ports, within the start wait; turn `healthy` when
the image has a HEALTHCHECK; answer every HTTP request and exec probe like the original;
still run after as long as the original ran while observed (a service) or exit with the
original's code and output (a one-shot command); and do all that again after a restart.
Whatever goes wrong on the way, an engine error or an HTTP timeout included, is a failed
verification with its reason, never an exception.

The original's run needs only what observation saw, so the build starts it in the
background (`OriginalRun`) as soon as the traced app has stopped: it overlaps indexing,
planning and rebuilding instead of adding to the verify stage. The minified image's run
then starts as soon as the image exists, alongside the original's when the two cannot
meet (no shared mount, network namespace or peer: `shares_with_original`). Until the
original's rounds have said which ports are stable, the minified app is waited for on
the ports the traced app listened on, less those a finished round of the original did
not listen on (`_StablePorts`); the verdict is the same as after a run one after the
other.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from types import TracebackType
from typing import Optional, Sequence

import docker
from docker.errors import DockerException
from requests import RequestException

from minifier.engine import Reaper, remove_ours, signals_deferred
from minifier.observe.appspec import docker_run_kwargs, exposed_tcp_ports
from minifier.options import BuildOptions
from minifier.output.exercise import Exercise, Round, Script, exercise
from minifier.output.hints import find_loader_errors
from minifier.records import (
    AppLife,
    BuildResult,
    ComparedExec,
    ComparedRequest,
    ExecOutcome,
    HealthVerdict,
    ImageInfo,
    LivenessVerdict,
    Mismatch,
    Observation,
    VerifyResult,
)
from minifier.ui import Progress
from probes import NOT_READY_STATUSES, RequestResult

__all__ = ["verify", "OriginalRun", "compare", "compare_execs", "shares_with_original",
           "stable_ports"]

AFTER_RESTART = " (after docker restart)"
ORIGINAL = "original"  # the label (minify.run) of the original's containers
ABANDON_WAIT = 10.0  # seconds an abandoned original run is given to end
# VerifyResult.original_run: the minified image ran alongside the original's run, or
# after it (a mount, network namespace or peer the two would share: shares_with_original).
ALONGSIDE, FIRST = "alongside", "first"


class OriginalRun:
    """The original image run untraced with verification's script, in a worker thread
    from `with` on. Leaving the block before the worker ended (a failed stage, Ctrl-C)
    takes its containers away, which ends every wait of the worker at once."""

    def __init__(self, client: docker.DockerClient, image: ImageInfo, obs: Observation,
                 opts: BuildOptions, reaper: Optional[Reaper] = None) -> None:
        self._client = client
        self._reaper = reaper
        self._image_id = image.id
        self._kwargs = _overrides(opts)
        life = obs.life or AppLife(ran_seconds=0.0, exit_code=None, listening=())
        self.script = _script(image, obs, opts, life)
        self._outcome: dict[str, object] = {}
        self._rounds: list[Round] = []  # as they end, for a minified run alongside
        # Not Thread.join(): a join cut short by a signal marks a live thread as ended.
        self._done = threading.Event()
        self._wanted = opts.output.verify
        self._started = False

    def __enter__(self) -> OriginalRun:
        if not self._wanted:
            return self
        try:
            # Held: a start cut short would leave the worker running outside the block.
            with signals_deferred():
                threading.Thread(target=self._run, name="minify-original",
                                 daemon=True).start()
                self._started = True
        except BaseException:  # the signal held through the start: abandon the run
            self.__exit__(None, None, None)
            raise
        return self

    def _run(self) -> None:
        try:
            self._outcome["exercise"] = exercise(self._client, self._image_id, self.script,
                                                 self._kwargs, purpose=ORIGINAL,
                                                 on_round=self._rounds.append,
                                                 reaper=self._reaper)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._outcome["error"] = exc
        finally:
            self._done.set()

    @property
    def started(self) -> bool:
        """Running in the background (not when verification is off)."""
        return self._started

    def rounds_so_far(self) -> tuple[Round, ...]:
        return tuple(self._rounds)

    def wait(self) -> None:
        """Until the run has ended, however it ended."""
        if self._started:
            self._done.wait()

    def result(self) -> Exercise:
        """The original's exercise (its engine or transport error raised here)."""
        if not self._started:
            self._run()
        self._done.wait()
        if "error" in self._outcome:
            raise self._outcome["error"]  # type: ignore[misc]
        return self._outcome["exercise"]  # type: ignore[return-value]

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if not self._started or self._done.is_set():
            return
        remove_ours(self._client, ORIGINAL)
        # Bounded: a worker stuck in the engine must not hold the exit; the removal is
        # repeated for a container whose create was answered meanwhile.
        self._done.wait(ABANDON_WAIT)
        remove_ours(self._client, ORIGINAL)


def verify(client: docker.DockerClient, image: ImageInfo, result: BuildResult,
           obs: Observation, opts: BuildOptions, ui: Progress,
           seccomp: Optional[str] = None,
           original_run: Optional[OriginalRun] = None,
           reaper: Optional[Reaper] = None) -> VerifyResult:
    """Compare the minified image with the original; `seccomp` (a profile's JSON text)
    makes the minified image run under that profile, proving the profile too.
    `original_run`: the original's run, started earlier (else it runs here, first).
    `reaper`: removes the minified image's container in the background once its run
    has ended."""
    if not opts.output.verify:
        return VerifyResult(status="skipped", reason="--no-verify")
    pending = original_run or OriginalRun(client, image, obs, opts)
    ui.info("the original image, run untraced (start, then docker restart)" +
            (": started in the background after observation" if pending.started else ""))
    order = ALONGSIDE if pending.started and not shares_with_original(opts) else FIRST
    verdict = _run_both(client, result, obs, opts, ui, seccomp, pending, order, reaper)
    for m in verdict.mismatches:
        ui.warn(f"verification: {m.text}")
    return replace(verdict, original_run=order)


def _run_both(client: docker.DockerClient, result: BuildResult, obs: Observation,
              opts: BuildOptions, ui: Progress, seccomp: Optional[str],
              pending: OriginalRun, order: str, reaper: Optional[Reaper]) -> VerifyResult:
    life = obs.life or AppLife(ran_seconds=0.0, exit_code=None, listening=())
    script = pending.script
    which = "original"
    try:
        if order == ALONGSIDE:
            which = "minified"
            ui.info("running the minified image alongside it (start, then docker restart)")
            # Published and first waited for: the traced run's ports (_StablePorts).
            minified = exercise(client, result.image_id,
                                _minified_script(script, life, life.listening),
                                _overrides(opts, seccomp), listen=_StablePorts(life, pending),
                                reaper=reaper)
            which = "original"
        original = pending.result()
        failed = [(n, _round_failure(r, script)) for n, r in enumerate(original.rounds, 1)
                  if _round_failure(r, script)]
        if failed:
            return _original_failed(failed[0], original)
        if order == FIRST:
            which = "minified"
            ui.info("running the minified image (start, then docker restart)")
            minified = exercise(client, result.image_id,
                                _minified_script(script, life, stable_ports(life, original)),
                                _overrides(opts, seccomp), reaper=reaper)
    except (DockerException, RequestException, OSError) as exc:
        return _broken(which, exc)
    return judge(obs, script, original, minified)


def _script(image: ImageInfo, obs: Observation, opts: BuildOptions, life: AppLife) -> Script:
    """The original's script: readiness as in observation (an HTTP answer on the probed
    ports, or listening on every exposed TCP port), then Docker's `healthy` when
    observation saw the HEALTHCHECK pass, before anything is replayed: an app behind a
    proxy may answer 502 until then."""
    recorded = obs.http.requests if obs.http else ()
    exposed = exposed_tcp_ports(image, opts.run.expose)
    http_ports = tuple(sorted(obs.target.ports)) if obs.target and recorded else ()
    health = obs.health
    return Script(
        requests=tuple(recorded), http_ports=http_ports,
        listen=() if recorded or life.one_shot else exposed,
        not_ready=_not_ready(obs, http_ports),
        execs=tuple(e.argv for e in obs.execs),
        first_exec_code=obs.execs[0].exit_code if obs.execs else None,
        one_shot=life.one_shot, run_seconds=life.ran_seconds if life.one_shot else 0.0,
        health=health is not None and health.status == "passed" and not life.one_shot,
        health_bound=health.spec.bound if health is not None else 0.0,
        start_wait=opts.probe.start_wait, exec_timeout=opts.probe.exec_timeout,
        stop_grace=opts.run.stop_grace)


def _not_ready(obs: Observation, http_ports: Sequence[int]) -> tuple[int, ...]:
    """The statuses readiness waits past (502, 503, 504), as in observation; none when a
    probed port never answered otherwise while observed: waiting for it again, in every
    round, would only cost the whole start wait each time."""
    stuck = any(r.status in NOT_READY_STATUSES for r in obs.ports if r.port in http_ports)
    return () if stuck else NOT_READY_STATUSES


def _minified_script(script: Script, life: AppLife, ports: Sequence[int]) -> Script:
    """The minified image gets the same script, plus: listen on `ports` (a service), run
    as long as the app ran while observed."""
    return replace(script, listen=() if life.one_shot else tuple(ports),
                   run_seconds=life.ran_seconds)


def shares_with_original(opts: BuildOptions) -> bool:
    """Whether two containers of the user's options could meet, so the minified image must
    not run while the original runs: a mount both would write to (a database's data and
    its lock, a cache), a network namespace both would listen in (host, container:), or
    a peer both would talk to at once (--link, a user network: an app that migrates its
    database at start must not race its twin)."""
    c = opts.run.container
    network = c.network or "bridge"
    # A tmpfs or an anonymous volume is each container's own.
    shared = [m for m in c.mounts if m.kind == "bind" or (m.kind == "volume" and m.source)]
    return bool(shared or c.links) or network not in ("bridge", "default", "none")


class _StablePorts:
    """The ports the minified app is waited for while the original's run goes on: those
    the traced app listened on, less any a finished round of the original did not listen
    on; settled (stable_ports) once the original's run has ended."""

    def __init__(self, life: AppLife, original: OriginalRun) -> None:
        self._life = life
        self._original = original

    def now(self) -> frozenset[int]:
        return frozenset(_common_ports(self._life, self._original.rounds_so_far()))

    def settled(self) -> frozenset[int]:
        self._original.wait()
        return self.now()


def stable_ports(life: AppLife, original: Exercise) -> tuple[int, ...]:
    """TCP ports the original listened on while observed and in each untraced round:
    a port picked at random (an ephemeral one) differs between runs and is not asked for."""
    return tuple(sorted(_common_ports(life, original.rounds)))


def _common_ports(life: AppLife, rounds: Sequence[Round]) -> set[int]:
    ports = set(life.listening)
    for r in rounds:
        ports &= set(r.listening)
    return ports


def _overrides(opts: BuildOptions, seccomp: Optional[str] = None) -> dict:
    """`docker run` as the user asked for the traced run (appspec.docker_run_kwargs; a
    generated seccomp profile replaces theirs), with the HEALTHCHECK off under
    --no-healthcheck: the one place that says how verification's containers are made."""
    kwargs = docker_run_kwargs(opts.run, seccomp=seccomp)
    if not opts.probe.healthcheck:
        kwargs["healthcheck"] = {"test": ["NONE"]}
    return kwargs


# -- judging -------------------------------------------------------------------------


def judge(obs: Observation, script: Script, original: Exercise,
          minified: Exercise) -> VerifyResult:
    """Every comparison of the minified run with the original's, as one verdict."""
    life = obs.life or AppLife(ran_seconds=0.0, exit_code=None, listening=())
    mismatches: list[Mismatch] = []
    liveness = _liveness(life, original, minified, mismatches)
    health = _health(obs, minified, mismatches, life)
    requests = compare(script.requests, [r.requests for r in original.rounds],
                       [r.requests for r in minified.rounds])
    mismatches += [Mismatch("request", _request_text(r), request=r) for r in requests
                   if not r.ok]
    execs = compare_execs(obs.execs, original, minified)
    mismatches += [Mismatch("exec", _exec_text(e), exec=e) for e in execs if not e.ok]
    mismatches += [Mismatch("log", line) for line in find_loader_errors(minified.logs,
                                                                        original.logs)]
    failed = bool(mismatches)
    return VerifyResult(
        status="failed" if failed else "passed",
        reason=mismatches[0].text if failed else "",
        requests=requests, execs=execs, mismatches=tuple(mismatches), health=health,
        liveness=liveness,
        minified_output=tuple(minified.logs.splitlines()[-20:]) if failed else ())


def _liveness(life: AppLife, original: Exercise, minified: Exercise,
              out: list[Mismatch]) -> LivenessVerdict:
    before = len(out)
    for n, r in enumerate(minified.rounds, 1):
        if r.failure:
            what = "command" if life.one_shot else "app"
            out.append(Mismatch("liveness", f"the minified {what} {r.failure}{_when(n)}"))
    if life.one_shot:
        verdict = _one_shot(life, original, minified, out)
    else:
        ports = stable_ports(life, original)
        for n, r in enumerate(minified.rounds, 1):
            missing = sorted(set(ports) - set(r.listening))
            if missing and not r.failure:
                out.append(Mismatch("liveness", "the minified app does not listen on port(s) "
                                    f"{_list(missing)} (the original does){_when(n)}"))
        verdict = LivenessVerdict(
            shape="service", ok=True, required_seconds=life.ran_seconds, ports=ports,
            minified_ports=minified.rounds[0].listening)
    return replace(verdict, ok=len(out) == before, restarted=len(minified.rounds) > 1)


def _one_shot(life: AppLife, original: Exercise, minified: Exercise,
              out: list[Mismatch]) -> LivenessVerdict:
    """A command that ends by itself: same exit code in each round, and the same stdout
    when the original printed the same in all of its runs (traced and untraced)."""
    stable = _same(life.output, *(r.output for r in original.rounds))
    for n, (o, m) in enumerate(zip(original.rounds, minified.rounds), 1):
        if m.failure:
            continue
        if m.exit_code != o.exit_code:
            out.append(Mismatch("exit", f"the minified command exited with code {m.exit_code}, "
                                f"the original with {o.exit_code}{_when(n)}"))
        elif stable and m.stdout != o.stdout:
            out.append(Mismatch("exit", "the minified command printed other output than the "
                                f"original: {_first_difference(o.stdout, m.stdout)}{_when(n)}"))
    return LivenessVerdict(
        shape="one-shot", ok=True, original_exit_code=original.rounds[0].exit_code,
        minified_exit_code=minified.rounds[0].exit_code,
        compared="exit code+stdout" if stable else "exit code")


def _health(obs: Observation, minified: Exercise, out: list[Mismatch],
            life: AppLife) -> HealthVerdict:
    health = obs.health
    if health is None:
        return HealthVerdict(status="none", reason="the image has no HEALTHCHECK")
    test = health.spec.argv
    if health.status == "skipped":
        return HealthVerdict(status="skipped", reason="--no-healthcheck", test=test)
    if life.one_shot or health.status != "passed":
        return HealthVerdict(status="not-applicable", test=test,
                             reason="the app ends by itself (a one-shot command)")
    states = [(n, r.health) for n, r in enumerate(minified.rounds, 1) if r.health is not None]
    bad = [(n, s) for n, s in states if s.status != "healthy"]
    for n, s in bad:
        out.append(Mismatch("health", "the minified container "
                            f"{_health_text(s, health.spec.bound)}{_when(n)}"))
    if not states:
        return HealthVerdict(status="failed", test=test,
                             reason="the minified app did not get as far as its HEALTHCHECK")
    first = bad[0][1] if bad else states[0][1]
    return HealthVerdict(status="failed" if bad else "passed", test=test,
                         reason=out[-1].text if bad else "", seconds=states[0][1].seconds,
                         output=first.output if bad else "")


def _round_failure(r: Round, script: Script) -> str:
    """Why a round of the original cannot be compared with: it failed, or it did not turn
    healthy (Docker's verdict on its own HEALTHCHECK)."""
    if r.failure or r.health is None or r.health.status == "healthy":
        return r.failure
    return _health_text(r.health, script.health_bound)


def _health_text(state, bound: float) -> str:
    """What Docker made of a container's HEALTHCHECK, said of the container."""
    output = f": {_one_line(state.output)}" if state.output else ""
    if state.status == "unhealthy":
        return f"turned unhealthy{output}"
    if state.status == "stopped":
        return "stopped before Docker called it healthy"
    return f"did not turn healthy within {bound:g} s{output}"


def compare(recorded: Sequence[RequestResult],
            original_rounds: Sequence[Sequence[RequestResult]],
            minified_rounds: Sequence[Sequence[RequestResult]]) -> tuple[ComparedRequest, ...]:
    """Per round and request. When the original's answers (traced, and each untraced
    round) all agree, the minified must give that answer: status and body. When they
    disagree (a clock or a random id in the body, state an earlier request changed, an
    upstream that was not up yet), the minified passes with the status the original gave
    in the same round, or with a success (2xx, 3xx) that the original also gave in one of
    its runs or that the original's same round failed to give (a 5xx or no answer): the
    minified image is not blamed for the original's own failure."""
    rows = []
    for n, minified in enumerate(minified_rounds, 1):
        same_round = original_rounds[n - 1] if n <= len(original_rounds) else recorded
        for i, (rec, m) in enumerate(zip(recorded, minified)):
            runs = [rec, *(r[i] for r in original_rounds if i < len(r))]
            nondet = len({(o.status, o.sha256) for o in runs}) > 1
            o = same_round[i] if i < len(same_round) else rec
            if nondet:
                ok = m.status == o.status or m.succeeded and (
                    m.status in {r.status for r in runs} or _failed(o))
            else:
                ok = (m.status, m.sha256) == (o.status, o.sha256)
            rows.append(ComparedRequest(
                round=n, method=rec.method, path=rec.path, port=rec.port,
                compared="status" if nondet else "status+body", original_status=o.status,
                minified_status=m.status, nondeterministic=nondet, ok=ok,
                minified_error=None if ok else m.error))
    return tuple(rows)


def _failed(answer: RequestResult) -> bool:
    """No answer, or a server error: what an app that works never gives."""
    return answer.status is None or answer.status >= 500


def compare_execs(observed: Sequence[ExecOutcome], original: Exercise,
                  minified: Exercise) -> tuple[ComparedExec, ...]:
    """Per round and exec probe: the original's exit code in the same round, and its
    stdout when the probe printed the same in every run of the original: traced (another
    container: another hostname) and both untraced rounds."""
    rows = []
    for n, m_round in enumerate(minified.rounds, 1):
        o_round = original.rounds[n - 1]
        for i, (e, m) in enumerate(zip(observed, m_round.execs)):
            o = o_round.execs[i]
            stable = _same(e.output, *(r.execs[i].output for r in original.rounds))
            ok = m.exit_code == o.exit_code and (not stable or m.stdout == o.stdout)
            rows.append(ComparedExec(
                round=n, argv=e.argv, compared="exit code+stdout" if stable else "exit code",
                original_exit_code=o.exit_code, minified_exit_code=m.exit_code, ok=ok,
                minified_output="" if ok else m.output[-2000:]))
    return tuple(rows)


def _request_text(r: ComparedRequest) -> str:
    minified = r.minified_status if r.minified_status is not None else \
        f"no answer ({r.minified_error})"
    return (f"{r.method} {r.path} (port {r.port}): original {r.original_status}, "
            f"minified {minified}{_when(r.round)}")


def _exec_text(e: ComparedExec) -> str:
    command = " ".join(e.argv)
    if e.minified_exit_code != e.original_exit_code:
        code = e.minified_exit_code if e.minified_exit_code is not None else \
            f"none ({_one_line(e.minified_output)})"
        text = f"exec {command}: original exit {e.original_exit_code}, minified exit {code}"
    else:
        text = f"exec {command}: the minified output differs from the original's"
    return text + _when(e.round)


def _original_failed(failed: tuple[int, str], original: Exercise) -> VerifyResult:
    n, failure = failed
    reason = (f"the original image, run with docker run, {failure}{_when(n)}: "
              "there is nothing to compare the minified image with")
    return VerifyResult(status="failed", reason=reason,
                        mismatches=(Mismatch("error", reason),),
                        minified_output=tuple(original.logs.splitlines()[-20:]))


def _broken(which: str, exc: Exception) -> VerifyResult:
    """An engine error or an HTTP-transport error while exercising a container."""
    detail = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    source = "the Docker engine failed" if isinstance(exc, DockerException) else \
        f"{type(exc).__name__}"
    reason = f"verification could not finish while running the {which} image: {source}: " \
             f"{_one_line(str(detail))}"
    return VerifyResult(status="failed", reason=reason, mismatches=(Mismatch("error", reason),))


def _same(*outputs: str) -> bool:
    """The same text, line for line (a log read back may lack the final newline)."""
    return len({tuple(o.splitlines()) for o in outputs}) == 1


def _when(round_: int) -> str:
    return AFTER_RESTART if round_ > 1 else ""


def _list(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports)


def _one_line(text: str, limit: int = 300) -> str:
    line = " | ".join(s.strip() for s in text.strip().splitlines() if s.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _first_difference(a: str, b: str) -> str:
    for x, y in zip(a.splitlines() + [""], b.splitlines() + [""]):
        if x != y:
            return f"original {x!r}, minified {y!r}"
    return "the same lines, other line ends"

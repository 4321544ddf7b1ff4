"""Prove the minified image behaves like the original, by replaying every probe.

The minified image runs under a plain `docker run` (no tracer, no extra mounts, the
same published ports); every HTTP request is replayed in order and compared with what
the original answered while traced. The original is also run a second time, untraced,
so that answers that differ between two runs of the original (a clock, a random id)
are detected as nondeterministic and compared by status only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import docker
from docker.errors import APIError, DockerException

import probes
from minifier.engine import container_labels, owned_container, published_ports, running_check
from minifier.observe.appspec import docker_run_kwargs
from minifier.options import BuildOptions
from minifier.records import BuildResult, ImageInfo, Observation
from minifier.ui import Progress
from probes import RequestResult, Target

__all__ = ["verify", "LOADER_ERRORS", "find_loader_errors", "compare", "include_hints"]

LOADER_ERRORS = re.compile(
    r"cannot open shared object file|No such file or directory|ModuleNotFoundError|"
    r"Cannot find module|: not found|error while loading shared libraries"
)


@dataclass(frozen=True)
class _Run:
    requests: tuple[RequestResult, ...]
    execs: tuple[tuple[Optional[int], str], ...]
    running: bool
    logs: str


def find_loader_errors(logs: str, original_logs: str = "") -> list[str]:
    """Loader/interpreter error lines of the minified run that the original run did not print.

    Digits are ignored when comparing, so timestamps and pids do not count as a difference.
    """
    def norm(line: str) -> str:
        return re.sub(r"[0-9]+", "", line).strip()
    known = {norm(line) for line in original_logs.splitlines()}
    return [line for line in logs.splitlines()
            if LOADER_ERRORS.search(line) and norm(line) not in known]


_PATH = re.compile(r"(?<![\w.])(/[\w.@+-]+(?:/[\w.@+-]+)*)")


def include_hints(lines: Sequence[str], fs, kept: set[str]) -> list[str]:
    """Paths named in the minified container's errors that the image has but the output
    lacks: the `--include-path` candidates that make a failure actionable."""
    hints = []
    for line in lines:
        for path in _PATH.findall(line):
            res = fs.resolve(path)
            if res.final is not None and res.final not in kept and path not in hints:
                hints.append(path)
    return hints


def compare(original: Sequence[RequestResult], again: Sequence[RequestResult],
            minified: Sequence[RequestResult]) -> tuple[list[dict], list[dict]]:
    """Per request: how it was compared, and the mismatches."""
    compared, mismatches = [], []
    for o, a, m in zip(original, again, minified):
        nondet = o.status != a.status or o.sha256 != a.sha256
        how = "status" if nondet else "status+body"
        ok = o.status == m.status and (nondet or o.sha256 == m.sha256)
        row = {"method": o.method, "path": o.path, "port": o.port, "compared": how,
               "original_status": o.status, "minified_status": m.status,
               "nondeterministic": nondet, "ok": ok}
        compared.append(row)
        if not ok:
            mismatches.append({**row, "minified_error": m.error})
    return compared, mismatches


def verify(client: docker.DockerClient, image: ImageInfo, result: BuildResult,
           obs: Observation, opts: BuildOptions, ui: Progress,
           seccomp: Optional[str] = None) -> dict:
    """Compare the minified image with the original; `seccomp` (a profile's JSON text)
    makes the minified image run under that profile, proving the profile too."""
    if not opts.output.verify:
        return {"status": "skipped", "mismatches": [], "requests": []}
    recorded = obs.http.requests if obs.http else ()
    again = _run_plain(client, image.id, opts, obs, recorded)
    minified = _run_plain(client, result.image_id, opts, obs, recorded, seccomp)
    compared, mismatches = compare(recorded, again.requests, minified.requests)
    for (o_code, o_out), (m_code, m_out), e in zip(again.execs, minified.execs, obs.execs):
        if (o_code, o_out) != (m_code, m_out):
            mismatches.append({"exec": list(e.argv), "original_exit_code": o_code,
                               "minified_exit_code": m_code,
                               "minified_output": m_out[-2000:]})
    loader = find_loader_errors(minified.logs, again.logs)
    if recorded and again.running and not minified.running:
        mismatches.append({"container": "the minified container stopped while the "
                                        "original kept running"})
    for line in loader:
        mismatches.append({"log": line})
    status = "failed" if mismatches else "passed"
    for m in mismatches:
        ui.warn(f"verification: {m}")
    return {"status": status, "mismatches": mismatches, "requests": compared,
            "minified_output": minified.logs.splitlines()[-20:] if mismatches else []}


def _run_plain(client, image_id: str, opts: BuildOptions, obs: Observation,
               recorded: Sequence[RequestResult], seccomp: Optional[str] = None) -> _Run:
    requests: tuple[RequestResult, ...] = ()
    running, logs = False, ""
    if recorded:
        try:
            with owned_container(client, "verify", lambda name: _start(
                    client, image_id, opts, obs.target.ports, seccomp, name)) as container:
                requests, running, logs = _replay(container, opts, obs, recorded)
        except (APIError, DockerException) as exc:
            error = f"the image did not start: {getattr(exc, 'explanation', None) or exc}"
            requests = tuple(_failed(r, error) for r in recorded)
            return _Run(requests=requests, execs=tuple((None, error) for _ in obs.execs),
                        running=False, logs=error)
    execs = tuple(_run_exec(client, image_id, argv, opts, seccomp)
                  for argv in (e.argv for e in obs.execs))
    return _Run(requests=requests, execs=execs, running=running, logs=logs)


def _replay(container, opts: BuildOptions, obs: Observation,
            recorded: Sequence[RequestResult]) -> tuple[tuple[RequestResult, ...], bool, str]:
    container.reload()
    target = Target(host="127.0.0.1", ports=published_ports(container.attrs))
    alive = running_check(container)
    try:
        probes.wait_ready(target, tuple(obs.target.ports), opts.probe.http.start_wait, alive)
        requests = probes.replay(target, recorded)
    except (probes.NotReadyError, probes.AppExitedError) as exc:
        requests = tuple(_failed(r, str(exc)) for r in recorded)
    return requests, alive(), container.logs().decode("utf-8", "replace")


def _failed(r: RequestResult, error: str) -> RequestResult:
    return replace(r, status=None, sha256="", length=0, error=error)


def _start(client, image_id: str, opts: BuildOptions, ports, seccomp: Optional[str],
           name: str):
    kwargs = _overrides(opts, seccomp)
    publish = {f"{p}/tcp": ("127.0.0.1", None) for p in ports}
    return client.containers.run(image_id, detach=True, ports=publish, name=name,
                                 labels=container_labels("verify"), **kwargs)


def _overrides(opts: BuildOptions, seccomp: Optional[str] = None) -> dict:
    """`docker run` as the user asked for the traced run (appspec.docker_run_kwargs);
    a generated seccomp profile replaces theirs."""
    return docker_run_kwargs(opts.run, seccomp=seccomp)


def _run_exec(client, image_id: str, argv, opts: BuildOptions,
              seccomp: Optional[str] = None) -> tuple[Optional[int], str]:
    try:
        return _run_exec_once(client, image_id, argv, opts, seccomp)
    except (APIError, DockerException) as exc:
        return None, f"did not run: {getattr(exc, 'explanation', None) or exc}"


def _run_exec_once(client, image_id: str, argv, opts: BuildOptions,
                   seccomp: Optional[str]) -> tuple[Optional[int], str]:
    def create(name: str):
        return client.containers.create(
            image_id, name=name, entrypoint=[argv[0]], command=list(argv[1:]),
            labels=container_labels("verify"),
            **{k: v for k, v in _overrides(opts, seccomp).items()
               if k not in ("entrypoint", "command")})

    with owned_container(client, "verify", create) as container:
        container.start()
        code = container.wait(timeout=opts.probe.exec_timeout).get("StatusCode")
        return code, container.logs().decode("utf-8", "replace")

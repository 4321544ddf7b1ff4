"""The `minify` command line: parses options into option records, runs the pipeline,
and is the one place where errors and signals become messages and exit codes."""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import Optional

import click

import probes
from minifier.dockerargs import container_options, read_env_files
from minifier.errors import (
    EXIT_MEANINGS,
    ExitStatus,
    Interrupted,
    MinifyError,
    UsageError,
    failure_document,
)
from minifier.jsonsafe import safe
from minifier.options import (
    BuildOptions,
    IndexOptions,
    KeepOptions,
    OutputOptions,
    ProbeSetup,
    RunOptions,
)

__all__ = ["main", "cli"]

EXIT_CODES_HELP = "\b\n" + "\n".join(
    f"{s.value:>3}  {s.name.lower():<11} {EXIT_MEANINGS[s]}" for s in ExitStatus)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="minify")
def cli() -> None:
    """minify: make container images small by watching what the app really uses.

    Add --debug anywhere on the line to see tracebacks of errors.
    """


def _split(text: Optional[str]) -> Optional[tuple[str, ...]]:
    return None if text is None else tuple(shlex.split(text))


def _lines(path: Optional[str]) -> tuple[str, ...]:
    if not path:
        return ()
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(s for s in (ln.strip() for ln in f) if s and not s.startswith("#"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _probe_setup(kw: dict) -> ProbeSetup:
    try:
        commands = tuple(probes.parse_probe_cmd(c) for c in kw["http_probe_cmd"])
        if kw["http_probe_cmd_file"]:
            commands += probes.load_command_file(kw["http_probe_cmd_file"])
        execs = tuple(probes.parse_exec_command(c) for c in kw["exec_"])
        if kw["exec_file"]:
            execs += probes.load_exec_file(kw["exec_file"])
        ports = probes.parse_ports(kw["http_probe_ports"]) if kw["http_probe_ports"] else ()
        continue_after = (probes.parse_continue_after(kw["continue_after"])
                          if kw["continue_after"] else None)
        docs = tuple(probes.load_apispec_file(f) for f in kw["http_probe_apispec_file"])
        http = None
        if kw["http_probe"] is not False:  # on unless turned off (None: not named)
            http = probes.HttpProbeOptions(
                ports=ports, start_wait=kw["http_probe_start_wait"],
                crawl=kw["http_probe_crawl"], max_depth=kw["http_crawl_max_depth"],
                max_pages=kw["http_crawl_max_page_count"], commands=commands,
                fail_on=kw["http_probe_fail_on"], apispec_paths=tuple(kw["http_probe_apispec"]),
                apispec_docs=docs, apispec_methods=kw["http_probe_apispec_methods"])
    except probes.ProbeSpecError as exc:
        raise UsageError(str(exc)) from exc
    asked = http is not None and bool(kw["http_probe"] or commands or ports
                                      or kw["http_probe_apispec"] or docs)
    return ProbeSetup(http=http, execs=execs, continue_after=continue_after, http_asked=asked,
                      exec_timeout=kw["exec_timeout"], exec_allow_fail=kw["exec_allow_fail"],
                      start_wait=kw["http_probe_start_wait"],
                      healthcheck=kw["healthcheck"], restart_trace=kw["restart_trace"])


_OUTPUT_FILES = ("report_file", "removed_list", "summary_md", "seccomp_profile", "report_html")


def check_output_paths(kw: dict) -> None:
    """Every output path can be written, decided before anything starts (an unwritable
    --report-file must not cost a whole build)."""
    for key in _OUTPUT_FILES:
        if kw.get(key):
            _check_writable_file(kw[key], "--" + key.replace("_", "-"))
    if kw.get("artifacts_dir"):
        _check_writable_dir(kw["artifacts_dir"], "--artifacts-dir")


def _check_writable_file(path: str, flag: str) -> None:
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path}: no such directory {parent}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: not writable")
    _probe_dir(parent, f"{flag} {path}")


def _check_writable_dir(path: str, flag: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path}: exists and is not a directory")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # makedirs will create the rest
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{flag} {path}: {existing} is not a directory")
    _probe_dir(existing, f"{flag} {path}")


def _probe_dir(directory: str, what: str) -> None:
    """Create and remove a file there: the one test that also sees read-only mounts and
    root's exemptions from permission bits."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(f"{what}: cannot write in {directory}: {exc.strerror}") from exc


def build_options(image: str, kw: dict) -> BuildOptions:
    """Turn click's keyword arguments into the option records (validated here, early)."""
    check_output_paths(kw)
    probe = _probe_setup(kw)
    extra_ports = tuple(str(p) for p in (probe.http.ports if probe.http else ()))
    container = container_options(kw)
    run = RunOptions(
        entrypoint=_split(kw["entrypoint"]), cmd=_split(kw["cmd"]),
        env=read_env_files(kw["env_file"], kw["env"]),
        workdir=kw["workdir"], user=kw["user"], container=container,
        expose=tuple(kw["expose"]) + extra_ports,
        fanotify=kw["fanotify"], all_syscalls=bool(kw["seccomp_profile"]))
    tmpfs = tuple(posixpath.normpath(path) for path, _ in container.tmpfs)
    keep = KeepOptions(
        include_paths=(*kw["include_path"], *_lines(kw["include_path_file"]),
                       *kw["preserve_path"], *_lines(kw["preserve_path_file"])),
        include_bins=tuple(kw["include_bin"]), include_shell=kw["include_shell"],
        include_cert_all=kw["include_cert_all"], exclude_patterns=tuple(kw["exclude_pattern"]),
        # The closure looks programs and libraries up the way the app is run: --env's
        # PATH and LD_LIBRARY_PATH, --workdir (the argv comes once the image is known).
        env=run.env, workdir=run.workdir, allow_incomplete=kw["allow_incomplete"],
        include_zoneinfo=kw["include_zoneinfo"], include_served_dirs=kw["include_served_dirs"],
        include_packages=kw["include_packages"],
        mountpoints=(*(m.target for m in container.mounts), *tmpfs),
        hidden=(*(m.target for m in container.mounts if not m.image_content), *tmpfs))
    output = OutputOptions(tag=kw["tag"], artifacts_dir=kw["artifacts_dir"],
                           report_file=kw["report_file"], removed_list=kw["removed_list"],
                           verify=kw["verify"], seccomp_profile=kw["seccomp_profile"])
    return BuildOptions(image=image, run=run, probe=probe, keep=keep, output=output,
                        index=_index_options(kw))


def _index_options(kw: dict) -> IndexOptions:
    from minifier.image.cache import check_dir, default_dir

    given = kw["cache_dir"]
    if kw["no_cache"]:
        return IndexOptions(source=kw["image_source"])
    if given:
        return IndexOptions(source=kw["image_source"], cache_dir=check_dir(given),
                            cache_dir_given=True)
    return IndexOptions(source=kw["image_source"], cache_dir=default_dir())


@cli.command(epilog="Exit codes:\n\n" + EXIT_CODES_HELP)
@click.argument("image", required=False)
@click.option("--target", metavar="IMAGE",
              help="The image to minify (docker-slim's name for the IMAGE argument).")
@click.option("--tag", help="Tag of the minified image (default: REPO.min:TAG).")
@click.option("--http-probe/--no-http-probe", default=None,
              help="Probe the app over HTTP on its exposed ports (default: on; an image "
                   "exposing no TCP port then runs without it, with a note). Also "
                   "--http-probe=true|false.")
@click.option("--http-probe-ports", help="Container ports to probe, e.g. 8080,9000.")
@click.option("--start-wait", "--http-probe-start-wait", "http_probe_start_wait", type=float,
              default=60.0, show_default=True,
              help="Seconds to wait for the app to be ready: to answer HTTP, or without "
                   "HTTP probing to listen on every exposed TCP port.")
@click.option("--http-probe-crawl/--no-http-probe-crawl", default=True, show_default=True)
@click.option("--http-crawl-max-depth", type=int, default=3, show_default=True)
@click.option("--http-crawl-max-page-count", type=int, default=1000, show_default=True)
@click.option("--http-probe-cmd", multiple=True, help="[crawl:][proto:][method:]/path")
@click.option("--http-probe-cmd-file", type=click.Path(), help="docker-slim JSON probe file.")
@click.option("--http-probe-fail-on", type=click.Choice(["5xx", "none"]), default="5xx",
              show_default=True)
@click.option("--http-probe-apispec", multiple=True, metavar="PATH",
              help="Path of an OpenAPI/Swagger document in the app (repeatable).")
@click.option("--http-probe-apispec-file", multiple=True, type=click.Path(), metavar="FILE",
              help="OpenAPI 3.x/Swagger 2.0 document file, JSON or YAML (repeatable).")
@click.option("--http-probe-apispec-methods", type=click.Choice(["get", "all"]), default="get",
              show_default=True,
              help="API operations to call: get = GET and HEAD only; all = also POST, PUT, "
                   "PATCH, DELETE with generated JSON bodies.")
@click.option("--exec", "exec_", multiple=True, help="Command to run in the container.")
@click.option("--exec-file", type=click.Path(), help="File of commands, one per line.")
@click.option("--exec-timeout", type=float, default=120.0, show_default=True)
@click.option("--exec-allow-fail", is_flag=True,
              help="Accept exec probes that exit non-zero (verification still requires "
                   "the original's exit code).")
@click.option("--healthcheck/--no-healthcheck", default=True, show_default=True,
              help="Run the image's HEALTHCHECK while observing and require Docker's "
                   "'healthy' for the minified image.")
@click.option("--restart-trace/--no-restart-trace", default=True, show_default=True,
              help="After probing, restart the app like docker restart, traced, and "
                   "probe it again: keeps what only a restart runs.")
@click.option("--continue-after", help="probe | exec | timeout:SECONDS | signal | enter")
@click.option("--entrypoint", help="Override the image's Entrypoint (split like a shell).")
@click.option("--cmd", help="Override the image's Cmd (split like a shell).")
@click.option("--env", multiple=True,
              help="NAME=value added to the app's environment (NAME alone: minify's own "
                   "value of NAME, as docker run).")
@click.option("--env-file", multiple=True, type=click.Path(),
              help="File of NAME=value lines added to the app's environment before --env, "
                   "read as docker run reads it (repeatable).")
@click.option("--workdir", help="Override the app's working directory.")
@click.option("--expose", multiple=True, help="Extra container port to publish and probe.")
@click.option("--user", help="Run the app as NAME|UID[:GROUP|GID] instead of the image's USER.")
@click.option("--memory", help="Memory limit of the app's container, e.g. 256m (as docker run).")
@click.option("--pids-limit", type=int, help="Process limit of the app's container.")
@click.option("--cpus", help="CPUs the app's container may use, e.g. 1.5.")
@click.option("--security-opt", multiple=True,
              help="As docker run: seccomp=FILE|unconfined, apparmor=..., no-new-privileges.")
@click.option("--cap-add", multiple=True, help="Add a capability to the app's container.")
@click.option("--cap-drop", multiple=True, help="Drop a capability from the app's container.")
@click.option("--read-only", is_flag=True, help="Mount the app's root filesystem read-only.")
@click.option("--tmpfs", multiple=True, help="PATH[:OPTIONS]: a tmpfs in the app's container.")
@click.option("--volume", "-v", multiple=True, metavar="[SRC:]DST[:MODE]",
              help="As docker run -v: a host path or named volume at DST (no SRC: an "
                   "anonymous volume) in the traced and verification containers.")
@click.option("--mount", multiple=True, metavar="SPEC",
              help="As docker run --mount (type=bind|volume|tmpfs,source=...,target=...,"
                   "readonly), or docker-slim's SRC:DST[:MODE].")
@click.option("--network", help="Network the app's containers join: a user-defined network "
                                "(docker network create), bridge or none.")
@click.option("--link", multiple=True, metavar="CONTAINER[:ALIAS]",
              help="As docker run --link: reach a running container by name or alias.")
@click.option("--include-path", multiple=True, help="Keep this file or directory tree.")
@click.option("--include-path-file", type=click.Path(), help="File of paths to keep.")
@click.option("--preserve-path", multiple=True,
              help="docker-slim's name, the same as --include-path: minify always copies "
                   "the original image's files, never what the app changed.")
@click.option("--preserve-path-file", type=click.Path(), help="As --include-path-file.")
@click.option("--include-bin", multiple=True, help="Keep this binary and its ELF deps.")
@click.option("--include-shell", is_flag=True, help="Keep /bin/sh and common tools.")
@click.option("--include-cert-all", is_flag=True, help="Keep all CA certificates.")
@click.option("--include-zoneinfo", is_flag=True,
              help="Keep the time zone database (/usr/share/zoneinfo and the other places "
                   "libc, Go and Python read it) and /etc/localtime, /etc/timezone.")
@click.option("--include-served-dirs/--no-include-served-dirs", default=True,
              help="Keep whole each directory the app served a file from over HTTP (its "
                   "pages' scripts may fetch files no crawler finds); on by default.")
@click.option("--include-packages", is_flag=True,
              help="Keep whole each Python, Node, Ruby or Perl package the app loaded a "
                   "file from (frameworks load templates and modules when a page first "
                   "needs them).")
@click.option("--exclude-pattern", multiple=True, help="Glob (with **) of paths to drop.")
@click.option("--allow-incomplete", is_flag=True,
              help="Build even when the self-check finds a kept file's interpreter, library "
                   "or link target missing (listed in the report) instead of exiting 10.")
@click.option("--artifacts-dir", type=click.Path(), help="Keep all artifacts here.")
@click.option("--report-file", type=click.Path(), help="Write the JSON report here.")
@click.option("--removed-list", type=click.Path(), help="Write the removed paths here.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Replay the probes against the minified image.")
@click.option("--fanotify/--no-fanotify", default=True, show_default=True,
              help="Also watch the container filesystem with fanotify.")
@click.option("--seccomp-profile", type=click.Path(),
              help="Write a Docker seccomp profile of the syscalls seen (traces every syscall).")
@click.option("--image-source", type=click.Choice(["auto", "storage", "export"]),
              default="auto", show_default=True,
              help="How the image's files are read: the engine's overlay2 layer directories "
                   "in place (storage: on the engine's host), the docker export stream, or "
                   "auto (storage where it applies).")
@click.option("--cache-dir", type=click.Path(),
              help="Keep image indexes here, by image ID, so rebuilding an image skips "
                   "indexing (default: $XDG_CACHE_HOME/minify, else ~/.cache/minify).")
@click.option("--no-cache", is_flag=True, help="Neither use nor write the index cache.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report JSON on stdout; all other output goes to stderr.")
@click.option("--summary-md", type=click.Path(), help="Write a Markdown before/after table.")
@click.option("--report-html", type=click.Path(),
              help="Write the report as one self-contained HTML page (works offline).")
@click.option("--min-ratio", type=float, help="Fail (exit 8) if the image shrinks less.")
@click.option("--max-size", help="Fail (exit 8) if the output is bigger, e.g. 50MB.")
def build(image: str, **kw) -> None:
    """Minify IMAGE: run it traced, probe it, keep only what it used."""
    from minifier.engine import connect
    from minifier.engineinfo import check_rootful, describe
    from minifier.observe.preflight import check_container_refs, check_privileges
    from minifier.pipeline import build as run_build
    from minifier.ui import Progress

    opts = build_options(target_image(image, kw["target"]), kw)
    max_size = _size(kw["max_size"], "--max-size")
    check_privileges()  # before the engine: a non-root user is told what is missing
    client = connect()
    engine = describe(client)
    check_rootful(engine)
    check_container_refs(client, opts.run.container)
    report = run_build(client, engine, opts, Progress())
    failure = _failure(report, kw["min_ratio"], max_size)
    # With --json, stdout holds one document: the report, or on failure the error
    # document that carries it (main).
    _emit(report, None if kw["as_json"] and failure else "json" if kw["as_json"] else "text",
          kw["summary_md"], kw["report_html"])
    if failure is not None:
        failure.report = report.document
        raise failure


def target_image(image: Optional[str], target: Optional[str]) -> str:
    """IMAGE, given as the argument or with docker-slim's --target (not both)."""
    if image and target and image != target:
        raise UsageError(f"two images named: {image} and --target {target}")
    if not (image or target):
        raise UsageError("no image named: minify build IMAGE (or --target IMAGE)")
    return image or target


def _size(text: Optional[str], option: str) -> Optional[int]:
    from minifier.output.summary import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from exc


def _emit(report, stdout: Optional[str], summary_md: Optional[str],
          report_html: Optional[str] = None) -> None:
    """The report on stdout as `stdout` says ("json", "text", None: nothing), and the
    summary and HTML files."""
    from minifier.output.html_report import render_html
    from minifier.output.summary import render_markdown, render_text

    if stdout == "json":
        click.echo(json.dumps(report.document, indent=2))
    elif stdout == "text":
        click.echo(render_text(report))
    if summary_md:
        with open(summary_md, "w", encoding="utf-8") as f:
            f.write(render_markdown(report))
    if report_html:
        with open(report_html, "w", encoding="utf-8") as f:
            f.write(render_html(report.document))


def _failure(report, min_ratio: Optional[float], max_size: Optional[int]):
    """Verification first, then thresholds: the error to end with (both leave the built
    image for inspection), or None."""
    from minifier.errors import ThresholdError, VerifyError
    from minifier.output.summary import threshold_failures

    verdict = report.verify
    if verdict.status == "failed":
        lines = [m.text for m in verdict.mismatches]
        output, hints = verdict.minified_output, verdict.include_path_hints
        detail = "\n".join(
            [f"  {line}" for line in lines]
            + (["container output (last lines):"] + [f"  {o}" for o in output[-10:]]
               if output else [])
            + ([f"hint: try --include-path {' --include-path '.join(hints)}"] if hints else []))
        return VerifyError(
            f"verification failed: {verdict.reason or 'mismatch'}"
            f"{f' (and {len(lines) - 1} more)' if len(lines) > 1 else ''}; "
            f"kept as {report.output.image}, labelled minify.verified=false",
            detail=detail)
    failures = threshold_failures(report, min_ratio, max_size)
    if failures:
        return ThresholdError("; ".join(failures) + f" (image kept as {report.output.image})")
    return None


@cli.command(epilog="Exit codes:\n\n" + EXIT_CODES_HELP)
@click.argument("image", required=False)
@click.option("--target", metavar="IMAGE",
              help="The image to look at (docker-slim's name for the IMAGE argument).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report JSON (minify.xray/v1) on stdout; progress goes to stderr.")
@click.option("--report-file", type=click.Path(), help="Also write the JSON report here.")
@click.option("--summary-md", type=click.Path(), help="Write a Markdown summary (CI job page).")
@click.option("--dockerfile", type=click.Path(),
              help="The Dockerfile that built IMAGE: findings name its lines.")
@click.option("--build-report", type=click.Path(),
              help="report.json of a `minify build` of IMAGE: shown side by side.")
@click.option("--max-waste", help="Fail (exit 8) if dive's wasted bytes exceed this, e.g. 10MB.")
@click.option("--min-efficiency", type=click.FloatRange(0, 1),
              help="Fail (exit 8) if dive's efficiency score is below this, e.g. 0.95.")
@click.option("--max-finding-bytes", multiple=True, metavar="[ID=]SIZE",
              help="Fail (exit 8) if a finding (or the one named ID) saves more than SIZE.")
@click.option("--layer-source", type=click.Choice(["auto", "storage", "save"]), default="auto",
              show_default=True,
              help="Read the layers from the engine's overlay2 directories (storage, where "
                   "this machine can) or from `docker save`.")
def xray(image: Optional[str], **kw) -> None:
    """Where IMAGE's bytes are and which classic fix removes them (no container is run)."""
    from minifier.engine import connect
    from minifier.errors import ThresholdError
    from minifier.output.report import write_json
    from minifier.ui import Progress
    from minifier.xray.report import render_markdown, render_text, threshold_failures
    from minifier.xray.run import load_options, run_xray

    image = target_image(image, kw["target"])
    limits = _xray_thresholds(kw)
    options = load_options(kw["dockerfile"], kw["build_report"], kw["layer_source"])
    client = connect()
    report = run_xray(client, image, options, Progress())
    doc = safe(report.to_json())
    failures = threshold_failures(report, limits)
    if not (kw["as_json"] and failures):  # on failure the error document carries it (main)
        click.echo(json.dumps(doc, indent=2) if kw["as_json"] else render_text(report))
    if kw["report_file"]:
        write_json(doc, kw["report_file"])
    if kw["summary_md"]:
        with open(kw["summary_md"], "w", encoding="utf-8") as f:
            f.write(render_markdown(report))
    if failures:
        failure = ThresholdError("; ".join(failures))
        failure.report = doc
        raise failure


def _xray_thresholds(kw: dict):
    from minifier.xray.findings import FINDING_IDS
    from minifier.xray.report import Thresholds

    per_finding = []
    for text in kw["max_finding_bytes"]:
        rule, sep, size = text.rpartition("=")
        if sep and rule not in FINDING_IDS:
            raise UsageError(f"--max-finding-bytes: unknown finding {rule!r} "
                             f"(one of {', '.join(sorted(FINDING_IDS))})")
        per_finding.append((rule, _size(size, "--max-finding-bytes")))
    return Thresholds(max_waste=_size(kw["max_waste"], "--max-waste"),
                      min_efficiency=kw["min_efficiency"], max_finding=tuple(per_finding))


@cli.command(epilog="Exit codes: 0 every check passed (warnings allowed): a build can work "
                    "here; 4 the engine cannot be reached or used, or cannot start a "
                    "container; 9 another check failed.")
def doctor() -> None:
    """Check this host before a first build: one line per check, what works and what to
    fix (engine, storage, cgroups, capabilities, Yama, seccomp, container flags, and a
    test container's PID, network, cgroups and fanotify)."""
    from minifier.doctor import format_check, run_doctor
    from minifier.errors import CapabilityError, EngineError

    checks = run_doctor()
    for check in checks:
        click.echo(format_check(check))
    failed = [c for c in checks if c.failed]
    if failed:
        error = EngineError if failed[0].exit_status == ExitStatus.ENGINE else CapabilityError
        raise error(f"doctor: {len(failed)} check(s) failed "
                    f"({', '.join(c.name for c in failed)}): a build cannot work here")
    warned = [c.name for c in checks if c.status == "warn"]
    click.echo("minify: doctor: every check passed"
               + (f" (warnings: {', '.join(warned)})" if warned else "")
               + ": a build can work here")


_PROBES_EXITS = {probes.ProbeSpecError: ExitStatus.USAGE, probes.NotReadyError: ExitStatus.APP,
                 probes.AppExitedError: ExitStatus.APP}


def _raise_interrupted(signum, _frame) -> None:
    # Cleanup runs on the way out; further signals must not cut it short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


def _interrupt_again(unraisable) -> None:
    """A signal whose handler ran inside a finalizer (a weakref callback, a __del__):
    Python ignores what a finalizer raises, so the Interrupted would be lost and the
    build go on. The handlers are put back and the signal is sent again from another
    thread, to be raised in the main thread's own code."""
    exc = unraisable.exc_value
    if not isinstance(exc, Interrupted):
        sys.__unraisablehook__(unraisable)
        return
    _handle_signals()
    threading.Thread(target=_send_when_back, args=(threading.get_ident(), exc.signum),
                     daemon=True).start()


def _send_when_back(ident: int, signum: int) -> None:
    """Send `signum` once the thread `ident` has left _interrupt_again (bounded); not
    when the main thread has ended meanwhile (the process is exiting: this daemon thread
    would wake in a torn-down interpreter and print a traceback over the error line)."""
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(ident)
            while frame is not None and frame.f_code is not _interrupt_again.__code__:
                frame = frame.f_back
            if frame is None:
                break
            time.sleep(0.001)
        if threading.main_thread().is_alive():
            os.kill(os.getpid(), signum)
    except BaseException:  # noqa: BLE001 - only during interpreter shutdown
        pass


def _handle_signals() -> None:
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    sys.unraisablehook = _interrupt_again


# Go's strconv.ParseBool, which docker-slim's --flag=VALUE goes through.
_BOOL_TEXT = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def bool_values(args: list[str]) -> list[str]:
    """docker-slim's `--flag=true|false` for minify's on/off flags: `--http-probe=false`
    becomes `--no-http-probe`, `--include-shell=false` is dropped. A token that is the
    value of the option before it (`--cmd --http-probe=false`) is left alone."""
    command = cli.commands.get(args[0]) if args else None
    if command is None:
        return args
    flags: dict[str, tuple[str, Optional[str]]] = {}
    takes_value: set[str] = set()
    for p in command.params:
        if not isinstance(p, click.Option):
            continue
        if p.is_bool_flag:
            off = p.secondary_opts[0] if p.secondary_opts else None
            flags.update({o: (p.opts[0], off) for o in p.opts})
            flags.update({o: (o, p.opts[0]) for o in p.secondary_opts})
        else:
            takes_value.update(p.opts)
    out, value_next = [], False
    for arg in args:
        name, sep, text = arg.partition("=")
        if value_next or not sep or name not in flags:
            out.append(arg)
            value_next = not value_next and arg in takes_value
            continue
        value = _BOOL_TEXT.get(text.lower())
        if value is None:
            raise UsageError(f"{name}={text}: not true or false")
        on, off = flags[name]
        out.extend([on] if value else [off] if off else [])
    return out


def _json_command(args: list[str]) -> Optional[str]:
    """The command whose --json asks for a JSON document on stdout, also on failure."""
    if args and args[0] in ("build", "xray") and "--json" in args[1:]:
        return args[0]
    return None


def main(argv: Optional[list[str]] = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in given
    args = [a for a in given if a != "--debug"]
    _handle_signals()
    status, message, detail, report = _run(args, debug)
    command = _json_command(args)
    if command and status != ExitStatus.OK:
        doc = failure_document(command, status, message, detail, report)
        click.echo(json.dumps(safe(doc), indent=2))
    return status


def _run(args: list[str], debug: bool) -> tuple[int, str, str, Optional[dict]]:
    """Run the command line: (exit status, error message, its detail, the report made
    before the error, if any). Errors are said on stderr here, the one place."""
    try:
        cli.main(args=bool_values(args), prog_name="minify", standalone_mode=False)
        return ExitStatus.OK, "", "", None
    except click.exceptions.Exit as exc:
        return exc.exit_code, "", "", None
    except click.ClickException as exc:
        exc.show()
        return ExitStatus.USAGE, exc.format_message(), "", None
    except (click.Abort, KeyboardInterrupt):
        click.echo("minify: error: interrupted", err=True)
        return ExitStatus.INTERRUPTED, "interrupted", "", None
    except MinifyError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"minify: error: {exc.message}", err=True)
        if exc.detail:
            click.echo(exc.detail, err=True)
        return exc.exit_status, exc.message, exc.detail, exc.report
    except probes.ProbesError as exc:  # the probes package's own errors, where not wrapped
        if debug:
            traceback.print_exc()
        click.echo(f"minify: error: {exc.message}", err=True)
        return _PROBES_EXITS.get(type(exc), ExitStatus.PROBE), exc.message, "", None
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a message
        if debug:
            traceback.print_exc()
        message = f"internal error: {exc!r} (run with --debug for the traceback)"
        click.echo(f"minify: {message}", err=True)
        return ExitStatus.ERROR, message, "", None


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

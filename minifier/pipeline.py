"""`minify build` as one function that reads top to bottom, one call per stage:

inspect -> run + trace + watch -> probe -> restart + probe again -> stop -> index -> plan +
self-check -> rebuild -> verify -> report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import posixpath
import shutil
import tempfile
from dataclasses import replace
from typing import Iterator, Optional

import docker
from docker.errors import DockerException

from minifier.engine import Reaper, check_output_tag, inspect_image
from minifier.engineinfo import EngineInfo, may_bind_host_files
from minifier.errors import IncompleteError, UsageError
from minifier.image import closure, imagefs, rebuild, selfcheck
from minifier.image.cache import open_cache
from minifier.image.indexing import CacheLookup, index_image
from minifier.image.source import choose_source
from minifier.observe.appspec import check_command, exposed_tcp_ports, health_spec
from minifier.observe.monitor import access_to_json, merge
from minifier.observe.preflight import (
    check_include_paths,
    check_network_ports,
    check_runnable,
)
from minifier.observe.probing import check_probes, http_probe_ports, no_port_note, observe
from minifier.observe.restart import trace_restart
from minifier.observe.runner import ObservedRun, TracedContainer
from minifier.options import BuildOptions
from minifier.output.hints import include_hints
from minifier.output.report import Report, dir_sizes, make_report, write_json
from minifier.output.seccomp_profile import build_profile
from minifier.output.verify import OriginalRun, verify
from minifier.records import BuildResult, ImageInfo, Observation, SelfCheck, VerifyResult
from minifier.ui import Progress

__all__ = ["build"]

_READERS = {"storage": "overlay2 layer directories", "export": "docker export stream",
            "tar": "tar file"}


def build(client: docker.DockerClient, engine: EngineInfo, opts: BuildOptions,
          ui: Progress) -> Report:
    ui.stage("inspect", f"inspecting {opts.image}")
    image = inspect_image(client, opts.image)
    check_runnable(image)
    tag = rebuild.full_tag(opts.output.tag or rebuild.default_tag(image))
    rebuild.check_tag(tag, image)
    check_output_tag(client, tag, image)
    argv = check_command(image, opts.run)
    # The closure seeds from the app as it is really run (--entrypoint/--cmd overrides).
    keep = dataclasses.replace(opts.keep, argv=argv)
    ports = http_probe_ports(image, opts.probe, opts.run.expose)
    check_network_ports(opts.run.container.network, ports)
    check_include_paths(client, image, opts.keep)
    # Chosen before anything runs: --image-source storage that cannot work stops here.
    chosen = choose_source(client, image.id, opts.index.source, engine=engine)
    cache, cache_warning = open_cache(opts.index.cache_dir, opts.index.cache_dir_given)

    # The cache is checked while the app runs; the index stage takes what it found.
    with _artifacts_dir(opts.output.artifacts_dir) as workdir, Reaper(client) as reaper, \
            CacheLookup(cache, image.id, chosen.source) as cached:
        observation, observed = _run_and_probe(client, image, ports, opts, ui, workdir,
                                               reaper, may_bind_host_files(engine))
        access = merge(observed.results)
        write_json(access_to_json(access), os.path.join(workdir, "access.json"))
        seccomp = _seccomp_profile(access, opts.output.seccomp_profile, workdir)
        # Verification's run of the original needs only the observation: it goes on in
        # the background while the image is indexed, planned and rebuilt.
        with OriginalRun(client, image, observation, opts, reaper) as original:
            ui.stage("index", f"indexing the image filesystem ({_READERS[chosen.source.name]})")
            source = chosen.source
            spool = imagefs.Spool(os.path.join(workdir, "content"), access.accesses.keys())
            fs, indexed = index_image(source, image.id, cache, workdir, spool, cached.take())
            ui.info(f"{indexed.entries} entries, index cache {indexed.cache}")

            ui.stage("plan", "computing what to keep")
            # Every named path, not only successful ones: EEXIST, EACCES or a path the app
            # deletes all mean the image must still have it; the image index decides.
            plan = closure.plan(fs, access.accesses.keys(), image, keep, source,
                                served=_served_urls(observation))
            checked = _self_check(fs, plan, image, keep)
            ui.stage("rebuild", f"building {tag}")
            layer = rebuild.write_layer(fs, plan, source, os.path.join(workdir, "layer.tar"))
            spool.remove()
            # An image that will not be verified says so from the start.
            result = rebuild.load_image(
                client, _config(image, verified=None if opts.output.verify else False), layer, tag)

            verdict, result = _verify(client, image, result, observation, opts, ui, seccomp,
                                      original, reaper, lambda: rebuild.load_image(
                                          client, _config(image, verified=False), layer, tag))
            if verdict.status == "failed":
                verdict = replace(verdict, include_path_hints=tuple(include_hints(
                    _failure_lines(verdict), fs, {k.path for k in plan.kept})))

        ui.done()
        report = make_report(image, result, plan, access, observation, verdict,
                             _removed_sizes(fs, plan),
                             workdir if opts.output.artifacts_dir else "",
                             index=replace(indexed, why=chosen.why),
                             warnings=(*observation.warnings, *observed.warnings,
                                       *([cache_warning] if cache_warning else [])),
                             timings=ui.timings, selfcheck=checked)
        _write_outputs(report, plan, fs, opts, workdir)
    return report


def _served_urls(observation: Observation) -> list[str]:
    """The URL paths the app answered with a success while observed."""
    requests = observation.http.requests if observation.http else ()
    return [r.path for r in requests if r.status is not None and 200 <= r.status < 300]


def _run_and_probe(client: docker.DockerClient, image: ImageInfo, ports: tuple[int, ...],
                   opts: BuildOptions, ui: Progress, workdir: str, reaper: Reaper,
                   bind_pause: bool) -> tuple[Observation, ObservedRun]:
    """Run the app traced, exercise it, stop it; fail on dishonest probing. The stopped
    app's container is removed by `reaper`, while the next stages go on."""
    ui.stage("run", f"starting {image.ref} under trace")
    listen = exposed_tcp_ports(image, opts.run.expose)
    with TracedContainer(client, image, None, opts.run, workdir, reaper,
                         bind_pause=bind_pause) as tc:
        ui.info(" ".join(tc.spec.argv))
        skipped = opts.probe.http is not None and not ports
        observation = observe(tc, ports, opts.probe, ui, listen=listen,
                              health=health_spec(image),
                              notes=(no_port_note(image),) if skipped else ())
        observation = replace(observation, restart=trace_restart(tc, observation, opts.probe,
                                                                 ui, listen=listen))
        ui.stage("stop", "stopping the app")
        observed = tc.finish()
    check_probes(observation, opts.probe, observed.app_output, observed.app_exit)
    return replace(observation, life=observed.life), observed


def _verify(client: docker.DockerClient, image: ImageInfo, result: BuildResult,
            observation: Observation, opts: BuildOptions, ui: Progress,
            seccomp: Optional[str], original: OriginalRun, reaper: Reaper,
            relabel) -> tuple[VerifyResult, BuildResult]:
    """Verify; a failed verification keeps the image for inspection, relabelled
    `minify.verified=false` (`relabel`). An image whose verification did not come to an
    end (Ctrl-C, or the relabelling itself failed) is removed: no unverified image is
    ever left without that label."""
    try:
        ui.stage("verify", "verifying the minified image")
        verdict = verify(client, image, result, observation, opts, ui, seccomp, original,
                         reaper)
        if verdict.status == "failed":
            result = relabel()
    except BaseException:
        _remove_image(client, result.tag)
        raise
    return verdict, result


def _remove_image(client: docker.DockerClient, tag: str) -> None:
    try:
        # Forced: a verification container still being removed must not keep the tag
        # alive; an image a container of the user's runs only loses the tag.
        client.images.remove(tag, force=True)
    except DockerException:
        pass  # already gone


def _failure_lines(verdict: VerifyResult) -> list[str]:
    """Everything the minified side printed on failure: where --include-path hints come from."""
    lines = list(verdict.minified_output)
    for m in verdict.mismatches:
        lines.append(m.text)
        if m.exec is not None:
            lines.extend(m.exec.minified_output.splitlines())
    if verdict.health is not None:
        lines.extend(verdict.health.output.splitlines())
    return lines


def _self_check(fs, plan, image: ImageInfo, keep) -> SelfCheck:
    """Refuse to write an image a kept file cannot work in, unless --allow-incomplete."""
    checked = selfcheck.check(fs, plan, image, keep)
    if checked.findings and not keep.allow_incomplete:
        texts = [f.text() for f in checked.findings]
        more = f" (and {len(texts) - 1} more)" if len(texts) > 1 else ""
        raise IncompleteError(
            f"the minified image would be incomplete: {texts[0]}{more}; nothing was built "
            "(--allow-incomplete builds it anyway)",
            detail="\n".join(f"  {t}" for t in texts))
    return checked


def _config(image: ImageInfo, verified: Optional[bool] = None) -> dict:
    labels = {"minify.source.image": image.ref, "minify.source.id": image.id}
    if verified is False:
        labels["minify.verified"] = "false"
    return rebuild.output_config(image, labels)


@contextlib.contextmanager
def _artifacts_dir(path: str | None) -> Iterator[str]:
    """The per-run directory; a temporary one (removed at the end) unless the user names one."""
    if path:
        os.makedirs(path, exist_ok=True)
        yield os.path.abspath(path)
        return
    try:
        tmp = tempfile.mkdtemp(prefix="minify-")
    except OSError as exc:
        raise UsageError(f"cannot create a temporary directory ({exc.strerror}): set TMPDIR "
                         "to a writable directory (in a container: --tmpfs /tmp)") from exc
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _seccomp_profile(access, path: str | None, workdir: str) -> str | None:
    """Write the profile (when asked) and return its JSON text for verification."""
    if not path:
        return None
    profile = build_profile(access.syscall_counts)
    write_json(profile, path)
    write_json(profile, os.path.join(workdir, "seccomp.json"))
    return json.dumps(profile)


def _removed_sizes(fs, plan):
    """Bytes of the image's files the plan drops, per directory prefix: every directory's
    bytes (summed by the index, one row per directory) minus the kept files'."""
    sizes = dir_sizes((posixpath.join(d, "*"), size) for d, size in fs.file_bytes_by_dir())
    for k in plan.kept:
        e = fs.lookup(k.path)
        if e is not None and e.type == "file" and not e.artefact:
            sizes.subtract(dir_sizes([(k.path, e.size)]))
    return sizes


def _write_outputs(report: Report, plan, fs, opts: BuildOptions, workdir: str) -> None:
    doc = report.document
    write_json(doc, os.path.join(workdir, "report.json"))
    if opts.output.report_file:
        write_json(doc, opts.output.report_file)
    if opts.output.removed_list:
        kept = {k.path for k in plan.kept}
        with open(opts.output.removed_list, "w", encoding="utf-8", errors="surrogateescape") as f:
            for path in fs.paths():
                if path not in kept:
                    f.write(path + "\n")

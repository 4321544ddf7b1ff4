"""`minify xray`: inspect, read the layers (in place from the engine's storage where
that works, else one streamed `docker save`), analyze. No container is started and
nothing is written to the engine."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from minifier.engine import inspect_image, signals_deferred
from minifier.errors import UsageError
from minifier.xray.analysis import XrayInput, analyze
from minifier.xray.base import BaseCandidate
from minifier.xray.compare import check_build_report
from minifier.xray.layers import CapturePolicy
from minifier.xray.report import XrayReport
from minifier.xray.source import DockerSaveSource, LayerSource
from minifier.xray.storage import choose_layer_source

__all__ = ["XrayOptions", "load_options", "run_xray", "local_candidates"]


@dataclass(frozen=True)
class XrayOptions:
    dockerfile: Optional[tuple[str, str]] = None  # (path, text)
    build_report: Optional[tuple[str, Mapping]] = None  # (path, document)
    layer_source: str = "auto"  # auto | storage | save


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") \
            from exc


def load_options(dockerfile: Optional[str], build_report: Optional[str],
                 layer_source: str = "auto") -> XrayOptions:
    """Read the input files early: a bad one is a usage error before the engine."""
    report = None
    if build_report:
        try:
            report = (build_report, json.loads(_read(build_report)))
        except ValueError as exc:
            raise UsageError(f"--build-report {build_report}: not JSON ({exc})") from exc
    return XrayOptions(dockerfile=(dockerfile, _read(dockerfile)) if dockerfile else None,
                       build_report=report, layer_source=layer_source)


def local_candidates(client: Any, image_id: str, diff_ids: tuple[str, ...]) -> tuple:
    """Local images whose layers are a proper prefix of this image's: base candidates.
    An image removed while they are looked at (a `docker rmi`, a prune) is no candidate."""
    from docker.errors import ImageNotFound

    out = []
    for summary in client.api.images():
        if summary["Id"] == image_id:
            continue
        try:
            attrs = client.api.inspect_image(summary["Id"])
            layers = tuple((attrs.get("RootFS") or {}).get("Layers") or ())
            if not 0 < len(layers) <= len(diff_ids) or tuple(diff_ids[:len(layers)]) != layers:
                continue
            history = len(client.api.history(summary["Id"]))
        except ImageNotFound:
            continue
        tags = sorted(t for t in summary.get("RepoTags") or () if t != "<none>:<none>")
        out.append(BaseCandidate(tags[0] if tags else summary["Id"], layers, history))
    return tuple(out)


def run_xray(client: Any, ref: str, options: XrayOptions, progress: Any,
             source: Optional[LayerSource] = None) -> XrayReport:
    progress.stage("inspect", f"inspecting {ref}")
    info = inspect_image(client, ref)
    build_report = None
    if options.build_report:
        path, doc = options.build_report
        build_report = (path, check_build_report(doc, info.id, path))
    policy = CapturePolicy.for_config(info.config)
    attrs = client.api.inspect_image(info.id)
    diff_ids = tuple((attrs.get("RootFS") or {}).get("Layers") or ())
    if source is None:
        storage, why = choose_layer_source(client, attrs, options.layer_source)
        kind = "storage" if storage else "save"
        source = storage or DockerSaveSource(client, info.id)
    else:
        kind, why = "given", "the caller's layer source"
    how = "docker save, streamed" if kind == "save" else "overlay2 directories, in place"
    progress.stage("read", f"reading the layers of {ref} ({how})")
    # The engine answers the base lookup while the layers are read.
    with ThreadPoolExecutor(max_workers=1) as pool:
        with signals_deferred():
            lookup = pool.submit(local_candidates, client, info.id, diff_ids)
        try:
            saved = source.read(policy)
        except BaseException:
            lookup.cancel()
            raise
        candidates = lookup.result()
    progress.stage("analyze", f"analyzing {len(saved.layers)} layer(s)")
    report = analyze(XrayInput(ref=ref, image_id=info.id, image_size=info.size, saved=saved,
                               candidates=candidates, dockerfile=options.dockerfile,
                               build_report=build_report,
                               layer_source={"kind": kind, "why": why}))
    progress.done()
    return dataclasses.replace(report, timings=dict(progress.timings))

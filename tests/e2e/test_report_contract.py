"""The report's JSON contract, pinned on reports of real runs: every key of every object,
in order, with its type, on the shared builds of other modules (no build of its own).

Together the runs below show every object the report can hold: a failed verification
with a request mismatch and include-path hints (python-broken), exec probes, a health
check and a service's liveness (redis), API documents and probe ports (jsonapi-plain),
self-check findings (tools-incomplete). The objects of a mismatch's `request` and `exec`
are the same as the rows of `verify.requests` and `verify.execs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.e2e

RUNS = ("python-broken", "redis", "jsonapi-plain", "tools-incomplete")


@dataclass(frozen=True)
class Opt:
    """The spec, or null."""

    spec: object


@dataclass(frozen=True)
class Map:
    """An object whose keys are data (counts by outcome, syscall names, stage names)."""

    value: type


OPT_INT, OPT_STR = Opt(int), Opt(str)
IMAGE = {"image": str, "id": str, "size": int}
DIR_SIZE = {"path": str, "size": int}
COMPARED_REQUEST = {
    "round": int, "method": str, "path": str, "port": int, "compared": str,
    "original_status": OPT_INT, "minified_status": OPT_INT, "nondeterministic": bool,
    "ok": bool, "minified_error": OPT_STR}
COMPARED_EXEC = {
    "round": int, "argv": [str], "compared": str, "original_exit_code": OPT_INT,
    "minified_exit_code": OPT_INT, "ok": bool, "minified_output": str}
REPORT = {
    "schema": "minify.report/v2",
    "source": IMAGE,
    "output": IMAGE,
    "ratio": float,
    "files": {"kept": int, "total": int, "kept_size": int, "total_size": int,
              "placeholders": [str]},
    "kept": [{"path": str, "size": int, "kind": str, "reasons": [str]}],
    "excluded": [str],
    "probe": {
        "requests": [{"method": str, "path": str, "port": int, "protocol": str,
                      "status": OPT_INT, "content_type": OPT_STR, "length": OPT_INT,
                      "sha256": OPT_STR, "elapsed": float, "error": OPT_STR,
                      "discovered_by": str, "outcome": str}],
        "counts": Map(int),
        "discovered": [str],
        "ports": [{"port": int, "speaks": str, "ready_after": float}],
        "apispecs": [{"source": str, "port": int, "version": str, "discovered_by": str,
                      "operations": int, "requests": int, "skipped": [str]}],
        "notes": [str],
        "execs": [{"argv": [str], "exit_code": OPT_INT}],
    },
    "observation": {"restarts": int,
                    "restart": Opt({"status": str, "note": str, "seconds": float,
                                    "requests": int, "execs": int})},
    "access": {"paths": int, "existing": int, "file": str, "syscall_counts": Map(int)},
    "verify": {
        "status": str,
        "reason": str,
        "requests": [COMPARED_REQUEST],
        "execs": [COMPARED_EXEC],
        "mismatches": [{"kind": str, "text": str, "request": Opt(COMPARED_REQUEST),
                        "exec": Opt(COMPARED_EXEC)}],
        "health": Opt({"status": str, "reason": str, "test": [str], "seconds": float,
                       "output": str}),
        "liveness": Opt({"shape": str, "ok": bool, "required_seconds": float,
                         "ports": [int], "minified_ports": [int],
                         "original_exit_code": OPT_INT, "minified_exit_code": OPT_INT,
                         "compared": str, "restarted": bool}),
        "minified_output": [str],
        "include_path_hints": [str],
        "original_run": str,
    },
    "selfcheck": {"status": str, "findings": [{"kind": str, "path": str, "missing": str,
                                               "original": str, "excluded": bool,
                                               "text": str}]},
    "biggest_kept_dirs": [DIR_SIZE],
    "biggest_removed_dirs": [DIR_SIZE],
    "dirs": [{"path": str, "kept": int, "removed": int}],
    "warnings": [str],
    "artifacts_dir": str,
    "timings": Map(float),
    "index": {"reader": str, "why": str, "cache": str, "cache_file": str, "entries": int},
}


def _check(value, spec, where: str, seen: set[int]) -> None:
    """`value` as `spec` says; the id of every object spec met is added to `seen`."""
    if isinstance(spec, Opt):
        if value is None:
            return
        spec = spec.spec
    if isinstance(spec, dict):
        assert isinstance(value, dict) and list(value) == list(spec), (where, value)
        seen.add(id(spec))
        for key, inner in spec.items():
            _check(value[key], inner, f"{where}.{key}", seen)
    elif isinstance(spec, list):
        assert isinstance(value, list), (where, value)
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]", seen)
    elif isinstance(spec, Map):
        assert isinstance(value, dict), (where, value)
        for key, item in value.items():
            _check(item, spec.value, f"{where}.{key}", seen)
    elif isinstance(spec, str):
        assert value == spec, (where, value)
    else:  # a JSON scalar; a bool is no number here
        assert isinstance(value, spec) and (spec is bool or not isinstance(value, bool)), \
            (where, value, spec)


def _objects(spec, where: str = "report"):
    """Every object spec under `spec`, with where it first stands."""
    if isinstance(spec, Opt):
        yield from _objects(spec.spec, where)
    elif isinstance(spec, dict):
        yield where, spec
        for key, inner in spec.items():
            yield from _objects(inner, f"{where}.{key}")
    elif isinstance(spec, list):
        yield from _objects(spec[0], f"{where}[]")


def test_every_key_of_every_object_of_real_reports(build):
    seen: set[int] = set()
    for case in RUNS:
        b = build(case)
        assert b.report, b.run.stderr  # a report was written
        _check(b.report, REPORT, case, seen)
    assert [where for where, spec in _objects(REPORT) if id(spec) not in seen] == []


def test_the_counts_are_by_outcome(build):
    counts = build("jsonapi-plain").report["probe"]["counts"]
    assert list(counts) == ["2xx", "3xx", "4xx", "5xx", "unsupported", "error"]


ERROR = {
    "schema": "minify.error/v1",
    "command": "build",
    "error": {"exit_code": int, "exit_name": str, "message": str, "detail": str},
    "report": Opt(REPORT),
}


@pytest.mark.parametrize("case,code,name", [
    ("python-broken", 7, "verify"),  # after the report was made: it is carried
    ("oneshot-exec-fails", 6, "probe"),  # before: null
])
def test_the_json_document_of_a_failed_build(build, case, code, name):
    """With --json a failed build still prints one JSON document on stdout: the error as
    stderr says it, its exit code and name, and the report when one was made."""
    b = build(case)
    assert b.run.code == code, b.run.stderr
    doc = json.loads(b.run.stdout)  # stdout is the document and nothing else
    _check(doc, ERROR, case, set())
    assert (doc["error"]["exit_code"], doc["error"]["exit_name"]) == (code, name)
    assert b.error_line == f"minify: error: {doc['error']['message']}"
    assert doc["error"]["detail"] and doc["error"]["detail"] in b.run.stderr
    assert doc["report"] == (b.report if code == 7 else None)

"""CI runners in miniature, to run this repository's CI files on this machine.

GitHub cannot run here, nor GitLab; what they do with a composite action or a job's
script is small and documented, so it is modelled here and nothing else is:

- `run_action`: the composite steps of an `action.yml` the way the GitHub runner runs
  them: `${{ inputs.* }}` (the caller's `with:` or the input's default), `github.*`,
  `runner.*` and `steps.<id>.outputs.*` expressions substituted in `run:`, `env:` and
  the outputs' `value:`; `if:` (success(), failure(), always()); each `shell: bash`
  step as `bash --noprofile --norc -eo pipefail FILE` in the workspace, with the step's
  `env:` over the runner's variables (GITHUB_OUTPUT a fresh file per step, parsed as
  `name=value` and `name<<DELIMITER` blocks; GITHUB_STEP_SUMMARY, GITHUB_ACTION_PATH,
  GITHUB_WORKSPACE, RUNNER_TEMP). Composite actions get no INPUT_* variables.
- `run_gitlab_job`: a job of a `.gitlab-ci.yml` with `include: local:` and `extends:`
  resolved (hashes merged, other keys replaced, as GitLab merges), `variables:` (global,
  then the template's, then the job's) exported after GitLab's predefined ones and
  expanded once, `before_script` + `script` run by `sh -e` (the job image is Alpine's
  docker CLI, whose shell is sh), `artifacts:reports:dotenv` parsed.

Anything else in the files (a `uses:` step, another expression, another shell) makes
the runner fail, so the test cannot pass on something it does not model.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+")


@dataclass
class StepRun:
    name: str
    code: int
    stdout: str
    stderr: str
    outputs: dict = field(default_factory=dict)


@dataclass
class ActionRun:
    code: int  # the first failed step's exit status, else 0
    outputs: dict
    steps: list
    summary: str


def _lookup(expr: str, context: dict) -> str:
    assert _PATH.fullmatch(expr), f"expression the test runner does not model: {expr!r}"
    head, *rest = expr.split(".")
    assert head in context, f"unknown context {head!r} in {expr!r}"
    value = context[head]
    for part in rest:
        if not isinstance(value, dict) or part not in value:
            return ""  # GitHub: a missing property is null, rendered as ''
        value = value[part]
    return "" if value is None else str(value)


def substitute(text: str, context: dict) -> str:
    return _EXPR.sub(lambda m: _lookup(m.group(1), context), text)


def parse_github_output(text: str) -> dict:
    """GITHUB_OUTPUT / GITHUB_ENV file syntax: `name=value` or a `name<<DELIM` block."""
    out, lines, i = {}, text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            value = []
            while lines[i] != delim:
                value.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(value)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def _should_run(condition: str, failed: bool) -> bool:
    cond = condition.strip()
    if cond.startswith("${{") and cond.endswith("}}"):
        cond = cond[3:-2].strip()
    known = {"success()": not failed, "failure()": failed, "always()": True,
             "!cancelled()": True}
    assert cond in known, f"if: the test runner does not model {condition!r}"
    return known[cond]


def _inputs(spec: dict, given: dict) -> dict:
    unknown = set(given) - set(spec)
    assert not unknown, f"inputs the action does not declare: {sorted(unknown)}"
    values = {}
    for name, meta in spec.items():
        if name in given:
            values[name] = str(given[name])
        else:
            assert not (meta or {}).get("required"), f"required input {name!r} not given"
            values[name] = str((meta or {}).get("default", ""))
    return values


def run_action(action_dir: Path, given: dict, workspace: Path, env: dict,
               timeout: float = 1200) -> ActionRun:
    doc = yaml.safe_load((action_dir / "action.yml").read_text())
    assert doc["runs"]["using"] == "composite"
    temp = workspace / "_runner_temp"
    temp.mkdir(exist_ok=True)
    summary = temp / "step_summary.md"
    summary.write_text("")  # this run's steps' summary (GitHub: one file per step)
    context = {"inputs": _inputs(doc.get("inputs") or {}, given),
               "github": {"action_path": str(action_dir), "workspace": str(workspace)},
               "runner": {"temp": str(temp), "os": "Linux", "arch": "X64"}, "steps": {}}
    steps, failed_code = [], 0
    for i, step in enumerate(doc["runs"]["steps"]):
        assert "uses" not in step, "the test runner runs only `run:` steps"
        if not _should_run(str(step.get("if", "success()")), failed_code != 0):
            continue
        assert step.get("shell") == "bash", "the test runner models `shell: bash` only"
        script = temp / f"step-{i}.sh"
        script.write_text(substitute(step["run"], context))
        output = temp / f"output-{i}"
        output.write_text("")  # a fresh file per step
        step_env = {**env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
                    "GITHUB_ACTION_PATH": str(action_dir), "GITHUB_WORKSPACE": str(workspace),
                    "RUNNER_TEMP": str(temp), "GITHUB_ACTIONS": "true", "CI": "true",
                    **{k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()}}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=workspace, env=step_env, capture_output=True, text=True,
                              timeout=timeout)
        outputs = parse_github_output(output.read_text())
        steps.append(StepRun(step.get("name", ""), proc.returncode, proc.stdout, proc.stderr,
                             outputs))
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": outputs}
        if proc.returncode != 0 and not failed_code:
            failed_code = proc.returncode
    outputs = {name: substitute(str(meta["value"]), context)
               for name, meta in (doc.get("outputs") or {}).items()}
    return ActionRun(failed_code, outputs, steps, summary.read_text())


# -- GitLab ----------------------------------------------------------------------------


@dataclass
class JobRun:
    code: int
    stdout: str
    stderr: str
    job: dict
    dotenv: dict


def _merge(base: dict, over: dict) -> dict:
    """GitLab's `extends` merge: hashes deep-merged, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_gitlab_ci(project: Path, file: str = ".gitlab-ci.yml") -> dict:
    doc = yaml.safe_load((project / file).read_text())
    includes = doc.pop("include", [])
    merged: dict = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        assert set(inc) == {"local"}, f"the test runner models include: local only: {inc}"
        merged = _merge(merged, yaml.safe_load((project / inc["local"].lstrip("/")).read_text()))
    return _merge(merged, doc)


def _resolve(doc: dict, name: str) -> dict:
    job = dict(doc[name])
    parents = job.pop("extends", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        job = _merge(_resolve(doc, parent), job)
    return job


def _expand(value: str, env: dict) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                  lambda m: env.get(m.group(1), m.group(0)), value)


def _lines(value) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def run_gitlab_job(project: Path, job_name: str, predefined: dict, env: dict,
                   timeout: float = 1200) -> JobRun:
    doc = load_gitlab_ci(project)
    job = _resolve(doc, job_name)
    variables = {**predefined}
    for scope in (doc.get("variables") or {}, job.get("variables") or {}):
        for key, value in scope.items():
            value = value.get("value", "") if isinstance(value, dict) else value
            variables[key] = _expand(str(value), variables)
    script = "\n".join([*_lines(job.get("before_script")), *_lines(job.get("script"))])
    proc = subprocess.run(["sh", "-e", "-c", script], cwd=project,
                          env={**env, **variables}, capture_output=True, text=True,
                          timeout=timeout)
    dotenv = {}
    report = ((job.get("artifacts") or {}).get("reports") or {}).get("dotenv")
    if report and (project / report).exists():
        dotenv = parse_github_output((project / report).read_text())
    return JobRun(proc.returncode, proc.stdout, proc.stderr, job, dotenv)

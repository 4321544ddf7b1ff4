"""Dockerfile from the image history, and a user's Dockerfile mapped to the layers.

The history records each step's `created_by` in the legacy builder's form
(`/bin/sh -c #(nop)  ENV A=b`, `|1 ARG=v /bin/sh -c CMD`) or BuildKit's
(`RUN /bin/sh -c CMD # buildkit`); both become Dockerfile instructions. A given
Dockerfile is split into instructions (continuations, comments, heredocs) and its last
stage is aligned with the image's own history steps, so a finding can name its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Step", "Instruction", "history_steps", "instruction_text", "reconstruct",
           "parse_dockerfile", "align", "render_instruction"]


@dataclass(frozen=True)
class Step:
    """One history entry: its instruction and the layer it made (None when empty)."""

    index: int
    instruction: str  # e.g. "RUN apt-get update"
    layer: int | None
    comment: str = ""


@dataclass(frozen=True)
class Instruction:
    """One instruction of a Dockerfile, with the lines it spans (1-based)."""

    keyword: str
    args: str
    line: int
    end_line: int
    stage: int


_NOP = re.compile(r"^/bin/sh -c #\(nop\)\s+")
_ARGS_PREFIX = re.compile(r"^\|\d+ (?:\S+=\S* )*")
# The legacy builder names sources by content hash (`file:<sha256>`): kept as is.
_COPY_HASH = re.compile(r"^(COPY|ADD)\s+(\S+) in (\S+)\s*$")
_GO_LIST = re.compile(r'^(CMD|ENTRYPOINT|SHELL|HEALTHCHECK CMD|VOLUME)\s+\[(.*)\]\s*$')


def _go_list(body: str) -> list[str] | None:
    """Docker's `["a" "b"]` (Go's %q of each word) as a list, or None."""
    words = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    if re.sub(r'"((?:[^"\\]|\\.)*)"', "", body).strip():
        return None
    try:
        return [json.loads(f'"{w}"') for w in words]
    except ValueError:
        return None


def instruction_text(created_by: str) -> str:
    s = created_by.strip()
    if not s:
        return ""
    if s.endswith("# buildkit"):
        s = s[: -len("# buildkit")].rstrip()
        if s.startswith("RUN /bin/sh -c "):
            return "RUN " + s[len("RUN /bin/sh -c "):]
        return s
    s = _ARGS_PREFIX.sub("", s)
    if _NOP.match(s):
        body = _NOP.sub("", s)
        m = _COPY_HASH.match(body)
        if m:
            return f"{m.group(1)} {m.group(2)} {m.group(3)}"
        m = _GO_LIST.match(body)
        if m:
            words = _go_list(m.group(2))
            if words is not None:
                return f"{m.group(1)} {json.dumps(words)}"
        m = re.match(r"^EXPOSE map\[(.*)\]$", body)
        if m:
            return "EXPOSE " + " ".join(p.split(":")[0] for p in m.group(1).split())
        return body
    if s.startswith("/bin/sh -c "):
        return "RUN " + s[len("/bin/sh -c "):]
    if re.match(r"^[A-Z]+ ", s):
        return s
    return "RUN " + s


def history_steps(history: Sequence[Mapping]) -> list[Step]:
    steps, layer = [], 0
    for i, h in enumerate(history):
        empty = bool(h.get("empty_layer"))
        steps.append(Step(i, instruction_text(str(h.get("created_by") or "")),
                          None if empty else layer, str(h.get("comment") or "")))
        layer += 0 if empty else 1
    return steps


def render_instruction(text: str) -> str:
    """A RUN's `&&` chain on continuation lines, as people write it."""
    if not text.startswith("RUN "):
        return text
    parts = re.split(r"\s+&&\s+", text[4:].strip())
    return "RUN " + " \\\n    && ".join(parts)


def reconstruct(steps: Sequence[Step], base_image: str, base_history: int) -> str:
    lines = []
    if base_image:
        lines.append(f"FROM {base_image}")
    else:
        lines.append("FROM scratch")
    for step in steps[base_history:]:
        if not step.instruction:
            if step.layer is not None:
                lines.append(f"# layer {step.layer}: {step.comment or 'no history'}")
            continue
        lines.append(render_instruction(step.instruction))
    return "\n".join(lines) + "\n"


# ---- a user's Dockerfile ----

def _logical_lines(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, text) of each instruction, continuations joined."""
    escape = "\\"
    m = re.match(r"\s*#\s*escape\s*=\s*(\S)", text)
    if m:
        escape = m.group(1)
    out: list[tuple[int, int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start, line = i, lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = []
        while line.rstrip().endswith(escape) and i <= len(lines):
            parts.append(line.rstrip()[:-1])
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                line = ""
                break
            line = lines[i]
            i += 1
        parts.append(line)
        joined = "".join(parts)
        heredoc = re.search(r"<<-?\s*[\"']?(\w+)[\"']?", joined)
        if heredoc and not joined.lstrip().upper().startswith("FROM"):
            body = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            joined += "\n" + "\n".join(body)
        out.append((start + 1, i, joined))
    return out


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions, stage = [], -1
    for first, last, line in _logical_lines(text):
        keyword, _, args = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), first, last, max(stage, 0)))
    return instructions


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _score(step: Step, ins: Instruction) -> int:
    keyword, _, args = step.instruction.partition(" ")
    if keyword != ins.keyword:
        return 0
    if keyword in ("COPY", "ADD"):
        dest = ins.args.split()[-1] if ins.args.split() else ""
        return 3 if args.split() and args.split()[-1].rstrip("/") == dest.rstrip("/") else 1
    if keyword == "RUN":
        return 3 if _norm(args) == _norm(ins.args) else 1
    return 3 if _norm(args) == _norm(ins.args) else 2


def align(steps: Sequence[Step], instructions: Sequence[Instruction]) -> dict[int, Instruction]:
    """history index -> Dockerfile instruction, for the image's own steps (after the
    base) against the last stage: the alignment with the best total score."""
    if not instructions:
        return {}
    last = instructions[-1].stage
    stage = [ins for ins in instructions if ins.stage == last and ins.keyword != "FROM"]
    n, m = len(steps), len(stage)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            s = _score(steps[i], stage[j])
            best[i][j] = max(best[i + 1][j], best[i][j + 1],
                             best[i + 1][j + 1] + s if s else 0)
    out: dict[int, Instruction] = {}
    i = j = 0
    while i < n and j < m:
        s = _score(steps[i], stage[j])
        if s and best[i][j] == best[i + 1][j + 1] + s:
            out[steps[i].index] = stage[j]
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return out


def from_line(instructions: Sequence[Instruction]) -> Instruction | None:
    froms = [ins for ins in instructions if ins.keyword == "FROM"]
    return froms[-1] if froms else None

"""Apply the rules to the layers: each finding with its bytes, files, layers and fix.

Pure functions over the layer records, the stacked filesystem and the package
database. A file can belong to several findings (a static library of a -dev
package); `union_bytes` counts each (layer, path) once for the total.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional

from minifier.xray.layers import FILE, LayerScan
from minifier.xray.overlay import Stack
from minifier.xray.packages import PackageDB
from minifier.xray.rules import RULES, Rule, glob_regex

__all__ = ["Finding", "FINDING_IDS", "evaluate_rules", "waste_findings", "layer_count_finding",
           "union_bytes", "MANY_LAYERS"]

MANY_LAYERS = 10  # layers with content above which merging steps is suggested
# Every id a finding can have (--max-finding-bytes ID=SIZE is checked against these).
FINDING_IDS = frozenset({r.id for r in RULES} | {
    "deleted-later", "overwritten-later", "many-layers",
    "base-scratch", "base-runtime", "base-distroless", "base-slim"})
TOP = 5


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    category: str
    bytes: Optional[int]  # None: not measurable here (said in `detail`)
    files: int
    fix: str
    layers: tuple[tuple[int, int], ...] = ()  # (layer index, bytes), bytes of that layer
    packages: tuple[tuple[str, int], ...] = ()  # (package, bytes), biggest first
    paths: tuple[tuple[str, int], ...] = ()  # biggest files (bytes over all versions)
    pairs: tuple[tuple[int, int, int], ...] = ()  # (written in, hidden by, bytes)
    detail: str = ""
    members: frozenset = field(default=frozenset(), compare=False, repr=False)


class _Matcher:
    def __init__(self, rule: Rule, packages: PackageDB) -> None:
        self.regex = glob_regex(rule.paths)
        self.prefixes = tuple(p.split("*", 1)[0] for p in rule.paths)
        self.exclude = glob_regex(rule.exclude)
        owned: set[str] = set()
        if rule.packages and packages.manager:
            names = re.compile("(?:" + "|".join(rule.packages) + r")\Z")
            owned = packages.files_of(p.name for p in packages.packages if names.match(p.name))
        self.owned = owned

    def __call__(self, path: str) -> bool:
        hit = path in self.owned or (
            self.regex is not None and path.startswith(self.prefixes)
            and self.regex.match(path) is not None)
        return hit and not (self.exclude is not None and self.exclude.match(path))


def _top(counter: Counter, n: int = TOP) -> tuple[tuple[str, int], ...]:
    return tuple((k, v) for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
                 if v > 0)


def evaluate_rules(layers: Sequence[LayerScan], packages: PackageDB,
                   rules: Sequence[Rule] = RULES) -> list[Finding]:
    matchers = [(rule, _Matcher(rule, packages)) for rule in rules]
    per_layer = [defaultdict(int) for _ in matchers]
    per_path = [Counter() for _ in matchers]
    members: list[set] = [set() for _ in matchers]
    files = [0] * len(matchers)
    # Most files match no rule: one prefix test and one set lookup rule them out.
    prefixes = tuple(p for _, m in matchers for p in m.prefixes)
    owned = set().union(*(m.owned for _, m in matchers))
    for index, layer in enumerate(layers):
        for e in layer.entries:
            if e.kind != FILE or not (e.path.startswith(prefixes) or e.path in owned):
                continue
            for i, (_, match) in enumerate(matchers):
                if match(e.path):
                    per_layer[i][index] += e.size
                    per_path[i][e.path] += e.size
                    members[i].add((index, e.path))
                    files[i] += 1
    findings = []
    for i, (rule, _) in enumerate(matchers):
        if not files[i]:
            continue
        by_package: Counter = Counter()
        for path, size in per_path[i].items():
            owner = packages.owner(path)
            if owner:
                by_package[owner] += size
        findings.append(Finding(
            id=rule.id, title=rule.title, category=rule.category,
            bytes=sum(per_layer[i].values()), files=files[i], fix=rule.fix,
            layers=tuple(sorted(per_layer[i].items())), packages=_top(by_package, 10),
            paths=_top(per_path[i]), members=frozenset(members[i])))
    return findings


def waste_findings(stack: Stack) -> list[Finding]:
    out = []
    for how, id_, title, fix in (
        ("deleted", "deleted-later", "files created in one layer and deleted in a later one",
         "delete them in the same RUN that creates them (or build in a separate stage): "
         "a later `rm` hides the files but every pull still downloads them"),
        ("overwritten", "overwritten-later", "files replaced by a later layer",
         "give files their final content, owner and mode in the step that creates them "
         "(`COPY --chown/--chmod` instead of a later `RUN chown -R`/`chmod -R`)"),
    ):
        hidden = [s for s in stack.shadowed if s.how == how and s.size > 0]
        if not hidden:
            continue
        layers: Counter = Counter()
        pairs: Counter = Counter()
        paths: Counter = Counter()
        for s in hidden:
            layers[s.layer] += s.size
            pairs[(s.layer, s.by)] += s.size
            paths[s.path] += s.size
        out.append(Finding(
            id=id_, title=title, category="layers", bytes=sum(layers.values()),
            files=len(hidden), fix=fix, layers=tuple(sorted(layers.items())),
            paths=_top(paths), pairs=tuple((a, b, n) for (a, b), n in sorted(pairs.items())),
            members=frozenset((s.layer, s.path) for s in hidden)))
    return out


def layer_count_finding(layers: Sequence[LayerScan], first_own: int) -> Optional[Finding]:
    """More than MANY_LAYERS layers with content: each is one more download and
    extraction on every pull; consecutive RUN steps merge with `&&`."""
    content = [i for i, layer in enumerate(layers) if layer.entries]
    if len(content) <= MANY_LAYERS:
        return None
    own = [i for i in content if i >= first_own]
    return Finding(
        id="many-layers", title=f"{len(content)} layers with content ({len(own)} of them "
        "from this image's own steps)", category="layers", bytes=0, files=0,
        fix="merge consecutive RUN steps with `&&` and COPY directories at once; the bytes "
        "are counted by the other findings, this saves pull round-trips and extractions",
        layers=tuple((i, layers[i].content_bytes) for i in own))


def union_bytes(findings: Iterable[Finding], layers: Sequence[LayerScan]) -> int:
    """Bytes of every (layer, path) any finding covers, each counted once."""
    covered: set = set()
    for f in findings:
        covered |= f.members
    sizes: dict = {}
    for index, layer in enumerate(layers):
        for e in layer.entries:
            if e.kind == FILE and (index, e.path) in covered:
                sizes[(index, e.path)] = e.size
    return sum(sizes.values())

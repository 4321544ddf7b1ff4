"""The package arrows, pinned: which part of minify may import which.

Read with `ast` (nothing is imported), so a new import that breaks the layering fails
here before it blurs the architecture (docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, relative imports made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in (*parts, base) if p)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p)
            for p in (ROOT / package.replace(".", "/")).rglob("*.py")}


def _offending(package: str, allowed) -> list[str]:
    return sorted(f"{path} imports {mod}"
                  for path, mods in _modules(package).items()
                  for mod in mods if not allowed(mod))


def _under(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_probes_import_nothing_of_minifier():
    assert _offending("probes", lambda m: not _under(m, "minifier")) == []


def test_sensor_imports_only_records_and_itself():
    def allowed(mod: str) -> bool:
        return not _under(mod, "minifier") or _under(mod, "minifier.sensor", "minifier.records")
    assert _offending("minifier/sensor", allowed) == []


def test_image_imports_neither_observe_nor_sensor():
    assert _offending("minifier/image", lambda m: not _under(
        m, "minifier.observe", "minifier.sensor", "minifier.output", "minifier.pipeline")) == []


def test_nothing_imports_the_cli():
    everything = {**_modules("minifier"), **_modules("probes")}
    assert sorted(f"{p} imports {m}" for p, mods in everything.items() for m in mods
                  if _under(m, "minifier.cli") and not p.endswith("cli.py")) == []


def test_the_checker_sees_imports():
    # The rules above hold only if imports are found at all: one known arrow must show.
    mods = _imports(ROOT / "minifier" / "sensor" / "tracer.py")
    assert "minifier.records" in mods and "minifier.sensor.launch" in mods


def test_xray_imports_neither_observe_sensor_nor_output():
    # xray reads images; it never runs them, and its report is its own
    assert _offending("minifier/xray", lambda m: not _under(
        m, "minifier.observe", "minifier.sensor", "minifier.output", "minifier.pipeline")) == []

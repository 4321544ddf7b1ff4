"""Read the minified container's output for the errors a missing file causes, and turn
them into `--include-path` hints: the image's paths those errors point at that the output
lacks.

Each language's runtime says "I could not find X" in its own words, and names X its own
way: a shell names a command (found on Docker's default PATH), Perl a module file and the
@INC it searched, Python and Ruby a module or feature (found by its file name in the
image), Java a class (a loose `.class` file, or inside an image's jar). A path written out
in full is taken as it is.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional

from minifier.errors import ImageError
from minifier.records import DEFAULT_PATH

__all__ = ["LOADER_ERRORS", "find_loader_errors", "include_hints"]

# A line of the minified run that says a file is missing. dash: "sh: 1: curl: not found";
# bash: "line 5: gzip: command not found"; Node: "Cannot find module"; Python:
# ModuleNotFoundError, ImportError; Ruby: "cannot load such file -- json (LoadError)";
# Perl: "Can't locate JSON/PP.pm in @INC"; Java: NoClassDefFoundError,
# ClassNotFoundException, "Could not find or load main class"; PHP: "Failed opening
# required", "Unable to load dynamic library".
LOADER_ERRORS = re.compile(
    r"cannot open shared object file|No such file or directory|error while loading shared "
    r"libraries|: not found|: command not found|ModuleNotFoundError|ImportError|"
    r"Cannot find module|cannot load such file|Can't locate \S+\.p[ml] in @INC|"
    r"NoClassDefFoundError|ClassNotFoundException|Could not find or load main class|"
    r"Failed opening required|Unable to load dynamic library"
)

_PATH = re.compile(r"(?<![\w.])(/[\w.@+-]+(?:/[\w.@+-]+)*)")
_NOT_FOUND = re.compile(r"(?:^|[\s:])([\w.+-]+): (?:command )?not found")
_PERL = re.compile(r"Can't locate (\S+\.p[ml]) in @INC.*?\(@INC (?:contains|entries "
                   r"checked): ([^)]*)\)")
_PYTHON = re.compile(r"No module named '?([\w.]+)'?|cannot import name '(\w+)' from '([\w.]+)'")
_NODE = re.compile(r"Cannot find module '((?:\.{1,2}/|[@\w])[\w.@/-]*)'")
_NODE_STACK = re.compile(r"^\s*- (/\S+)$")  # Node's "Require stack:" lines: the requirer first
_NODE_EXTENSIONS = ("", ".js", ".json", ".node", "/index.js")
_RUBY = re.compile(r"cannot load such file -- ([\w./+-]+)")
_JAVA = re.compile(r"(?:NoClassDefFoundError|ClassNotFoundException|Could not find or load "
                   r"main class):? ([\w$./]+)")
_PACKAGE_MARKERS = ("__init__.py", "package.json")
_MAX_JARS = 500  # jars of the image whose table of contents is read, at most
_MAX_CANDIDATES = 5  # files hinted for one named module or class, at most

def find_loader_errors(logs: str, original_logs: str = "") -> list[str]:
    """Loader/interpreter error lines of the minified run that the original run did not print.

    Digits are ignored when comparing, so timestamps and pids do not count as a difference.
    """
    def norm(line: str) -> str:
        return re.sub(r"[0-9]+", "", line).strip()
    known = {norm(line) for line in original_logs.splitlines()}
    return [line for line in logs.splitlines()
            if LOADER_ERRORS.search(line) and norm(line) not in known]


def include_hints(lines: Sequence[str], fs, kept: set[str]) -> list[str]:
    """Paths named in the minified container's errors that the image has but the output
    lacks: the `--include-path` candidates that make a failure actionable."""
    search = _Search(fs, kept)
    hints: dict[str, str] = {}  # what the image resolves it to -> the path as named
    for i, line in enumerate(lines):
        for path in _named(line, fs, search, lines[i + 1:i + 3]):
            final = fs.resolve(path).final
            if final is not None and _missing(final, fs, kept):
                hints.setdefault(final, path)
    return list(hints.values())


def _named(line: str, fs, search: _Search, after: Sequence[str] = ()) -> Iterator[str]:
    """Every path one error line points at, in the image's own spelling; `after`: the
    lines that follow it (where Node names the module that asked for a relative one)."""
    # Perl's @INC list is where it looked, not what it needs.
    yield from _PATH.findall(_PERL.sub("", line))
    for name in _NOT_FOUND.findall(line):  # a command: its file on Docker's default PATH
        yield from _first_existing(fs, (f"{d}/{name}" for d in DEFAULT_PATH.split(":")))
    for module, inc in _PERL.findall(line):  # the first @INC directory that has it
        yield from _first_existing(fs, (posixpath.join(d, module) for d in inc.split()
                                        if d.startswith("/")))
    for module, name, package in _PYTHON.findall(line):
        yield from search.python(module or f"{package}.{name}")
    for package in _NODE.findall(line):
        if package.startswith("."):
            yield from _node_relative(fs, package, after)
        else:
            yield from search.node(package)
    for feature in _RUBY.findall(line):
        yield from search.ruby(feature)
    for name in _JAVA.findall(line):
        yield from search.java(name.replace(".", "/"))


def _node_relative(fs, module: str, after: Sequence[str]) -> list[str]:
    """A relative require ('./drivers/file', '../encodings') from the first module of
    Node's require stack: the file or directory it resolves to, as Node tries them."""
    requirer = next((m.group(1) for line in after if (m := _NODE_STACK.match(line))), None)
    if requirer is None:
        return []
    base = posixpath.normpath(posixpath.join(posixpath.dirname(requirer), module))
    found = _first_existing(fs, (base + ext for ext in _NODE_EXTENSIONS))
    return [base if p.endswith("/index.js") else p for p in found]


def _first_existing(fs, paths: Iterable[str]) -> list[str]:
    """The first of `paths` the image has (as a lookup in that order would find it)."""
    return next(([p] for p in paths if fs.resolve(p).final is not None), [])


def _missing(path: str, fs, kept: set[str]) -> bool:
    """Whether the output lacks `path`; a package directory (one with an `__init__.py` or a
    `package.json`) is judged by that file: the output may hold the directory for
    another file in it and still lack the package."""
    markers = [m for m in (f"{path}/{name}" for name in _PACKAGE_MARKERS) if fs.lookup(m)]
    return any(m not in kept for m in markers) if markers else path not in kept


class _Search:
    """Files found by their name anywhere in the image: the paths are read once, and only
    when an error names a module."""

    def __init__(self, fs, kept: set[str]) -> None:
        self.fs, self.kept = fs, kept
        self._paths: Optional[list[str]] = None

    def matching(self, pattern: str, within: str = "") -> list[str]:
        """Image paths matching `pattern` (at their end) with `within` in them (a
        runtime's own directories: "python", "ruby"), in path order."""
        if self._paths is None:
            self._paths = list(self.fs.paths())
        regex = re.compile(pattern + "$")
        return [p for p in self._paths if within in p and regex.search(p)]

    def python(self, module: str) -> list[str]:
        """A package directory (`.../yaml`), a module file, or an extension module
        (`_yaml.cpython-311-x86_64-linux-gnu.so`)."""
        rel = re.escape("/" + module.replace(".", "/"))
        found = self.matching(rel + r"(?:/__init__\.py|\.py|(?:\.[\w-]+)?\.so)", "python")
        return [p.removesuffix("/__init__.py") for p in found][:_MAX_CANDIDATES]

    def ruby(self, feature: str) -> list[str]:
        rel = re.escape("/" + feature)
        return self.matching(rel + r"\.(?:rb|so)", "ruby")[:_MAX_CANDIDATES]

    def node(self, package: str) -> list[str]:
        """The package's directory in a node_modules or a global Node directory
        (`lodash`, `@scope/pkg`, or a file inside one: `lodash/fp`)."""
        name = "/".join(package.split("/")[:2 if package.startswith("@") else 1])
        # A project's node_modules, or a distribution's global directory (Debian's
        # /usr/share/nodejs, /usr/lib/nodejs; npm -g's /usr/local/lib/node_modules).
        found = self.matching(r"/(?:node_modules|nodejs)" + re.escape(f"/{name}/package.json"))
        return [p.removesuffix("/package.json") for p in found][:_MAX_CANDIDATES]

    def java(self, class_path: str) -> list[str]:
        """A loose class file, else the image's jars that hold the class."""
        entry = class_path + ".class"
        loose = self.matching(re.escape("/" + entry))
        if loose:
            return loose[:_MAX_CANDIDATES]
        jars = [j for j in self.matching(r"\.jar") if j not in self.kept][:_MAX_JARS]
        return [jar for jar in jars if _jar_holds(self.fs, jar, entry)][:_MAX_CANDIDATES]


def _jar_holds(fs, jar: str, entry: str) -> bool:
    """Whether the jar's table of contents (the zip central directory, read alone) lists
    `entry`; False when its bytes cannot be read here (the export stream)."""
    try:
        f = fs.open_content(jar)
        if f is None:
            return False
        with f, zipfile.ZipFile(f) as z:
            return entry in z.NameToInfo
    except (ImageError, OSError, zipfile.BadZipFile, ValueError):
        return False

"""The base image's share, and lighter bases that would serve the app.

The base is found from local images whose layers are the first layers of this one
(the longest such chain wins); without one, from the history (a first layer made by
`docker import`). Lighter bases are inferred from what the image runs: its entrypoint
program, resolved inside the image, read as an ELF header or a `#!` line.
"""

from __future__ import annotations

import posixpath
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from minifier.xray.findings import Finding
from minifier.xray.layers import FILE, SYMLINK, LayerScan
from minifier.xray.overlay import Stack
from minifier.xray.packages import Resolver
from minifier.xray.report import human_size
from minifier.xray.rules import SLIM_EXCLUDES, SLIM_INCLUDES, glob_regex

__all__ = ["BaseCandidate", "BaseInfo", "Program", "find_base", "entry_program", "elf_interp",
           "lighter_bases", "os_release"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOT_ELF, STATIC = "not-elf", ""


@dataclass(frozen=True)
class BaseCandidate:
    """A local image that could be the base: its tags and layer diff ids."""

    ref: str
    diff_ids: tuple[str, ...]
    history: int = 0  # its history entries (to tell its steps from this image's)


@dataclass(frozen=True)
class BaseInfo:
    image: str  # "" when not identified
    method: str  # how it was identified, said in the report
    layers: int  # the first `layers` layers are the base's
    history: int  # the first `history` history entries are the base's
    bytes: int
    share: float


def find_base(diff_ids: Sequence[str], candidates: Sequence[BaseCandidate],
              history: Sequence[Mapping], layers: Sequence[LayerScan]) -> BaseInfo:
    total = sum(layer.content_bytes for layer in layers) or 1
    # A base's layers are this image's first ones; all of them only when this image
    # added steps without content (LABEL, CMD ...): then it has more history entries.
    fitting = [c for c in candidates
               if 0 < len(c.diff_ids) <= len(diff_ids)
               and tuple(diff_ids[:len(c.diff_ids)]) == tuple(c.diff_ids)
               and (len(c.diff_ids) < len(diff_ids) or c.history < len(history))]
    # A tagged image first (an untagged one is a leftover build, not a base anyone
    # chose), then the longest chain, then the one with fewer steps.
    best = max(fitting, default=None, key=lambda c: (
        not c.ref.startswith("sha256:"), len(c.diff_ids), -c.history))
    if best is not None:
        n = len(best.diff_ids)
        size = sum(layer.content_bytes for layer in layers[:n])
        return BaseInfo(best.ref, f"local image {best.ref}: its {n} layer(s) are this "
                        f"image's first", n, best.history, size, size / total)
    first = history[0] if history else {}
    if "Imported from" in str(first.get("comment", "")) and len(layers) > 1:
        size = layers[0].content_bytes
        return BaseInfo("", "the first layer was made by `docker import`", 1, 1, size,
                        size / total)
    return BaseInfo("", "not identified (no local image has this image's first layers)",
                    0, 0, 0, 0.0)


def os_release(captured: Mapping[str, bytes]) -> dict[str, str]:
    data = captured.get("/etc/os-release") or captured.get("/usr/lib/os-release") or b""
    out = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def elf_interp(head: bytes) -> Optional[str]:
    """NOT_ELF, STATIC ("") for an ELF without a program interpreter, or the
    interpreter's path; None when the head is too short to tell."""
    if head[:4] != b"\x7fELF":
        return NOT_ELF
    if len(head) < 64:
        return None
    is64, endian = head[4] == 2, "<" if head[5] == 1 else ">"
    try:
        if is64:
            phoff, = struct.unpack_from(endian + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
        else:
            phoff, = struct.unpack_from(endian + "I", head, 0x1C)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x2A)
        for i in range(phnum):
            at = phoff + i * phentsize
            ptype, = struct.unpack_from(endian + "I", head, at)
            if ptype != 3:  # PT_INTERP
                continue
            if is64:
                offset, = struct.unpack_from(endian + "Q", head, at + 8)
                size, = struct.unpack_from(endian + "Q", head, at + 32)
            else:
                offset, size = struct.unpack_from(endian + "II", head, at + 4)[0], \
                    struct.unpack_from(endian + "I", head, at + 16)[0]
            if offset + size > len(head):
                return None
            return head[offset:offset + size].rstrip(b"\x00").decode("utf-8", "replace")
    except struct.error:
        return None
    return STATIC


@dataclass(frozen=True)
class Program:
    """The program the image runs, as found inside it."""

    argv0: str
    path: str  # resolved inside the image ("" when not found)
    interp: Optional[str]  # see elf_interp
    shebang: str  # the `#!` line's program ("" when none)


def entry_program(config: Mapping, stack: Stack, heads: Mapping[str, bytes]) -> Program:
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not argv:
        return Program("", "", None, "")
    argv0 = str(argv[0])
    view = stack.view
    links = {p: v.entry.link for p, v in view.items() if v.entry.kind == SYMLINK}
    resolve = Resolver(links)
    env = [str(e) for e in config.get("Env") or []]
    path_var = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    dirs = [""] if argv0.startswith("/") else [d for d in path_var.split(":") if d]
    for d in dirs:
        found = _follow(posixpath.join("/", d, argv0) if d else argv0, view, resolve)
        if found:
            head = heads.get(found, b"")
            shebang = ""
            if head.startswith(b"#!"):
                words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
                if words and posixpath.basename(words[0]) == "env" and len(words) > 1:
                    words = words[1:]
                shebang = words[0] if words else ""
            return Program(argv0, found, elf_interp(head) if head else None, shebang)
    return Program(argv0, "", None, "")


def _follow(path: str, view: Mapping, resolve: Resolver) -> str:
    for _ in range(40):
        path = resolve.file(posixpath.normpath(path))
        placed = view.get(path)
        if placed is None:
            return ""
        if placed.entry.kind != SYMLINK:
            return path
        path = posixpath.join(posixpath.dirname(path), placed.entry.link)
    return ""


_RUNTIMES = (
    ("python", "python:3-slim, or gcr.io/distroless/python3-debian12"),
    ("node", "node:<version>-slim, or gcr.io/distroless/nodejs<version>-debian12"),
    ("java", "a JRE-only base (eclipse-temurin:<version>-jre), or "
             "gcr.io/distroless/java<version>-debian12"),
)


def _runtime(program: Program) -> str:
    name = posixpath.basename(program.shebang or program.path or program.argv0)
    for prefix, bases in _RUNTIMES:
        if name.startswith(prefix):
            return bases
    return ""


def _base_files(layers: Sequence[LayerScan], count: int, slim_only: bool = False) -> dict:
    """(layer, path) -> size of the base layers' files (only those Debian's slim
    variant leaves out, with slim_only)."""
    regex, keep = glob_regex(SLIM_EXCLUDES), glob_regex(SLIM_INCLUDES)
    return {(i, e.path): e.size for i in range(count) for e in layers[i].entries
            if e.kind == FILE and (not slim_only or (regex.match(e.path)
                                                     and not keep.match(e.path)))}


def lighter_bases(base: BaseInfo, program: Program, release: Mapping[str, str],
                  layers: Sequence[LayerScan]) -> list[Finding]:
    """Findings for bases that would serve: bytes where they are exact, else None."""
    if not base.layers:
        return []
    base_layers = tuple((i, layers[i].content_bytes) for i in range(base.layers))
    out = []
    if program.path and program.interp == STATIC and not program.shebang:
        files = _base_files(layers, base.layers)
        out.append(Finding(
            id="base-scratch", title="a static binary on a full base image", category="base",
            bytes=base.bytes, files=len(files), members=frozenset(files),
            fix="`FROM scratch` and COPY the binary (plus CA certificates or tzdata if it "
                "reads them)", layers=base_layers,
            detail=f"the entrypoint {program.path} is a static ELF executable (no program "
                   "interpreter): the base's files are not needed to run it"))
        return out
    runtime = _runtime(program)
    if runtime:
        out.append(Finding(
            id="base-runtime", title="a language runtime on a general-purpose base",
            category="base", bytes=None, files=0, fix=f"a runtime-only base: {runtime}",
            layers=base_layers,
            detail=f"the entrypoint runs {posixpath.basename(program.shebang or program.path)}"
                   f"; saving not measured here (the base's share is "
                   f"{human_size(base.bytes)})"))
    elif program.interp not in (None, NOT_ELF, STATIC):
        libc = "musl" if "musl" in program.interp else "glibc"
        suggestion = ("alpine" if libc == "musl" else
                      "gcr.io/distroless/base-debian12 (or cc-debian12 for C++)")
        out.append(Finding(
            id="base-distroless", title="a dynamically linked binary on a full base image",
            category="base", bytes=None, files=0,
            fix=f"a base with only the C library and its peers: {suggestion}",
            layers=base_layers,
            detail=f"the entrypoint {program.path} is an ELF executable linked against {libc} "
                   f"({program.interp}); saving not measured here (the base's share is "
                   f"{human_size(base.bytes)})"))
    if release.get("ID") == "debian" and release.get("VERSION_CODENAME"):
        slim = _base_files(layers, base.layers, slim_only=True)
        if slim:
            out.append(Finding(
                id="base-slim", title="the full Debian base instead of its -slim variant",
                category="base", bytes=sum(slim.values()), files=len(slim),
                members=frozenset(slim),
                fix=f"FROM debian:{release['VERSION_CODENAME']}-slim",
                layers=base_layers,
                detail="the slim variant leaves out docs, man and info pages and translations "
                       "(dpkg path-exclude, as debuerreotype's slimify lists them): these are "
                       "the base layers' bytes of those files"))
    return out

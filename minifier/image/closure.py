"""The closure of the accessed paths over the image filesystem: what the output keeps.

Starting from the paths the app touched, `plan` adds everything needed for them to work
exactly as in the original image (parents, symlinks on the way, hard links, ELF
interpreters and libraries, `#!` interpreters, runtime files, CA certificates, the
entrypoint, user keep-lists), records each path's reasons, then applies excludes last.
ELF contents come from extra streaming passes over the ORIGINAL image's tar stream.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterable
from typing import IO, Optional

from minifier.errors import ImageError, UsageError
from minifier.image.elfdeps import ELF_MAGIC, ElfInfo, elf_info, load_ld_cache, resolve_needed
from minifier.image.imagefs import PLACEHOLDERS, ImageFS, iter_members, normalize
from minifier.image.source import ImageSource
from minifier.options import KeepOptions
from minifier.records import DEFAULT_PATH, BuildPlan, ImageInfo, KeptFile

__all__ = ["plan", "glob_to_regex", "which"]

CERT_PATHS = (
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
    "/etc/pki",
    "/etc/ssl/cert.pem",
    "/etc/ca-certificates",
)
RUNTIME_FILES = ("/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/nsswitch.conf")
SHELL_TOOLS = ("ls", "cat", "echo", "env", "mkdir", "rm", "cp", "mv", "ps", "grep", "sed")
_SPOOL_MAX = 16 << 20


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`**` crosses "/" (and `/**/` matches zero or more dirs); `*` and `?` do not."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if i < n and pattern[i] == "/":
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _env_value(env: Iterable[str], name: str) -> Optional[str]:
    value = None
    for item in env:
        k, sep, v = item.partition("=")
        if sep and k == name:
            value = v  # the last definition wins, as with docker run -e over Config.Env
    return value


def which(fs: ImageFS, name: str, env: Iterable[str] = (), workdir: str = "/") -> Optional[str]:
    """The image path an exec of `name` would run (PATH search inside the image)."""
    if "/" in name:
        path = normalize(posixpath.join(workdir or "/", name))
        return path if fs.resolve(path).final is not None else None
    for d in (_env_value(env, "PATH") or DEFAULT_PATH).split(":"):
        if not d.startswith("/"):
            continue
        cand = normalize(posixpath.join(d, name))
        final = fs.resolve(cand).final
        e = fs.lookup(final) if final else None
        if e is not None and e.type in ("file", "hardlink") and e.mode & 0o111:
            return cand
    return None


class _Closure:
    """Mutable state of one closure computation; `plan` is the public face."""

    def __init__(self, fs: ImageFS, image: ImageInfo, keep: KeepOptions, source: ImageSource):
        self.fs, self.image, self.keep, self.source = fs, image, keep, source
        self.env = tuple(image.env) + tuple(keep.env)
        self.reasons: dict[str, list[str]] = {}
        self.warnings: list[str] = []
        self.scripts: list[str] = []
        self.elf_wanted: dict[str, set[str]] = {}  # content path -> kept paths using it
        self.elf_infos: dict[str, Optional[ElfInfo]] = {}  # content path -> ElfInfo | None
        self.elf_done: set[str] = set()
        self.ld_cache = load_ld_cache(fs)

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def add(self, path: str, reason: str) -> None:
        """Keep exactly this path (no symlink following) and its parent directories."""
        e = self.fs.lookup(path)
        if path == "/" or (e is not None and e.artefact and path not in PLACEHOLDERS):
            return
        reasons = self.reasons.setdefault(path, [])
        if reason in reasons:
            return
        new = not reasons
        reasons.append(reason)
        parent = posixpath.dirname(path)
        if parent != "/":
            self.add(parent, "parent")
        if e is None or not new:
            return
        if e.type == "hardlink":
            reasons.append("hardlink")
        if e.type in ("file", "hardlink"):
            head = self.fs.head(path)
            if head.startswith(ELF_MAGIC):
                self.elf_wanted.setdefault(self.fs.content_path(path), set()).add(path)
            elif head.startswith(b"#!"):
                self.scripts.append(path)

    def keep_path(self, path: str, reason: str) -> Optional[str]:
        """Keep a path as a program would open it: every symlink on the way + the target."""
        res = self.fs.resolve(path)
        for link in res.via:
            self.add(link, "symlink")
        if res.error == "loop":
            self.warn(f"symlink loop resolving {path} (kept the links, no target)")
        if res.final is not None:
            self.add(res.final, reason)
        return res.final

    def keep_existing_ancestor(self, path: str) -> None:
        """A path the app named but the image lacks may be one it creates at run time
        (a pid file, a temp dir): its nearest existing directory must be there for that."""
        parent = posixpath.dirname(path)
        while parent != "/":
            res = self.fs.resolve(parent)
            if res.final is not None:
                entry = self.fs.lookup(res.final)
                if entry is not None and entry.type == "dir":
                    self.keep_path(parent, "parent-of-missing")
                return
            parent = posixpath.dirname(parent)

    def keep_tree(self, path: str, reason: str) -> Optional[str]:
        """Keep a path and, when it is a directory, everything below it."""
        final = self.keep_path(path, reason)
        if final is None:
            return None
        for p in self.fs.walk(final)[1:]:
            e = self.fs.lookup(p)
            if e is None or e.artefact:
                continue
            self.add(p, reason)
            if e.type == "symlink":
                self.keep_path(p, reason)  # a link in the tree must keep working
        return final

    def keep_program(self, name: str, reason: str) -> Optional[str]:
        found = which(self.fs, name, self.env, self.image.workdir)
        return self.keep_path(found, reason) if found else None

    def shebang(self, path: str) -> None:
        line = self.fs.head(path)[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
        parts = line.strip().split(None, 1)
        if not parts:
            return
        interp = normalize(posixpath.join(posixpath.dirname(path), parts[0]))
        if self.keep_path(interp, "shebang") is None:
            self.warn(f"{path}: interpreter {parts[0]} not found in the image")
            return
        if posixpath.basename(interp) == "env" and len(parts) > 1:
            # Linux passes the rest of the line as one argument; `env -S` splits it.
            prog = next((a for a in parts[1].split() if not a.startswith("-") and "=" not in a),
                        None)
            if prog and self.keep_program(prog, "shebang") is None:
                self.warn(f"{path}: {prog} (via env) not found on the image PATH")

    def elf_deps(self, path: str, info: Optional[ElfInfo]) -> None:
        self.elf_done.add(path)
        if info is None:
            return
        if info.interp and self.keep_path(info.interp, "elf-dep") is None:
            self.warn(f"{path}: ELF interpreter {info.interp} not found in the image")
        for lib, found in resolve_needed(self.fs, path, info, self.ld_cache, self.env):
            if found is not None:
                self.keep_path(found, "elf-dep")
            elif not any(posixpath.basename(p) == lib for p in self.reasons):
                # Not on any search path and not kept under that name either (a JVM's
                # libjvm.so is dlopen'ed by full path first, which satisfies the others).
                self.warn(f"{path}: library {lib} not found in the image")

    def pending_elves(self) -> list[tuple[str, str]]:
        return [(c, p) for c, ps in self.elf_wanted.items() for p in sorted(ps)
                if p not in self.elf_done]

    def elf_from_index(self, wanted: Iterable[str]) -> None:
        """Parse the ELF files whose bytes the index pass kept: no export pass for them."""
        for c in sorted(set(wanted)):
            f = self.fs.open_content(c)
            if f is not None:
                with f:
                    self.elf_infos[c] = self._parse(c, f)

    def elf_pass(self) -> None:
        """One streaming pass parsing every wanted ELF member; deps found on the way are
        parsed in the same pass when they come later in the stream."""
        sought = {c for c, _ in self.pending_elves() if c not in self.elf_infos}
        with self.source.open() as stream:
            for tf, ti in iter_members(stream):
                c = normalize(ti.name)
                if c not in self.elf_wanted or c in self.elf_infos or not ti.isfile():
                    continue
                self.elf_infos[c] = self._parse(c, tf.extractfile(ti))
                for p in sorted(self.elf_wanted[c]):
                    self.elf_deps(p, self.elf_infos[c])
        for c in sought:
            if c not in self.elf_infos:  # wanted for the whole pass: it is not in the tar
                self.warn(f"{c}: ELF content not found in the image stream")
                self.elf_infos[c] = None

    def _parse(self, path: str, f: IO[bytes]) -> Optional[ElfInfo]:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as spool:
            shutil.copyfileobj(f, spool)
            spool.seek(0)
            try:
                return elf_info(spool)
            except ImageError as e:
                self.warn(f"{path}: {e.message}")
                return None

    def fixpoint(self) -> None:
        """Alternate shebang and ELF processing until no new program appears."""
        while True:
            while self.scripts:
                self.shebang(self.scripts.pop(0))
            todo = self.pending_elves()
            if not todo:
                return
            self.elf_from_index(c for c, _ in todo if c not in self.elf_infos)
            if any(c not in self.elf_infos for c, _ in todo):
                self.elf_pass()
            for c, p in self.pending_elves():
                self.elf_deps(p, self.elf_infos.get(c))

    def seed_accessed(self, accessed: Iterable[str]) -> bool:
        """Keep the accessed paths; True when any of them is a CA certificate path."""
        certs = False
        for raw in accessed:
            path = normalize(raw)
            final = self.keep_path(path, "accessed")
            if final is None:
                self.keep_existing_ancestor(path)
            certs = certs or any(_under(p, c) for p in (path, final or "") for c in CERT_PATHS)
        return certs

    def seed_runtime(self, creds_used_names: bool) -> None:
        for path in RUNTIME_FILES:
            if self.fs.lookup(path) is not None:
                self.add(path, "runtime")
        if creds_used_names and self.fs.lookup("/etc/passwd") is None:
            self.warn("USER uses a name but the image has no /etc/passwd")
        for path in PLACEHOLDERS:
            self.add(path, "runtime")  # written as empty files: docker mounts over them
        self.add("/tmp", "runtime")  # created 1777 when the image has none

    def seed_requested(self) -> None:
        argv = tuple(self.image.entrypoint) or tuple(self.image.cmd)
        if argv and self.keep_program(argv[0], "entrypoint") is None:
            self.warn(f"entrypoint {argv[0]} not found in the image")
        for p in self.keep.include_paths:
            if self.keep_tree(normalize(posixpath.join(self.image.workdir or "/", p)),
                              "include-path") is None:
                raise UsageError(f"--include-path {p}: no such path in the image")
        for b in self.keep.include_bins:
            if self.keep_program(b, "include-bin") is None:
                raise UsageError(f"--include-bin {b}: not found in the image")
        if self.keep.include_shell:
            if self.keep_path("/bin/sh", "include-shell") is None:
                self.warn("--include-shell: the image has no /bin/sh")
            for tool in SHELL_TOOLS:
                self.keep_program(tool, "include-shell")

    def seed_certs(self) -> None:
        for path in CERT_PATHS:
            if self.fs.resolve(path).final is not None:
                self.keep_tree(path, "certs")

    def result(self) -> BuildPlan:
        excluded = self._exclude()
        kept = []
        for path in sorted(self.reasons):
            kept.append(self._kept_file(path, self.reasons[path]))
        files = [e for p, e in self.fs.entries.items() if p != "/" and not e.artefact]
        return BuildPlan(
            kept=tuple(kept),
            total_files=len(files),
            total_size=sum(e.size for e in files if e.type == "file"),
            excluded=tuple(excluded),
            warnings=tuple(self.warnings),
        )

    def _exclude(self) -> list[str]:
        """Drop kept paths matching an exclude pattern, with everything below them."""
        regexes = [glob_to_regex(p) for p in self.keep.exclude_patterns]
        if not regexes:
            return []
        gone: set[str] = set()
        for path in sorted(self.reasons):
            if posixpath.dirname(path) in gone or any(r.match(path) for r in regexes):
                gone.add(path)
        for path in gone:
            del self.reasons[path]
        return sorted(gone)

    def _kept_file(self, path: str, reasons: list[str]) -> KeptFile:
        e = self.fs.lookup(path)
        if e is None or e.artefact:  # a placeholder the layer writer creates
            kind = "dir" if path == "/tmp" else "file"
            return KeptFile(path, 0, kind, tuple(reasons))
        if e.type == "hardlink":
            if e.linkname in self.reasons:
                return KeptFile(path, 0, "hardlink", tuple(reasons))
            target = self.fs.lookup(e.linkname)
            return KeptFile(path, target.size if target else 0, "file", tuple(reasons))
        return KeptFile(path, e.size if e.type == "file" else 0, e.type, tuple(reasons))


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def plan(
    fs: ImageFS,
    accessed: Iterable[str],
    image: ImageInfo,
    keep: KeepOptions,
    source: ImageSource,
    creds_used_names: bool = False,
) -> BuildPlan:
    """The closure of `accessed` over the image, with reasons; excludes applied last."""
    c = _Closure(fs, image, keep, source)
    certs = c.seed_accessed(accessed)
    c.seed_runtime(creds_used_names)
    c.seed_requested()
    if certs or keep.include_cert_all:
        c.seed_certs()
    c.fixpoint()
    return c.result()

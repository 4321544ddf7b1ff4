"""The closure of the accessed paths over the image filesystem: what the output keeps.

Starting from the paths the app touched, `plan` adds everything needed for them to work
exactly as in the original image (parents, symlinks on the way, hard links, ELF
interpreters and libraries as the image's loader finds them, `#!` interpreters, runtime
files, CA certificates, the entrypoint, user keep-lists), records each path's reasons,
then applies excludes last.

It is a fixpoint: every file added, for whatever reason, is queued and its own needs
followed until nothing new appears, so the result does not depend on the order of the
image's tar stream. ELF files are read from the index (which parsed every ELF member as
it streamed by); one the index could not read is read again by path from the source.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Collection, Iterable
from typing import Optional
from urllib.parse import unquote

from minifier.errors import ImageError, UsageError
from minifier.image.elfdeps import (
    LdCache,
    Search,
    child_search,
    load_ld_cache,
    musl_path_file,
    preload_names,
    resolve_needed,
    root_search,
)
from minifier.image.elffile import ElfInfo, elf_info
from minifier.image.imagefs import PLACEHOLDERS, ImageFS, normalize
from minifier.image.mounts import mount_roots, root_above
from minifier.image.programs import app_env, loaded_objects, path_spellings, shebang, which
from minifier.image.source import ImageSource
from minifier.options import KeepOptions
from minifier.records import BuildPlan, ImageInfo, KeptFile

__all__ = ["plan", "glob_to_regex", "served_dirs"]

CERT_PATHS = (
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
    "/etc/pki",
    "/etc/ssl/cert.pem",
    "/etc/ca-certificates",
)
RUNTIME_FILES = ("/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/nsswitch.conf")
# Where libc ($TZDIR, /etc/localtime), Go (time.LoadLocation: $ZONEINFO, these
# directories, $GOROOT/lib/time/zoneinfo.zip) and Python (zoneinfo.TZPATH) read time
# zones: what --include-zoneinfo keeps.
ZONEINFO_PATHS = ("/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/zoneinfo",
                  "/usr/lib/locale/TZ", "/etc/zoneinfo", "/etc/localtime", "/etc/timezone")
SHELL_TOOLS = ("ls", "cat", "echo", "env", "mkdir", "rm", "cp", "mv", "ps", "grep", "sed")
# A directory kept whole though nobody asked for it by name (a served directory, a
# package) is kept only up to here; a warning names a bigger one.
WHOLE_DIR_MAX_FILES, WHOLE_DIR_MAX_BYTES = 10_000, 100 << 20
# The directory of the package a file belongs to, for --include-packages: a Python
# distribution's top-level package, a Node package (scoped or not), a Ruby gem, a Perl
# module's top-level namespace.
_PACKAGE_ROOTS = (
    re.compile(r"^(.*/(?:site|dist)-packages/[^/]+)/"),
    re.compile(r"^(.*/node_modules/(?:@[^/]+/)?[^/]+)/"),
    re.compile(r"^(/usr/(?:share|lib)/nodejs/(?:@[^/]+/)?[^/]+)/"),
    re.compile(r"^(.*/gems/[^/]+/gems/[^/]+)/"),
    re.compile(r"^(/usr/(?:local/)?(?:share|lib(?:/[^/]+)?)/perl5?(?:/[\d.]+)?/[^/]+)/"),
)
# Never a served directory: keeping one would keep a system tree (a server rooted at /
# serves the whole image).
_NOT_SERVED_DIRS = frozenset({
    "/", "/usr", "/usr/local", "/usr/share", "/usr/local/share", "/usr/lib", "/usr/lib64",
    "/usr/local/lib", "/usr/bin", "/usr/sbin", "/lib", "/lib64", "/bin", "/sbin", "/etc",
    "/var", "/var/lib", "/opt", "/srv", "/home", "/root", "/tmp", "/run"})
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


class _Closure:
    """Mutable state of one closure computation; `plan` is the public face."""

    def __init__(self, fs: ImageFS, image: ImageInfo, keep: KeepOptions, source: ImageSource):
        self.fs, self.image, self.keep, self.source = fs, image, keep, source
        self.env = app_env(image, keep)
        self.workdir = keep.workdir or image.workdir or "/"
        self.reasons: dict[str, list[str]] = {}
        self.warnings: list[str] = []
        # Programs whose needs are still to follow: ("elf", final, opened, search | None)
        # or ("script", path, "", None); an ELF not read yet waits for the next read.
        self.queue: deque[tuple[str, str, str, Optional[Search]]] = deque()
        self.waiting: list[tuple[str, str, str, Optional[Search]]] = []
        self.followed: set[tuple] = set()
        self.accessed_elves: list[str] = []
        self.loaded: dict[str, str] = {}
        self.cache: LdCache = load_ld_cache(fs)
        self.unresolved: dict[tuple[str, str], bool] = {}  # (object, name) -> not found yet
        self.preloaded = False
        # Below these the app sees a bind mount's or a tmpfs's files, not the image's.
        self.hidden = mount_roots(fs, keep.hidden)

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def add(self, path: str, reason: str, follow: bool = True) -> None:
        """Keep exactly this path (no symlink following) and its parent directories; queue
        a new program's needs (unless the caller queues them in its loader's context)."""
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
        if e.type in ("file", "hardlink") and follow:
            if self.fs.elf(path) is not None or self.fs.elf_unread(path):
                self.queue.append(("elf", path, path, None))
            elif e.mode & 0o111 and self.fs.head(path).startswith(b"#!"):
                # Only an executable file's #! line is the kernel's business: a Perl
                # module's `#!perl -w` is never run through it.
                self.queue.append(("script", path, "", None))
            elif self.fs.elf_error(path):
                self.warn(f"{path}: {self.fs.elf_error(path)}")

    def keep_path(self, path: str, reason: str, follow: bool = True) -> Optional[str]:
        """Keep a path as a program would open it: every symlink on the way + the target.
        Nothing below a hidden mount is the image's: the way stops at its mountpoint."""
        if self.hidden and root_above(path, self.hidden):
            return None
        res = self.fs.resolve(path)
        for link in res.via:
            if self.hidden and root_above(link, self.hidden):
                return None  # an image link the mount hides: the mount's own leads on
            self.add(link, "symlink")
        if res.error == "loop":
            self.warn(f"symlink loop resolving {path} (kept the links, no target)")
        if res.final is not None and self.hidden and self._hidden(res.final):
            return None
        if res.final is not None:
            self.add(res.final, reason, follow)
        return res.final

    def _hidden(self, final: str) -> bool:
        """Below a hidden mount, or a file a mount covers (the engine makes that
        mountpoint itself, as it does /etc/hosts); a covered directory is kept, empty."""
        if root_above(final, self.hidden):
            return True
        entry = self.fs.lookup(final) if final in self.hidden else None
        return entry is not None and entry.type != "dir"

    def below_mount(self, path: str) -> bool:
        """Whether `path`, as the app names it, leads below a mount that hides the image."""
        if not self.hidden:
            return False
        res = self.fs.resolve(path)
        return any(root_above(p, self.hidden) for p in (path, *res.via, res.final or "/"))

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
            if e is None or e.artefact or self.hidden and root_above(p, self.hidden):
                continue
            self.add(p, reason)
            if e.type == "symlink":
                self.keep_path(p, reason)  # a link in the tree must keep working
        return final

    def keep_program(self, name: str, reason: str) -> Optional[str]:
        """Keep what an exec of `name` runs; for a PATH lookup also every other PATH
        spelling of the same file: Docker's shell form and scripts name programs by those."""
        found = which(self.fs, name, self.env, self.workdir)
        if found is None:
            return None
        final = self.keep_path(found, reason)
        for other in path_spellings(self.fs, name, self.env):
            self.keep_path(other, reason)
        return final

    def shebang(self, path: str) -> None:
        line = shebang(self.fs, path, self.workdir)
        if line is None:
            return
        if self.keep_path(line.path, "shebang") is None:
            # A relative interpreter is looked up from wherever the script is run from:
            # its absence from the working directory alone proves nothing.
            if line.interp.startswith("/") and not self.below_mount(line.path):
                self.warn(f"{path}: interpreter {line.interp} not found in the image")
        elif line.via_env and self.keep_program(line.via_env, "shebang") is None:
            self.warn(f"{path}: {line.via_env} (via env) not found on the image PATH")

    def follow_elf(self, final: str, opened: str, search: Optional[Search]) -> None:
        """Keep what the loader needs to run (or load) the ELF file opened as `opened`."""
        info = self.fs.elf(final)
        if info is None:
            if self.fs.elf_unread(final):
                self.waiting.append(("elf", final, opened, search))
            elif self.fs.elf_error(final):
                self.warn(f"{final}: {self.fs.elf_error(final)}")
            return
        if search is None:
            search = root_search(self.fs, info, self.env, self.workdir, self.cache, self.loaded)
        key = (final, opened, search.musl, search.interp, search.inherited)
        if key in self.followed:
            return
        self.followed.add(key)
        if info.interp:
            self.loader(final, info, search)
        child = child_search(search, opened, info)
        for n in resolve_needed(self.fs, opened, info, self.cache, search):
            # Warned at the end, unless another way of loading this object finds it.
            self.unresolved.setdefault((final, n.name), n.path is None)
            if n.path is None:
                continue
            self.unresolved[(final, n.name)] = False
            for p in (n.path, *n.variants):
                lib = self.keep_path(p, "elf-dep", follow=False)
                if lib is not None:
                    self.queue.append(("elf", lib, p, child))

    def loader(self, final: str, info: ElfInfo, search: Search) -> None:
        """A program's interpreter, and the files its loader reads before any library."""
        if self.keep_path(info.interp, "elf-dep") is None and not self.below_mount(info.interp):
            self.warn(f"{final}: ELF interpreter {info.interp} not found in the image")
        if search.musl:
            path_file = musl_path_file(info.interp)
            if self.fs.resolve(path_file).final is not None:
                self.keep_path(path_file, "loader-config")
            return
        if self.preloaded:
            return
        self.preloaded = True
        if self.fs.resolve("/etc/ld.so.preload").final is not None:
            self.keep_path("/etc/ld.so.preload", "loader-config")
        names = preload_names(self.fs, self.env)
        for n in resolve_needed(self.fs, final, info, self.cache, search, names=names):
            lib = self.keep_path(n.path, "preload", follow=False) if n.path else None
            if lib is None:
                self.warn(f"preloaded library {n.name} not found in the image")
            else:
                self.queue.append(("elf", lib, n.path, child_search(search, final, info)))

    def read_unread(self, paths: Collection[str]) -> None:
        """Complete the index's ELF store by reading these files again by path."""
        wanted = {self.fs.content_path(p) for p in paths if self.fs.elf_unread(p)}
        if not wanted:
            return
        for path, f in self.source.read(wanted):
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as spool:
                shutil.copyfileobj(f, spool)
                spool.seek(0)
                try:
                    self.fs.add_elf(path, elf_info(spool))
                except ImageError as e:
                    self.fs.add_elf(path, e.message)
            wanted.discard(path)
        for path in wanted:
            self.fs.add_elf(path, "ELF content not found in the image stream")

    def fixpoint(self) -> None:
        """Follow every queued program's needs until nothing new appears."""
        self.read_unread(self.accessed_elves)
        self.loaded = loaded_objects(self.fs, self.accessed_elves)
        while self.queue or self.waiting:
            while self.queue:
                kind, path, opened, search = self.queue.popleft()
                if kind == "script":
                    self.shebang(path)
                else:
                    self.follow_elf(path, opened, search)
            if self.waiting:
                self.read_unread([w[1] for w in self.waiting])
                self.queue.extend(self.waiting)
                self.waiting.clear()
        self.keep_dir_symlinks()
        for (final, name), missing in self.unresolved.items():
            if missing:
                self.warn(f"{final}: library {name} not found in the image")

    def keep_dir_symlinks(self) -> None:
        """Top-level links to kept directories (/bin -> usr/bin, /lib64 -> usr/lib64): the
        spellings that programs, scripts and Docker's `/bin/sh -c` use for kept files."""
        for link in self.fs.children("/"):
            e = self.fs.lookup(link)
            if e is None or e.type != "symlink" or e.artefact or link in self.reasons:
                continue
            final = self.fs.resolve(link).final
            target = self.fs.lookup(final) if final else None
            if target is not None and target.type == "dir" and final in self.reasons:
                self.add(link, "dir-symlink")

    def seed_accessed(self, accessed: Iterable[str]) -> bool:
        """Keep the accessed paths; True when any of them is a CA certificate path."""
        certs = False
        for raw in accessed:
            path = normalize(raw)
            final = self.keep_path(path, "accessed")
            if final is None:
                if not self.below_mount(path):
                    self.keep_existing_ancestor(path)
            elif self.fs.elf(final) is not None or self.fs.elf_unread(final):
                self.accessed_elves.append(final)
            certs = certs or any(_under(p, c) for p in (path, final or "") for c in CERT_PATHS)
        return certs

    def seed_runtime(self) -> None:
        for path in RUNTIME_FILES:
            if self.fs.lookup(path) is not None:
                self.add(path, "runtime")
        for path in PLACEHOLDERS:
            self.add(path, "runtime")  # written as empty files: docker mounts over them
        self.add("/tmp", "runtime")  # created 1777 when the image has none

    def seed_mountpoints(self) -> None:
        """Each mountpoint the image has, without what it holds (the engine creates the
        others, in the original as in the output)."""
        for target in self.keep.mountpoints:
            path = normalize(target)
            if self.keep_path(path, "mountpoint", follow=False) is None:
                self.keep_existing_ancestor(path)

    def seed_zoneinfo(self) -> None:
        """--include-zoneinfo: every time zone database the image has."""
        env = dict(e.partition("=")[::2] for e in self.env)
        extra = [env[n] for n in ("ZONEINFO", "TZDIR") if env.get(n, "").startswith("/")]
        if env.get("GOROOT", "").startswith("/"):
            extra.append(posixpath.join(env["GOROOT"], "lib/time/zoneinfo.zip"))
        found = [p for p in (*ZONEINFO_PATHS, *extra)
                 if self.keep_tree(normalize(p), "zoneinfo") is not None]
        if not found:
            self.warn("--include-zoneinfo: the image has no time zone database (looked in "
                      f"{', '.join((*ZONEINFO_PATHS, *extra))})")

    def seed_requested(self) -> None:
        argv = self.keep.argv
        if argv is None:
            argv = tuple(self.image.entrypoint) or tuple(self.image.cmd)
        if argv and self.keep_program(argv[0], "entrypoint") is None and not (
                argv[0].startswith("/") and self.below_mount(argv[0])):
            self.warn(f"entrypoint {argv[0]} not found in the image")
        for p in self.keep.include_paths:
            path = normalize(posixpath.join(self.workdir, p))
            mount = root_above(path, self.hidden) if self.hidden else None
            if mount is not None:
                raise UsageError(f"--include-path {p}: it is below the mount at {mount}, "
                                 "which hides the image's files there")
            if self.keep_tree(path, "include-path") is None:
                raise UsageError(f"--include-path {p}: no such path in the image")
        for b in self.keep.include_bins:
            if self.keep_program(b, "include-bin") is None:
                raise UsageError(f"--include-bin {b}: not found in the image")
        if self.keep.include_shell:
            if self.keep_program("/bin/sh", "include-shell") is None:
                self.warn("--include-shell: the image has no /bin/sh")
            for tool in SHELL_TOOLS:
                self.keep_program(tool, "include-shell")

    def seed_served(self, urls: Iterable[str], accessed: Iterable[str]) -> None:
        """Keep whole each directory a static file server answered from: a page's script
        fetches files no crawler sees (RabbitMQ's UI builds `'js/tmpl/' + name + '.ejs'`,
        Prometheus' graph page loads a template by $.ajax)."""
        files = []
        for p in map(normalize, accessed):
            # As opened: a site's link into a shared tree counts as the site's own path.
            final = self.fs.resolve(p).final
            if final is not None and (e := self.fs.lookup(final)) is not None \
                    and e.type == "file":
                files.append(p)
        for root, url in served_dirs(urls, files).items():
            if root in _NOT_SERVED_DIRS or self.below_mount(root):
                continue
            final = self.fs.resolve(root).final
            if final is not None:
                self.keep_bounded_tree(root, final, "served-dir", f"the app served {url} from it")

    def seed_packages(self, accessed: Iterable[str]) -> None:
        """--include-packages: keep whole each package the app loaded a file from, as a
        framework loads its templates and modules when a page first needs them (Django's
        admin after a login, Express' body encodings for a JSON POST)."""
        roots = sorted({m.group(1) for p in map(normalize, accessed)
                        for rx in _PACKAGE_ROOTS if (m := rx.match(p))})
        for root in roots:
            final = self.fs.resolve(root).final
            entry = self.fs.lookup(final) if final is not None else None
            if entry is None or entry.type != "dir" or self.below_mount(root):
                continue
            self.keep_bounded_tree(root, final, "package", "the app loaded files from it")

    def keep_bounded_tree(self, root: str, final: str, reason: str, why: str) -> None:
        """Keep `root` whole, unless it is too big to keep unasked: then say so."""
        below = self.fs.walk(final)[1:]
        size = sum(e.size for p in below if (e := self.fs.lookup(p)) is not None)
        if len(below) > WHOLE_DIR_MAX_FILES or size > WHOLE_DIR_MAX_BYTES:
            self.warn(f"{root}: {why}, but with {len(below)} entries and {size:,} bytes "
                      f"it is not kept whole (--include-path {root} keeps it)")
            return
        self.keep_tree(root, reason)

    def seed_certs(self) -> None:
        for path in CERT_PATHS:
            if self.fs.resolve(path).final is not None:
                self.keep_tree(path, "certs")

    def result(self) -> BuildPlan:
        excluded = self._exclude()
        kept, placeholders = [], []
        for path in sorted(self.reasons):
            kept_file, placeholder = self._kept_file(path, self.reasons[path])
            kept.append(kept_file)
            if placeholder:
                placeholders.append(path)
        total_files, total_size = self.fs.totals()
        return BuildPlan(
            kept=tuple(kept),
            total_files=total_files,
            total_size=total_size,
            excluded=tuple(excluded),
            warnings=tuple(self.warnings),
            placeholders=tuple(placeholders),
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

    def _kept_file(self, path: str, reasons: list[str]) -> tuple[KeptFile, bool]:
        """The kept path, and whether it is a placeholder (the image does not have it)."""
        e = self.fs.lookup(path)
        if e is None or e.artefact:  # a placeholder the layer writer creates
            # A directory when it holds kept paths: /etc of /etc/hosts in an image that
            # has no /etc (FROM scratch; the export stream showed the container's).
            kind = "dir" if path == "/tmp" or "parent" in reasons else "file"
            return KeptFile(path, 0, kind, tuple(reasons)), True
        if e.type == "hardlink":
            if e.linkname in self.reasons:
                return KeptFile(path, 0, "hardlink", tuple(reasons)), False
            target = self.fs.lookup(e.linkname)
            return KeptFile(path, target.size if target else 0, "file", tuple(reasons)), False
        return KeptFile(path, e.size if e.type == "file" else 0, e.type, tuple(reasons)), False


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def plan(
    fs: ImageFS,
    accessed: Iterable[str],
    image: ImageInfo,
    keep: KeepOptions,
    source: ImageSource,
    served: Iterable[str] = (),
) -> BuildPlan:
    """The closure of `accessed` over the image, with reasons; excludes applied last.
    `served`: the URL paths the app answered with a success (served directories)."""
    accessed = list(accessed)
    c = _Closure(fs, image, keep, source)
    certs = c.seed_accessed(accessed)
    c.seed_runtime()
    c.seed_mountpoints()
    c.seed_requested()
    if keep.include_served_dirs:
        c.seed_served(served, accessed)
    if keep.include_packages:
        c.seed_packages(accessed)
    if keep.include_zoneinfo:
        c.seed_zoneinfo()
    if certs or keep.include_cert_all:
        c.seed_certs()
    c.fixpoint()
    return c.result()


def served_dirs(urls: Iterable[str], files: Iterable[str]) -> dict[str, str]:
    """The directories a static file server answered from, each with a URL path it
    served: for an opened file whose path ends with a served URL's path (at least its
    last two components, or its one component when that names a file with an extension),
    the file's path less that ending. `/static/js/app.js` served from
    `/srv/www/static/js/app.js` gives `/srv/www`."""
    by_name: dict[str, list[list[str]]] = {}
    for f in files:
        parts = f.strip("/").split("/")
        by_name.setdefault(parts[-1], []).append(parts)
    found: dict[str, str] = {}
    for url in urls:
        path = unquote(url.split("?", 1)[0].split("#", 1)[0])
        comps = [c for c in path.split("/") if c]
        matches = []
        for parts in by_name.get(comps[-1], ()) if comps else ():
            k = 0
            while k < min(len(comps), len(parts) - 1) and comps[-1 - k] == parts[-1 - k]:
                k += 1
            if k >= 2 or (k == len(comps) == 1 and "." in comps[0]):
                matches.append((k, "/" + "/".join(parts[:-k])))
        # The longest match: a file opened through the site's link into a shared tree
        # (Prometheus' static/jquery -> /usr/share/javascript/jquery) is also seen at
        # its target, which matches less of the URL.
        best = max((k for k, _ in matches), default=0)
        for k, root in matches:
            if k == best:
                found.setdefault(root, path)
    return found

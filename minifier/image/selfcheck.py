"""The self-check: the planned filesystem, walked before the image is written.

A second opinion on the closure, computed independently of it: for every kept ELF file
its PT_INTERP and each DT_NEEDED (down the whole dependency tree, with the loading chain's
RPATHs), for every kept `#!` script its interpreter, and for every kept symlink its
target are resolved with the loader's and the kernel's rules, once in the original image
and once in the planned one. Whatever the original resolves and the plan does not is a
finding; what the original itself cannot resolve is not (that is the image's own state,
e.g. a library only ever dlopen'ed, or a link into /proc).
"""

from __future__ import annotations

from typing import Optional

from minifier.image.elfdeps import Search, child_search, load_ld_cache, resolve_needed, root_search
from minifier.image.elffile import ELF_MAGIC, ElfInfo
from minifier.image.imagefs import Entry, ImageFS
from minifier.image.mounts import mount_roots, root_above
from minifier.image.programs import app_env, loaded_objects, shebang, which
from minifier.options import KeepOptions
from minifier.records import BuildPlan, Finding, ImageInfo, SelfCheck

__all__ = ["check", "planned_view"]


def planned_view(fs: ImageFS, plan: BuildPlan) -> ImageFS:
    """The original image reduced to the plan (plus what Docker provides at run time)."""
    entries: dict[str, Entry] = {e.path: e for e in fs.artefacts()}
    for k in plan.kept:
        e = fs.lookup(k.path)
        if e is None or e.artefact:  # a placeholder the layer writer creates
            kind = "dir" if k.kind == "dir" else "file"
            e = Entry(k.path, kind, 0o755, 0, 0, "root", "root", 0, 0)
        entries[k.path] = e
    return fs.restricted(entries)


class _Checker:
    def __init__(self, fs: ImageFS, out: ImageFS, plan: BuildPlan, env: tuple[str, ...],
                 workdir: str, hidden: frozenset[str] = frozenset()) -> None:
        self.fs, self.out, self.env, self.workdir = fs, out, env, workdir
        self.hidden = hidden  # mounts that provide what lies below them at run time
        self.excluded = set(plan.excluded)
        self.cache_in, self.cache_out = load_ld_cache(fs), load_ld_cache(out)
        accessed = [k.path for k in plan.kept if "accessed" in k.reasons]
        self.loaded_in = loaded_objects(fs, accessed)
        self.loaded_out = loaded_objects(out, accessed)
        self.seen: set[tuple] = set()
        self.findings: list[Finding] = []

    def finding(self, kind: str, path: str, missing: str, original: str) -> None:
        if self.hidden and (original in self.hidden or root_above(original, self.hidden)):
            return  # the mount there provides it, not the image
        f = Finding(kind, path, missing, original, original in self.excluded)
        if f not in self.findings:
            self.findings.append(f)

    def resolves(self, path: str) -> tuple[Optional[str], Optional[str]]:
        return self.fs.resolve(path).final, self.out.resolve(path).final

    def symlink(self, path: str) -> None:
        before, after = self.resolves(path)
        if before is not None and after is None:
            self.finding("symlink", path, self.fs.lookup(path).linkname, before)

    def script(self, path: str) -> None:
        line = shebang(self.fs, path, self.workdir)
        if line is None:
            return
        before, after = self.resolves(line.path)
        if before is not None and after is None:
            self.finding("interpreter", path, line.interp, before)
        elif before is not None and line.via_env:
            found = which(self.fs, line.via_env, self.env, self.workdir)
            if found and which(self.out, line.via_env, self.env, self.workdir) is None:
                self.finding("interpreter", path, line.via_env,
                             self.fs.resolve(found).final or found)

    def program(self, path: str) -> None:
        info = self.fs.elf(path)
        if info is None:
            return
        if info.interp:
            before, after = self.resolves(info.interp)
            if before is not None and after is None:
                self.finding("interpreter", path, info.interp, before)
        s_in = root_search(self.fs, info, self.env, self.workdir, self.cache_in, self.loaded_in)
        s_out = root_search(self.out, info, self.env, self.workdir, self.cache_out,
                            self.loaded_out)
        self.needs(path, path, info, s_in, s_out)

    def needs(self, final: str, opened: str, info: ElfInfo, s_in: Search, s_out: Search) -> None:
        """Compare the loader's answers for one object's needs, then go down the tree."""
        key = (final, opened, s_in.musl, s_in.interp, s_in.inherited, s_out.inherited)
        if key in self.seen:
            return
        self.seen.add(key)
        before = resolve_needed(self.fs, opened, info, self.cache_in, s_in)
        after = resolve_needed(self.out, opened, info, self.cache_out, s_out)
        c_in, c_out = child_search(s_in, opened, info), child_search(s_out, opened, info)
        for a, b in zip(before, after):
            if a.path is None:
                continue
            if b.path is None:
                self.finding("library", final, a.name, self.fs.resolve(a.path).final or a.path)
                continue
            lib = self.out.resolve(b.path).final
            lib_info = self.fs.elf(lib) if lib else None
            if lib_info is not None:
                self.needs(lib, b.path, lib_info, c_in, c_out)


def check(fs: ImageFS, plan: BuildPlan, image: ImageInfo, keep: KeepOptions) -> SelfCheck:
    """Walk the planned filesystem; findings are what the original resolves and it lacks."""
    out = planned_view(fs, plan)
    c = _Checker(fs, out, plan, app_env(image, keep), keep.workdir or image.workdir or "/",
                 mount_roots(fs, keep.hidden))
    for k in plan.kept:
        if k.kind == "symlink":
            c.symlink(k.path)
        elif k.kind in ("file", "hardlink"):
            head = fs.head(k.path)
            if head.startswith(ELF_MAGIC):
                c.program(k.path)
            elif head.startswith(b"#!") and (fs.lookup(k.path).mode & 0o111):
                c.script(k.path)  # only an executable file is ever run through its #!
    return SelfCheck(tuple(c.findings))


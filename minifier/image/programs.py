"""How a program name becomes a file of the image: PATH lookup in the app's environment,
the other PATH spellings of the same file, `#!` lines, and the ELF objects the app had
loaded (which the loader matches a DT_NEEDED name against)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from minifier.image.elfdeps import env_value
from minifier.image.imagefs import ImageFS, normalize
from minifier.options import KeepOptions
from minifier.records import DEFAULT_PATH, ImageInfo

__all__ = ["Shebang", "app_env", "path_dirs", "which", "path_spellings", "shebang",
           "loaded_objects"]


def app_env(image: ImageInfo, keep: KeepOptions) -> tuple[str, ...]:
    """The app's environment as far as lookups go: the image's Env, then --env."""
    return tuple(image.env) + tuple(keep.env)


def path_dirs(env: Iterable[str]) -> list[str]:
    """The absolute directories of PATH (Docker's default when the image sets none)."""
    return [d for d in (env_value(env, "PATH") or DEFAULT_PATH).split(":") if d.startswith("/")]


def which(fs: ImageFS, name: str, env: Iterable[str] = (), workdir: str = "/") -> Optional[str]:
    """The image path an exec of `name` would run (PATH search inside the image)."""
    if "/" in name:
        path = normalize(posixpath.join(workdir or "/", name))
        return path if fs.resolve(path).final is not None else None
    for d in path_dirs(env):
        cand = normalize(posixpath.join(d, name))
        final = fs.resolve(cand).final
        e = fs.lookup(final) if final else None
        if e is not None and e.type in ("file", "hardlink") and e.mode & 0o111:
            return cand
    return None


def path_spellings(fs: ImageFS, name: str, env: Iterable[str]) -> list[str]:
    """Every PATH spelling of the file `name` runs (`/bin/sh` and `/usr/bin/sh` under
    /bin -> usr/bin); for `sh` also `/bin/sh`, which Docker's shell form names."""
    found = which(fs, name, env)
    final = fs.resolve(found).final if found else None
    if final is None or "/" in name:
        return []
    dirs = path_dirs(env) + (["/bin"] if name == "sh" else [])
    out = []
    for d in dirs:
        cand = normalize(posixpath.join(d, name))
        if cand not in out and fs.resolve(cand).final == final:
            out.append(cand)
    return out


@dataclass(frozen=True)
class Shebang:
    interp: str  # as written on the #! line
    path: str  # that path inside the image (relative ones from the working directory)
    via_env: Optional[str] = None  # the program `#!/usr/bin/env PROG` looks up on PATH


def shebang(fs: ImageFS, path: str, workdir: str = "/") -> Optional[Shebang]:
    """The `#!` line of a script, as the kernel reads it (the first 256 bytes)."""
    head = fs.head(path)
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
    parts = line.strip().split(None, 1)
    if not parts:
        return None
    interp = normalize(posixpath.join(workdir or "/", parts[0]))
    prog = None
    if posixpath.basename(parts[0]) == "env" and len(parts) > 1:
        # Linux passes the rest of the line as one argument; `env -S` splits it.
        prog = next((a for a in parts[1].split() if not a.startswith("-") and "=" not in a),
                    None)
    return Shebang(parts[0], interp, prog)


def loaded_objects(fs: ImageFS, paths: Iterable[str]) -> dict[str, str]:
    """The ELF objects among `paths` (files the app opened) by the name the loader matches
    a DT_NEEDED against: the DT_SONAME, else the path it was loaded by."""
    out: dict[str, str] = {}
    for p in paths:
        info = fs.elf(p)
        if info is not None:
            out.setdefault(info.soname or p, p)
    return out

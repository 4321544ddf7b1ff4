"""Container paths mounted over at run time (--volume, --mount, --tmpfs), as they lie in
the image: the closure keeps each mountpoint and nothing the image has below a mount
that hides it; the self-check does not ask the output for what such a mount provides.

The engine mounts inside the container's root with the image's symlinks followed, so a
target spelled /config where the image has /config -> /etc/app covers /etc/app: both
spellings are roots.
"""

from __future__ import annotations

import posixpath
from typing import Iterable, Optional

from minifier.image.imagefs import ImageFS, normalize

__all__ = ["mount_roots", "root_above"]


def mount_roots(fs: ImageFS, targets: Iterable[str]) -> frozenset[str]:
    """Every target as spelled and as the image's symlinks lead it (its longest existing
    prefix resolved, the rest appended)."""
    roots = set()
    for target in targets:
        path = normalize(target)
        roots.add(path)
        roots.add(_resolved(fs, path))
    roots.discard("/")  # a mount over the root is no mount the closure could honour
    return frozenset(roots)


def _resolved(fs: ImageFS, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts), 0, -1):
        final = fs.resolve("/" + "/".join(parts[:i])).final
        if final is not None:
            return normalize(posixpath.join(final, *parts[i:]))
    return path


def root_above(path: str, roots: frozenset[str]) -> Optional[str]:
    """The root `path` lies strictly below, if any (the root itself is the mountpoint,
    which the image keeps)."""
    parent = posixpath.dirname(path)
    while True:
        if parent in roots:
            return parent
        if parent == "/":
            return None
        parent = posixpath.dirname(parent)

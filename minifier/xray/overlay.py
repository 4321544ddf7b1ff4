"""Stack the layers the way the engine does and note every version a later layer hides.

The result is the image's final filesystem (`view`: path -> the layer its version
comes from and its entry), what each layer added, modified and deleted, and every
`Shadowed` version: a file a later layer deleted (whiteout, opaque directory, a
non-directory over a directory) or overwrote. Those bytes are in the layers every pull
downloads and in no file of the running container.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from minifier.xray.layers import DIR, OPAQUE, WHITEOUT, Entry, LayerScan, parent

__all__ = ["Placed", "Shadowed", "LayerChanges", "Stack", "stack"]


@dataclass(frozen=True)
class Placed:
    layer: int
    entry: Entry


@dataclass(frozen=True)
class Shadowed:
    path: str
    size: int
    layer: int  # where this version was written
    by: int  # the layer that deleted or overwrote it
    how: str  # "deleted" | "overwritten"


@dataclass(frozen=True)
class LayerChanges:
    """Non-directory paths this layer added, modified (a lower version existed) and
    deleted (lower versions it hides), with their bytes."""

    added: int
    modified: int
    deleted: int
    added_bytes: int
    modified_bytes: int
    deleted_bytes: int


@dataclass(frozen=True)
class Stack:
    view: dict  # path -> Placed: the final filesystem
    changes: tuple[LayerChanges, ...]
    shadowed: tuple[Shadowed, ...]

    def files(self) -> Iterable[tuple[str, Placed]]:
        return ((p, v) for p, v in self.view.items() if v.entry.kind != DIR)


class _Tree:
    """The current view with a child index, so a subtree can be dropped quickly. Every
    path is linked to its parent, also when a tar has no member for the parent."""

    def __init__(self) -> None:
        self.view: dict[str, Placed] = {}
        self.children: dict[str, set[str]] = defaultdict(set)
        self._linked: set[str] = set()

    def put(self, path: str, placed: Placed, link: bool = True) -> None:
        self.view[path] = placed
        while link and path != "/" and path not in self._linked:
            self._linked.add(path)
            self.children[parent(path)].add(path)
            path = parent(path)

    def drop(self, path: str) -> list[tuple[str, Placed]]:
        """Remove `path` and everything below it; the removed entries."""
        if path not in self._linked:
            return []
        removed: list[tuple[str, Placed]] = []
        todo = [path]
        while todo:
            p = todo.pop()
            self._linked.discard(p)
            placed = self.view.pop(p, None)
            if placed is not None:
                removed.append((p, placed))
            todo.extend(self.children.pop(p, ()))
        self.children[parent(path)].discard(path)
        return removed

    def below(self, path: str) -> list[str]:
        return list(self.children.get(path, ()))


def _hide(tree: _Tree, path: str, index: int, how: str, shadowed: list[Shadowed]) -> int:
    count = 0
    for p, placed in tree.drop(path):
        if placed.entry.kind != DIR:
            shadowed.append(Shadowed(p, placed.entry.size, placed.layer, index, how))
            count += 1
    return count


def _apply(tree: _Tree, index: int, entries: Sequence[Entry],
           shadowed: list[Shadowed], last: bool) -> LayerChanges:
    start = len(shadowed)
    deleted = 0
    # Whiteouts and opaque markers hide lower layers only, whatever their tar order.
    for e in entries:
        if e.kind == WHITEOUT:
            deleted += _hide(tree, e.path, index, "deleted", shadowed)
        elif e.kind == OPAQUE:
            for child in tree.below(e.path):
                deleted += _hide(tree, child, index, "deleted", shadowed)
    deleted_bytes = sum(s.size for s in shadowed[start:])
    added = modified = added_bytes = modified_bytes = 0
    for e in entries:
        if e.kind in (WHITEOUT, OPAQUE):
            continue
        old = tree.view.get(e.path)
        if old is not None and not (old.entry.kind == DIR and e.kind == DIR):
            # A new version of a file, or a file over a directory (or the reverse):
            # the lower version and anything below it are no longer visible.
            _hide(tree, e.path, index, "overwritten", shadowed)
        # Nothing above the last layer can hide its paths: no need to index them.
        tree.put(e.path, Placed(index, e), link=not last)
        if e.kind == DIR:
            continue
        if old is None:
            added, added_bytes = added + 1, added_bytes + e.size
        else:
            modified, modified_bytes = modified + 1, modified_bytes + e.size
    return LayerChanges(added, modified, deleted, added_bytes, modified_bytes, deleted_bytes)


def stack(layers: Sequence[LayerScan]) -> Stack:
    tree = _Tree()
    shadowed: list[Shadowed] = []
    last = len(layers) - 1
    changes = tuple(_apply(tree, i, layer.entries, shadowed, i == last)
                    for i, layer in enumerate(layers))
    return Stack(view=tree.view, changes=changes, shadowed=tuple(shadowed))

"""dive's wasted-space figures, computed the way dive computes them.

dive (github.com/wagoodman/dive, filetree/efficiency.go) builds one tree per layer from
its tar (whiteouts are nodes named `.wh.NAME`; opaque markers are dropped; a missing
parent becomes a node with an empty payload) and visits the *leaves* of each tree, in
name order, children first. Per path it sums the size seen in every layer where the
path is a leaf (`cumulative`) and keeps the smallest (`minimum`); a whiteout counts 0
when it deleted a file and the size of the whole subtree when it deleted a directory
(looked up in the stack of the lower layers; a whiteout with nothing below stops
the visit of its layer, as in dive). A path seen in two or more layers is an
"inefficiency"; wasted bytes are the sum of their cumulative sizes (every copy,
the surviving one included), efficiency = sum(minimum) / sum(cumulative).
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from minifier.xray.layers import DIR, OPAQUE, WH_PREFIX, WHITEOUT, LayerScan, parent

__all__ = ["DiveFile", "DiveWaste", "dive_waste"]


@dataclass(frozen=True)
class DiveFile:
    path: str
    references: int  # layers in which the path is a leaf
    bytes: int  # cumulative size over those layers


@dataclass(frozen=True)
class DiveWaste:
    efficiency: float
    wasted_bytes: int
    size_bytes: int  # sum of every layer's member sizes
    user_size_bytes: int  # the same without the first layer
    files: tuple[DiveFile, ...]  # inefficient paths, biggest first

    @property
    def user_wasted_percent(self) -> float:
        return self.wasted_bytes / self.user_size_bytes if self.user_size_bytes else 0.0


_EMPTY = (0, False)  # dive's FileInfo{} for a node with no member of its own


def _layer_tree(layer: LayerScan) -> dict[str, tuple[int, bool]]:
    """dive's tree of one layer: node path -> (size, is_dir); whiteouts keep `.wh.`."""
    nodes: dict[str, tuple[int, bool]] = {}
    for e in layer.entries:
        if e.kind == OPAQUE:
            path, payload = e.path, None  # only its parents become nodes
        elif e.kind == WHITEOUT:
            up, name = posixpath.split(e.path)
            path, payload = posixpath.join(up, WH_PREFIX + name), (0, False)
        else:
            path, payload = e.path, (e.size, e.kind == DIR)
        if payload is not None:
            nodes[path] = payload
        up = parent(path) if payload is not None else path
        while up != "/" and up not in nodes:
            nodes[up] = _EMPTY
            up = parent(up)
    return nodes


def _post_order(nodes: dict[str, tuple[int, bool]]) -> Iterator[str]:
    """Children before parents, siblings by name: dive's VisitDepthChildFirst."""
    children: dict[str, list[str]] = defaultdict(list)
    for path in nodes:
        children[parent(path)].append(path)
    stack = [("/", False)]
    while stack:
        path, expanded = stack.pop()
        if expanded:
            if path != "/":
                yield path
            continue
        stack.append((path, True))
        for child in sorted(children.get(path, ()), reverse=True):
            stack.append((child, False))


class _Stacked:
    """dive's stack of the lower layers: payloads by path and a child index."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[int, bool]] = {}
        self.children: dict[str, set[str]] = defaultdict(set)

    def set(self, path: str, payload: tuple[int, bool]) -> None:
        """dive's AddPath: missing parents become empty nodes, the payload goes on path."""
        node = path
        while node != "/" and node not in self.nodes:
            self.nodes[node] = _EMPTY
            self.children[parent(node)].add(node)
            node = parent(node)
        self.nodes[path] = payload

    def subtree(self, path: str) -> Iterator[str]:
        todo = [path]
        while todo:
            p = todo.pop()
            yield p
            todo.extend(self.children.get(p, ()))

    def remove(self, path: str) -> None:
        if path not in self.nodes:
            return
        for p in list(self.subtree(path)):
            self.nodes.pop(p, None)
            self.children.pop(p, None)
        self.children[parent(path)].discard(path)


def _is_whiteout(node: str) -> bool:
    return node.startswith(WH_PREFIX, node.rfind("/") + 1)


def _real(path: str) -> str:
    up, name = posixpath.split(path)
    return posixpath.join(up, name[len(WH_PREFIX):])


def _whiteout_size(lower: _Stacked, path: str) -> int | None:
    node = lower.nodes.get(path)
    if node is None:
        return None
    if not node[1]:
        return 0
    return sum(lower.nodes[p][0] for p in lower.subtree(path))


def dive_waste(layers: Sequence[LayerScan]) -> DiveWaste:
    cumulative: dict[str, int] = {}
    minimum: dict[str, int] = {}
    refs: dict[str, int] = defaultdict(int)
    lower = _Stacked()
    for index, layer in enumerate(layers):
        tree = _layer_tree(layer)
        # Visiting order matters only around whiteouts (a failing one ends the visit,
        # and removals interleave with additions); otherwise any order gives dive's sums.
        has_whiteouts = any(e.kind == WHITEOUT for e in layer.entries)
        order = list(_post_order(tree)) if has_whiteouts else list(tree)
        parents = {parent(p) for p in tree}
        for node in order:
            if node in parents:
                continue  # has children: not a leaf
            is_whiteout = has_whiteouts and _is_whiteout(node)
            path = _real(node) if is_whiteout else node
            cumulative.setdefault(path, 0)
            minimum.setdefault(path, -1)
            size = _whiteout_size(lower, path) if is_whiteout else tree[node][0]
            if size is None:
                break  # dive's visitor fails here and the rest of the layer is skipped
            cumulative[path] += size
            if minimum[path] < 0 or size < minimum[path]:
                minimum[path] = size
            refs[path] += 1
        if index == len(layers) - 1:
            break  # no layer above needs the stack
        for node in order:
            if has_whiteouts and _is_whiteout(node):
                lower.remove(_real(node))
            else:
                lower.set(node, tree[node])
    files = sorted((DiveFile(p, n, cumulative[p]) for p, n in refs.items() if n >= 2),
                   key=lambda f: (-f.bytes, f.path))
    total_min, total_cum = sum(minimum.values()), sum(cumulative.values())
    sizes = [layer.content_bytes for layer in layers]
    return DiveWaste(
        efficiency=total_min / total_cum if total_cum else 1.0,
        wasted_bytes=sum(f.bytes for f in files),
        size_bytes=sum(sizes), user_size_bytes=sum(sizes[1:]), files=tuple(files))

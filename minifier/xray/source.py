"""Layer sources: where an image's layers and config come from, one streaming pass.

`LayerSource.read(policy)` returns the image config and the layers in order, each
reduced to records under the capture policy; here, from `docker save`: `read_saved`
calls `scan(chunks, tar_bytes)` once per distinct layer blob while it streams. `docker save`
works on any engine (also a remote one); a reader of the storage driver's own
directories can implement the same protocol. Nothing is held but what `scan` keeps.
"""

from __future__ import annotations

import itertools
import json
import posixpath
import zlib
from collections.abc import Iterator
from typing import Any, Callable, Protocol

from minifier.errors import EngineError, ImageError
from minifier.image.tarstream import REGULAR, SYMLINK, TarError, TarStream
from minifier.xray.layers import CapturePolicy, LayerScan, SavedImage, scan_layer

__all__ = ["LayerSource", "Scan", "DockerSaveSource", "read_saved"]

# scan(chunks of one layer's tar, the tar's length) -> the layer's records
Scan = Callable[[Iterator, int], LayerScan]
_CHUNK = 1 << 20
_MAX_JSON = 64 << 20
_FILES = (REGULAR, b"\x00", b"7")  # regular members (layer tars, JSON documents)


class LayerSource(Protocol):
    """Gives the image's config and layers, each scanned under the capture policy."""

    def read(self, policy: CapturePolicy) -> SavedImage: ...


def _gunzip(chunks: Iterator[memoryview]) -> Iterator[bytes]:
    inflate = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        out = inflate.decompress(chunk, _CHUNK)
        while out:
            yield out
            out = inflate.decompress(inflate.unconsumed_tail, _CHUNK)
    yield inflate.flush()


def _layer_chunks(tar: TarStream, head: bytes) -> Iterator | None:
    """The bytes of the current member's nested layer tar (gunzipped if need be), or None
    if it is not one."""
    rest = tar.chunks()
    if head[:2] == b"\x1f\x8b":
        return _gunzip(itertools.chain([memoryview(head)], rest))
    if len(head) >= 263 and head[257:262] == b"ustar":
        return itertools.chain([head], rest)
    return None


def read_saved(chunks: Iterator[bytes], scan: Scan) -> SavedImage:
    """Parse a `docker save` stream (the legacy layout and the OCI one both carry a
    manifest.json naming the config and the layers in order)."""
    blobs: dict[str, LayerScan] = {}
    links: dict[str, str] = {}
    documents: dict[str, Any] = {}
    tar = TarStream(chunks)
    for member in tar:
        name = posixpath.normpath(member.name)
        if member.type == SYMLINK:
            links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name),
                                                            member.linkname))
            continue
        if member.type not in _FILES or not member.size:
            continue
        head = tar.read(512)
        if head[:1] in (b"{", b"[") and member.size <= _MAX_JSON:
            try:
                documents[name] = json.loads(head + tar.read())
            except ValueError:
                pass
            continue
        layer = _layer_chunks(tar, head)
        if layer is not None:
            blobs[name] = scan(layer, member.size)
    return _assemble(blobs, links, documents)


def _assemble(blobs: dict[str, LayerScan], links: dict[str, str],
              documents: dict[str, Any]) -> SavedImage:
    manifest = documents.get("manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise ImageError("the saved image has no manifest.json (not a docker save stream)")
    entry = manifest[0]
    config = documents.get(posixpath.normpath(entry.get("Config", "")))
    if not isinstance(config, dict):
        raise ImageError("the saved image's config is missing from the stream")
    layers = []
    for path in entry.get("Layers") or []:
        path = posixpath.normpath(path)
        path = links.get(path, path)
        if path not in blobs:
            raise ImageError(f"layer {path} of the saved image is missing or unreadable")
        layers.append(blobs[path])
    diff_ids = tuple((config.get("rootfs") or {}).get("diff_ids") or ())
    return SavedImage(config=config, layers=tuple(layers), diff_ids=diff_ids)


class DockerSaveSource:
    """`docker save` of one image, streamed from the engine (no file is written)."""

    def __init__(self, client: Any, image_id: str) -> None:
        self.client = client
        self.image_id = image_id

    def read(self, policy: CapturePolicy) -> SavedImage:
        import docker.errors

        try:
            chunks = self.client.api.get_image(self.image_id, chunk_size=_CHUNK)
            return read_saved(chunks, lambda layer, size: scan_layer(layer, size, policy))
        except docker.errors.ImageNotFound as exc:
            raise ImageError(f"image {self.image_id} not found") from exc
        except docker.errors.DockerException as exc:
            raise EngineError(f"docker save of {self.image_id} failed: {exc}") from exc
        except TarError as exc:
            raise ImageError(f"docker save of {self.image_id} is not a readable tar: {exc}") \
                from exc

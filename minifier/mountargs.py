"""`docker run`'s --volume/-v and --mount syntax, and docker-slim's --mount SRC:DST[:OPTS],
parsed as the docker CLI parses them into MountSpec records (pure functions).

What only the engine can decide (whether a bind source exists, a volume driver) is left
to it: its refusal becomes a usage error in its words (runner.py). The engine receives
a --volume as the docker CLI sends `-v` (a bind text) and a --mount KEY=VALUE,... as the
API's Mount object (`api_mount`).
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Optional

from minifier.errors import UsageError
from minifier.options import MountSpec

__all__ = ["parse_volume", "parse_mount", "api_mount", "MOUNT_KEYS"]

# The modes `-v` takes after the container path (the docker CLI's linux parser).
_MODES = frozenset({"rw", "ro", "z", "Z", "nocopy", "consistent", "cached", "delegated",
                    "shared", "rshared", "slave", "rslave", "private", "rprivate"})
_PROPAGATIONS = frozenset({"shared", "rshared", "slave", "rslave", "private", "rprivate"})
# The docker CLI's rule for a local volume name.
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MOUNT_KEYS = ("type", "source", "src", "target", "destination", "dst", "readonly", "ro",
              "bind-propagation", "volume-nocopy", "tmpfs-size", "tmpfs-mode")
_TRUE, _FALSE = frozenset({"1", "true"}), frozenset({"0", "false"})


def _is_mode(text: str) -> bool:
    return bool(text) and all(part in _MODES for part in text.split(","))


def _absolute(path: str, flag: str, text: str) -> str:
    if not path.startswith("/"):
        raise UsageError(f"{flag} {text}: the container path {path!r} is not absolute")
    return posixpath.normpath(path)


def parse_volume(text: str, flag: str = "--volume") -> MountSpec:
    """`-v [SRC:]DST[:MODE]`: SRC an absolute host path (a bind mount; `./x` and `../x`
    are made absolute, as newer docker CLIs do) or a volume name; no SRC: an anonymous
    volume (`/data`, `/data:ro`); MODE comma-separated (ro, rw, nocopy, propagation...)."""
    parts = text.split(":")
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2 and _is_mode(parts[1]):
        source, target, mode = "", parts[0], parts[1]  # an anonymous volume with a mode
    elif len(parts) in (2, 3):
        source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    else:
        raise UsageError(f"{flag} {text}: not [SOURCE:]CONTAINER-PATH[:MODE]")
    if len(parts) > 1 and not parts[0] and not (len(parts) == 2 and _is_mode(parts[1])):
        raise UsageError(f"{flag} {text}: not [SOURCE:]CONTAINER-PATH[:MODE] (empty source)")
    if mode and not _is_mode(mode):
        raise UsageError(f"{flag} {text}: invalid mode {mode!r} (ro, rw, nocopy, z, Z, "
                         "shared, slave, private, ...)")
    target = _absolute(target, flag, text)
    if source.startswith(("./", "../")) or source in (".", ".."):
        source = os.path.abspath(source)
    if source and not source.startswith("/") and not _VOLUME_NAME.match(source):
        raise UsageError(f"{flag} {text}: {source!r} is neither an absolute host path nor "
                         "a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
    modes = set(mode.split(",")) if mode else set()
    kind = "bind" if source.startswith("/") else "volume"
    bind = ":".join(p for p in (source, target, mode) if p)
    return MountSpec(kind=kind, target=target, source=source, read_only="ro" in modes,
                     no_copy="nocopy" in modes,
                     propagation=next(iter(modes & _PROPAGATIONS), ""), bind=bind)


def parse_mount(text: str) -> MountSpec:
    """`--mount type=bind,source=/a,target=/b,readonly` (docker's), or docker-slim's
    `--mount SRC:DST[:MODE]` (read as `-v SRC:DST[:MODE]`, SRC required)."""
    first = text.split(",", 1)[0]
    if "=" not in first or first.partition("=")[0] not in MOUNT_KEYS:
        spec = parse_volume(text, "--mount")
        if not spec.source:
            raise UsageError(f"--mount {text}: not SOURCE:CONTAINER-PATH[:MODE] or "
                             "type=...,source=...,target=...")
        return spec
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key not in MOUNT_KEYS:
            raise UsageError(f"--mount {text}: unknown key {key!r} (minify takes "
                             f"{', '.join(MOUNT_KEYS)})")
        fields[{"src": "source", "destination": "target", "dst": "target",
                "ro": "readonly"}.get(key, key)] = value if sep else ""
    return _from_fields(text, fields)


def _flag(text: str, key: str, value: Optional[str]) -> bool:
    if value is None:
        return False
    if value == "" or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise UsageError(f"--mount {text}: {key}={value} is not true or false")


def _from_fields(text: str, fields: dict[str, str]) -> MountSpec:
    kind = fields.get("type", "volume") or "volume"
    if kind not in ("bind", "volume", "tmpfs"):
        raise UsageError(f"--mount {text}: type {kind!r} is not bind, volume or tmpfs")
    if "target" not in fields:
        raise UsageError(f"--mount {text}: no target (target=CONTAINER-PATH)")
    source = fields.get("source", "")
    if kind == "bind" and not source:
        raise UsageError(f"--mount {text}: a bind mount needs source=HOST-PATH")
    if kind == "tmpfs" and source:
        raise UsageError(f"--mount {text}: a tmpfs takes no source")
    propagation = fields.get("bind-propagation", "")
    if propagation and (kind != "bind" or propagation not in _PROPAGATIONS):
        raise UsageError(f"--mount {text}: bind-propagation={propagation} needs type=bind "
                         f"and one of {', '.join(sorted(_PROPAGATIONS))}")
    return MountSpec(kind=kind, target=_absolute(fields["target"], "--mount", text),
                     source=source, read_only=_flag(text, "readonly", fields.get("readonly")),
                     no_copy=_flag(text, "volume-nocopy", fields.get("volume-nocopy")),
                     propagation=propagation,
                     tmpfs_size=_size(text, fields.get("tmpfs-size")),
                     tmpfs_mode=_mode(text, fields.get("tmpfs-mode")))


def _size(text: str, value: Optional[str]) -> Optional[int]:
    from minifier.dockerargs import parse_memory

    if value is None:
        return None
    try:
        return parse_memory(value)
    except UsageError as exc:
        raise UsageError(f"--mount {text}: tmpfs-size {value!r} is not a size") from exc


def _mode(text: str, value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(value, 8)
    except ValueError as exc:
        raise UsageError(f"--mount {text}: tmpfs-mode {value!r} is not octal") from exc


def api_mount(spec: MountSpec) -> dict:
    """The engine API's Mount object for a --mount KEY=VALUE,... (HostConfig.Mounts)."""
    mount: dict = {"Type": spec.kind, "Target": spec.target, "ReadOnly": spec.read_only}
    if spec.source:
        mount["Source"] = spec.source
    if spec.propagation:
        mount["BindOptions"] = {"Propagation": spec.propagation}
    if spec.no_copy:
        mount["VolumeOptions"] = {"NoCopy": True}
    tmpfs = {k: v for k, v in (("SizeBytes", spec.tmpfs_size), ("Mode", spec.tmpfs_mode))
             if v is not None}
    if tmpfs:
        mount["TmpfsOptions"] = tmpfs
    return mount

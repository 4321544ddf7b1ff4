"""`docker run`'s option syntax, parsed as the docker CLI parses it, into ContainerOptions.

Values the engine itself validates (capability names, the memory minimum, the CPU
range, --security-opt keys) are left to it: its refusal becomes a usage error naming
its reason (runner.py), so minify never holds a second copy of those rules.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from typing import Iterable, Mapping, Optional

from minifier.errors import UsageError
from minifier.mountargs import parse_mount, parse_volume
from minifier.options import ContainerOptions

__all__ = ["container_options", "parse_memory", "parse_cpus", "parse_tmpfs",
           "read_security_opts", "read_env_files", "parse_network", "parse_link"]

# go-units RAMInBytes: a decimal number, an optional binary unit, optional "i" and "b".
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory(text: str) -> int:
    """`--memory 64m` -> bytes, units of 1024 like docker ("64MiB", "1.5g", "512k")."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"--memory: invalid size {text!r} (e.g. 64m, 1g, 512MiB)")
    try:
        value = Decimal(m.group(1))
    except InvalidOperation as exc:
        raise UsageError(f"--memory: invalid size {text!r}") from exc
    return int(value * _UNITS[(m.group(2) or "").lower()])


def parse_cpus(text: str) -> int:
    """`--cpus 1.5` -> NanoCpus, refusing what docker refuses (not a number, too precise)."""
    try:
        nanos = Decimal(text.strip()) * 1_000_000_000
    except InvalidOperation as exc:
        raise UsageError(f"--cpus: invalid number {text!r}") from exc
    if nanos != nanos.to_integral_value():
        raise UsageError(f"--cpus: {text} is too precise (at most 9 decimals)")
    return int(nanos)


def parse_tmpfs(text: str) -> tuple[str, str]:
    """`--tmpfs /run:rw,size=64m` -> ("/run", "rw,size=64m"), like the docker CLI."""
    path, _, options = text.partition(":")
    if not path.startswith("/"):
        raise UsageError(f"--tmpfs: {path!r} is not an absolute path")
    return path, options


def read_security_opts(opts: tuple[str, ...]) -> tuple[str, ...]:
    """--security-opt values as the engine takes them: the docker CLI reads a seccomp
    profile file itself and sends its compacted JSON, so minify does too."""
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
            if not sep:
                raise UsageError(f"--security-opt: invalid value {opt!r} (KEY=VALUE)")
        if key == "seccomp" and value != "unconfined":
            out.append(f"seccomp={_compact_json(value)}")
        else:
            out.append(opt)
    return tuple(out)


def _compact_json(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise UsageError(f"--security-opt: cannot read seccomp profile {path}: "
                         f"{exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"--security-opt: seccomp profile {path} is not JSON: {exc}") from exc
    return json.dumps(data, separators=(",", ":"))


def read_env_files(paths: Iterable[str], env: Iterable[str],
                   host: Optional[Mapping[str, str]] = None) -> tuple[str, ...]:
    """--env-file then --env, as `docker run` reads them: one NAME=value per line (the
    value as it is: no quotes, no trimming), blank lines and `#` lines skipped, a line's
    leading whitespace dropped, a UTF-8 BOM dropped; a NAME alone takes minify's own
    value of NAME and is left out when minify has none (so is a bare --env NAME)."""
    host = os.environ if host is None else host
    out: list[str] = []
    for path in paths:
        out.extend(_env_file(path, host))
    for item in env:
        name, sep, _ = item.partition("=")
        if sep:
            out.append(item)
        elif name in host:
            out.append(f"{name}={host[name]}")
    return tuple(out)


def _env_file(path: str, host: Mapping[str, str]) -> list[str]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise UsageError(f"--env-file {path}: {exc.strerror}") from exc
    out = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"--env-file {path}: line {number} is not UTF-8") from exc
        text = text.removeprefix("\ufeff") if number == 1 else text
        text = text.removesuffix("\r").lstrip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition("=")
        name = name.lstrip(" \t")
        if not name or any(c in name for c in " \t"):
            raise UsageError(f"--env-file {path}: line {number}: {name!r} is not a variable "
                             "name (NAME=value)")
        if sep:
            out.append(f"{name}={value}")
        elif name in host:
            out.append(f"{name}={host[name]}")
    return out


def parse_network(text: Optional[str]) -> Optional[str]:
    """--network NAME|ID (a user-defined network, `bridge`, `none`). `host` and
    `container:X` are refused: minify reaches the app through ports published on
    127.0.0.1 and reads its sockets in its own network namespace, which neither has."""
    if text is None:
        return None
    if not text:
        raise UsageError("--network: no network named")
    if text == "host" or text.startswith("container:"):
        raise UsageError(f"--network {text}: not supported: minify probes the app through "
                         "ports published on 127.0.0.1 and reads its sockets in the "
                         "container's own network namespace (use a user-defined network: "
                         "docker network create NAME)")
    return text


def parse_link(text: str) -> tuple[str, str]:
    """--link NAME[:ALIAS] -> (NAME, ALIAS), ALIAS defaulting to NAME as in docker."""
    name, _, alias = text.partition(":")
    if not name or ":" in alias:
        raise UsageError(f"--link {text}: not CONTAINER[:ALIAS]")
    return name.lstrip("/"), alias or name.lstrip("/")


def container_options(kw: dict) -> ContainerOptions:
    """The options from click's keyword arguments (docker's names)."""
    return ContainerOptions(
        memory=parse_memory(kw["memory"]) if kw["memory"] is not None else None,
        pids_limit=kw["pids_limit"],
        nano_cpus=parse_cpus(kw["cpus"]) if kw["cpus"] is not None else None,
        security_opt=read_security_opts(tuple(kw["security_opt"])),
        cap_add=tuple(kw["cap_add"]), cap_drop=tuple(kw["cap_drop"]),
        read_only=kw["read_only"], tmpfs=tuple(parse_tmpfs(t) for t in kw["tmpfs"]),
        mounts=(*(parse_volume(v) for v in kw["volume"]), *(parse_mount(m) for m in kw["mount"])),
        network=parse_network(kw["network"]), links=tuple(parse_link(x) for x in kw["link"]))

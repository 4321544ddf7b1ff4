"""`docker run`'s option syntax, parsed as the docker CLI parses it, into ContainerOptions.

Values the engine itself validates (capability names, the memory minimum, the CPU
range, --security-opt keys) are left to it: its refusal becomes a usage error naming
its reason (runner.py), so minify never holds a second copy of those rules.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

from minifier.errors import UsageError
from minifier.options import ContainerOptions

__all__ = ["container_options", "parse_memory", "parse_cpus", "parse_tmpfs",
           "read_security_opts"]

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


def container_options(kw: dict) -> ContainerOptions:
    """The options from click's keyword arguments (docker's names)."""
    return ContainerOptions(
        memory=parse_memory(kw["memory"]) if kw["memory"] is not None else None,
        pids_limit=kw["pids_limit"],
        nano_cpus=parse_cpus(kw["cpus"]) if kw["cpus"] is not None else None,
        security_opt=read_security_opts(tuple(kw["security_opt"])),
        cap_add=tuple(kw["cap_add"]), cap_drop=tuple(kw["cap_drop"]),
        read_only=kw["read_only"], tmpfs=tuple(parse_tmpfs(t) for t in kw["tmpfs"]))

"""Parse user-supplied probe specs: probe commands, probe files, exec commands, continue-after."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from typing import Any, Union

from probes.errors import ProbeSpecError
from probes.records import (
    CONTINUE_AFTER_MODES,
    HTTP_METHODS,
    PROTOCOLS,
    ContinueAfter,
    ProbeCommand,
)

__all__ = [
    "parse_probe_cmd",
    "load_command_file",
    "parse_exec_command",
    "load_exec_file",
    "parse_continue_after",
    "parse_ports",
]

PathLike = Union[str, Path]

_COMMAND_FIELDS = (
    "method",
    "resource",
    "port",
    "protocol",
    "headers",
    "body",
    "body_file",
    "username",
    "password",
    "crawl",
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTINUE_FORMS = "probe, timeout:SECONDS, signal, enter, exec"


def parse_probe_cmd(text: str, *, source: str = "probe command") -> ProbeCommand:
    """Parse `[crawl:][proto:][method:]/path`, e.g. `POST:/api` or `crawl:https:GET:/`."""
    where = f"{source} {text!r}"
    rest = text.strip()
    prefixes: list[str] = []
    while rest and not rest.startswith("/"):
        head, sep, tail = rest.partition(":")
        if not sep:
            break
        prefixes.append(head)
        rest = tail
    if not rest.startswith("/"):
        raise ProbeSpecError(f"{where}: expected [crawl:][proto:][method:]/path with a path "
                             "starting with '/'")
    crawl = bool(prefixes) and prefixes[0].lower() == "crawl"
    if crawl:
        prefixes.pop(0)
    protocol = None
    if prefixes and prefixes[0].lower() in PROTOCOLS:
        protocol = prefixes.pop(0).lower()
    method = "GET"
    if prefixes:
        method = prefixes.pop(0).upper()
        if method not in HTTP_METHODS:
            raise ProbeSpecError(f"{where}: {method!r} is not an HTTP method or protocol "
                                 f"(methods: {', '.join(HTTP_METHODS)})")
    if prefixes:
        raise ProbeSpecError(f"{where}: unexpected {':'.join(prefixes)!r} before the path "
                             "(order is crawl:proto:method:/path)")
    return ProbeCommand(method=method, resource=rest, protocol=protocol, crawl=crawl)


def load_command_file(path: PathLike) -> tuple[ProbeCommand, ...]:
    """Load docker-slim's probe file `{"commands": [{...}, ...]}`, validating every field."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeSpecError(f"{name}: cannot read: {_reason(exc)}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbeSpecError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(doc, dict) or "commands" not in doc:
        raise ProbeSpecError(f'{name}: top level must be an object {{"commands": [...]}}, '
                             f"got {_kind(doc)}")
    unknown = sorted(set(doc) - {"commands"})
    if unknown:
        raise ProbeSpecError(f"{name}: {unknown[0]}: unknown top-level field "
                             "(only 'commands' is allowed)")
    entries = doc["commands"]
    if not isinstance(entries, list):
        raise ProbeSpecError(f"{name}: commands: expected a list, got {_kind(entries)}")
    base = Path(path).resolve().parent
    return tuple(
        _command_from_json(entry, f"{name}: commands[{i}]", base)
        for i, entry in enumerate(entries)
    )


def _command_from_json(entry: Any, where: str, base: Path) -> ProbeCommand:
    if not isinstance(entry, dict):
        raise ProbeSpecError(f"{where}: expected an object, got {_kind(entry)}")
    entry = {k: v for k, v in entry.items() if v is not None}  # null means "not given"
    unknown = sorted(set(entry) - set(_COMMAND_FIELDS))
    if unknown:
        raise ProbeSpecError(f"{where}.{unknown[0]}: unknown field "
                             f"(known: {', '.join(_COMMAND_FIELDS)})")
    strings = {k: _string(entry, k, where) for k in
               ("method", "resource", "protocol", "body", "body_file", "username", "password")}
    if "resource" not in entry:
        raise ProbeSpecError(f"{where}.resource: missing (a path such as \"/\")")
    if not strings["resource"].startswith("/"):
        raise ProbeSpecError(f"{where}.resource: {strings['resource']!r} does not start with '/'")
    method = (strings["method"] if "method" in entry else "GET").upper()
    if method not in HTTP_METHODS:
        raise ProbeSpecError(f"{where}.method: {strings['method']!r} is not an HTTP method")
    protocol = strings["protocol"].lower() if "protocol" in entry else None
    if protocol is not None and protocol not in PROTOCOLS:
        raise ProbeSpecError(f"{where}.protocol: {strings['protocol']!r} is not supported "
                             f"(use {' or '.join(PROTOCOLS)})")
    if "body" in entry and "body_file" in entry:
        raise ProbeSpecError(f"{where}: give body or body_file, not both")
    if "password" in entry and "username" not in entry:
        raise ProbeSpecError(f"{where}.password: given without username")
    crawl = entry.get("crawl", False)
    if not isinstance(crawl, bool):
        raise ProbeSpecError(f"{where}.crawl: expected true or false, got {_kind(crawl)}")
    return ProbeCommand(
        method=method,
        resource=strings["resource"],
        port=_port(entry, where),
        protocol=protocol,
        headers=_headers(entry, where),
        body=strings["body"] if "body" in entry else None,
        body_file=_body_file(strings["body_file"], where, base) if "body_file" in entry else None,
        username=strings["username"] if "username" in entry else None,
        password=strings["password"] if "password" in entry else None,
        crawl=crawl,
    )


def _string(entry: dict, key: str, where: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ProbeSpecError(f"{where}.{key}: expected a string, got {_kind(value)}")
    return value


def _port(entry: dict, where: str) -> int | None:
    if "port" not in entry:
        return None
    port = entry["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ProbeSpecError(f"{where}.port: {port!r} is not a port number (1-65535)")
    return port


def _headers(entry: dict, where: str) -> tuple[tuple[str, str], ...]:
    raw = entry.get("headers", [])
    if not isinstance(raw, list):
        raise ProbeSpecError(f"{where}.headers: expected a list of \"Name: value\" strings, "
                             f"got {_kind(raw)}")
    headers = []
    for i, item in enumerate(raw):
        name, sep, value = item.partition(":") if isinstance(item, str) else ("", "", "")
        if not sep or not _HEADER_NAME.match(name) or "\n" in value or "\r" in value:
            raise ProbeSpecError(f"{where}.headers[{i}]: {item!r} is not \"Name: value\"")
        headers.append((name, value.strip()))
    return tuple(headers)


def _body_file(value: str, where: str, base: Path) -> str:
    if not value:
        raise ProbeSpecError(f"{where}.body_file: empty path")
    path = (base / value).resolve()
    if not path.is_file():
        raise ProbeSpecError(f"{where}.body_file: no such file {str(path)!r}")
    return str(path)


def parse_exec_command(text: str, *, source: str = "exec command") -> tuple[str, ...]:
    """Split one shell-like command line into argv (no shell runs it)."""
    try:
        argv = tuple(shlex.split(text, comments=False))
    except ValueError as exc:
        raise ProbeSpecError(f"{source} {text!r}: {exc}") from exc
    if not argv or not argv[0]:
        raise ProbeSpecError(f"{source} {text!r}: empty command")
    return argv


def load_exec_file(path: PathLike) -> tuple[tuple[str, ...], ...]:
    """Read one command per line; blank lines and `#` comment lines are skipped."""
    name = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeSpecError(f"{name}: cannot read: {_reason(exc)}") from exc
    commands = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            commands.append(parse_exec_command(stripped, source=f"{name}: line {number}:"))
    if not commands:
        raise ProbeSpecError(f"{name}: no commands (only blank or comment lines)")
    return tuple(commands)


def parse_continue_after(text: str) -> ContinueAfter:
    """Parse `probe`, `timeout:SECONDS`, `signal`, `enter` or `exec`."""
    mode, sep, arg = text.strip().partition(":")
    mode = mode.lower()
    if mode == "timeout" and sep:
        try:
            seconds = float(arg)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise ProbeSpecError(f"continue-after {text!r}: {arg!r} is not a positive number "
                                 "of seconds")
        return ContinueAfter("timeout", seconds)
    if mode in CONTINUE_AFTER_MODES and mode != "timeout" and not sep:
        return ContinueAfter(mode)
    raise ProbeSpecError(f"continue-after {text!r}: not a valid form (valid: {_CONTINUE_FORMS})")


def parse_ports(text: str, *, source: str = "ports") -> tuple[int, ...]:
    """Parse `8080,9000` into (8080, 9000); each 1..65535, duplicates dropped."""
    ports: list[int] = []
    parts = [p.strip() for p in text.split(",")]
    if parts == [""]:
        raise ProbeSpecError(f"{source}: no ports given")
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ProbeSpecError(f"{source} {text!r}: {part!r} is not a port number (1-65535)")
        if int(part) not in ports:
            ports.append(int(part))
    return tuple(ports)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)

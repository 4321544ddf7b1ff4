"""Parsing probe specs: --http-probe-cmd strings, probe files, exec commands, continue-after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.commands import (
    load_command_file,
    load_exec_file,
    parse_continue_after,
    parse_exec_command,
    parse_ports,
    parse_probe_cmd,
)
from probes.errors import ProbeSpecError
from probes.records import ContinueAfter, ProbeCommand


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/api", ProbeCommand(method="GET", resource="/api")),
        ("POST:/api", ProbeCommand(method="POST", resource="/api")),
        ("delete:/items/1", ProbeCommand(method="DELETE", resource="/items/1")),
        ("crawl:/", ProbeCommand(resource="/", crawl=True)),
        ("https:GET:/x", ProbeCommand(resource="/x", protocol="https")),
        ("http:/x", ProbeCommand(resource="/x", protocol="http")),
        ("crawl:http:GET:/", ProbeCommand(resource="/", protocol="http", crawl=True)),
        ("GET:/a:b?c=d:e", ProbeCommand(resource="/a:b?c=d:e")),
    ],
)
def test_parse_probe_cmd_valid_forms(text: str, expected: ProbeCommand) -> None:
    assert parse_probe_cmd(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("FETCH:/x", "'FETCH' is not an HTTP method"),
        ("api", "path starting with '/'"),
        ("", "path starting with '/'"),
        ("GET:crawl:/x", "unexpected 'crawl' before the path"),
        ("http:GET:POST:/x", "unexpected 'POST' before the path"),
    ],
)
def test_parse_probe_cmd_rejects_malformed(text: str, fragment: str) -> None:
    with pytest.raises(ProbeSpecError) as info:
        parse_probe_cmd(text)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"probe command {text!r}: ")


def _write(tmp_path: Path, doc: object, name: str = "probes.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_load_command_file_full_entry(tmp_path: Path) -> None:
    (tmp_path / "payload.json").write_bytes(b'{"a": 1}')
    path = _write(tmp_path, {"commands": [
        {"resource": "/"},
        {"method": "post", "resource": "/api", "port": 8080, "protocol": "HTTPS",
         "headers": ["Content-Type: application/json", "X-Token:abc"],
         "body_file": "payload.json", "username": "u", "password": "p", "crawl": True},
        {"method": "PUT", "resource": "/put", "body": "hello", "port": None},
    ]})
    assert load_command_file(path) == (
        ProbeCommand(),
        ProbeCommand(method="POST", resource="/api", port=8080, protocol="https",
                     headers=(("Content-Type", "application/json"), ("X-Token", "abc")),
                     body_file=str(tmp_path / "payload.json"), username="u", password="p",
                     crawl=True),
        ProbeCommand(method="PUT", resource="/put", body="hello"),
    )


def test_load_command_file_empty_list(tmp_path: Path) -> None:
    assert load_command_file(_write(tmp_path, {"commands": []})) == ()


@pytest.mark.parametrize(
    ("doc", "field_and_reason"),
    [
        ([], ': top level must be an object {"commands": [...]}, got a list'),
        ({"cmds": []}, ': top level must be an object {"commands": [...]}, got an object'),
        ({"commands": [], "extra": 1}, ": extra: unknown top-level field"),
        ({"commands": {"resource": "/"}}, ": commands: expected a list, got an object"),
        ({"commands": ["/x"]}, ": commands[0]: expected an object, got a string"),
        ({"commands": [{"method": "GET"}]}, ": commands[0].resource: missing"),
        ({"commands": [{"resource": "api"}]},
         ": commands[0].resource: 'api' does not start with '/'"),
        ({"commands": [{"resource": 5}]},
         ": commands[0].resource: expected a string, got a number"),
        ({"commands": [{"resource": "/"}, {"resource": "/"}, {"method": "FETCH", "resource": "/"}]},
         ": commands[2].method: 'FETCH' is not an HTTP method"),
        ({"commands": [{"resource": "/", "port": 0}]},
         ": commands[0].port: 0 is not a port number (1-65535)"),
        ({"commands": [{"resource": "/", "port": "80"}]},
         ": commands[0].port: '80' is not a port number (1-65535)"),
        ({"commands": [{"resource": "/", "port": True}]},
         ": commands[0].port: True is not a port number (1-65535)"),
        ({"commands": [{"resource": "/", "headers": ["NoColon"]}]},
         ": commands[0].headers[0]: 'NoColon' is not \"Name: value\""),
        ({"commands": [{"resource": "/", "headers": ["Bad Name: v"]}]},
         ": commands[0].headers[0]: 'Bad Name: v' is not \"Name: value\""),
        ({"commands": [{"resource": "/", "headers": "X-A: b"}]},
         ": commands[0].headers: expected a list"),
        ({"commands": [{"resource": "/", "body": "x", "body_file": "f"}]},
         ": commands[0]: give body or body_file, not both"),
        ({"commands": [{"resource": "/", "protocol": "ws"}]},
         ": commands[0].protocol: 'ws' is not supported (use http or https)"),
        ({"commands": [{"resource": "/", "crawl": "yes"}]},
         ": commands[0].crawl: expected true or false, got a string"),
        ({"commands": [{"resource": "/", "resouce": "/x"}]},
         ": commands[0].resouce: unknown field"),
        ({"commands": [{"resource": "/", "password": "p"}]},
         ": commands[0].password: given without username"),
    ],
)
def test_load_command_file_rejects_malformed(
    tmp_path: Path, doc: object, field_and_reason: str
) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(ProbeSpecError) as info:
        load_command_file(path)
    assert str(info.value).startswith(f"{path}{field_and_reason}")


def test_load_command_file_missing_body_file_resolved_next_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = _write(sub, {"commands": [{"resource": "/", "body_file": "data/missing.bin"}]})
    with pytest.raises(ProbeSpecError) as info:
        load_command_file(path)
    assert str(info.value) == (
        f"{path}: commands[0].body_file: no such file '{sub / 'data' / 'missing.bin'}'"
    )


def test_load_command_file_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"commands": [\n  {"resource": "/",}\n]}')
    with pytest.raises(ProbeSpecError) as info:
        load_command_file(path)
    assert str(info.value).startswith(f"{path}: invalid JSON at line 2 column 20: ")


def test_load_command_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ProbeSpecError, match="nope.json: cannot read: No such file"):
        load_command_file(path)


def test_parse_exec_command() -> None:
    assert parse_exec_command("curl -s 'http://x/a b'") == ("curl", "-s", "http://x/a b")
    with pytest.raises(ProbeSpecError, match="empty command"):
        parse_exec_command("   ")
    with pytest.raises(ProbeSpecError, match="No closing quotation"):
        parse_exec_command("echo 'oops")


def test_load_exec_file(tmp_path: Path) -> None:
    path = tmp_path / "exec.txt"
    path.write_text("# warm up\n\nwget -q -O- http://localhost/\n  # indented comment\n"
                    "sh -c 'echo hi'\n")
    assert load_exec_file(path) == (
        ("wget", "-q", "-O-", "http://localhost/"),
        ("sh", "-c", "echo hi"),
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("ok\necho 'unterminated\n")
    with pytest.raises(ProbeSpecError, match=r"bad\.txt: line 2: .*No closing quotation"):
        load_exec_file(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("probe", ContinueAfter("probe")),
        ("timeout:30", ContinueAfter("timeout", 30.0)),
        ("timeout:2.5", ContinueAfter("timeout", 2.5)),
        ("signal", ContinueAfter("signal")),
        ("enter", ContinueAfter("enter")),
        ("exec", ContinueAfter("exec")),
        ("PROBE", ContinueAfter("probe")),
    ],
)
def test_parse_continue_after_valid(text: str, expected: ContinueAfter) -> None:
    assert parse_continue_after(text) == expected


@pytest.mark.parametrize("text", ["", "later", "timeout", "timeout:", "timeout:-1",
                                  "timeout:abc", "timeout:inf", "probe:5", "10"])
def test_parse_continue_after_invalid_lists_valid_forms(text: str) -> None:
    with pytest.raises(ProbeSpecError) as info:
        parse_continue_after(text)
    message = str(info.value)
    assert message.startswith(f"continue-after {text!r}: ")
    if not text.startswith("timeout:"):
        assert message.endswith("(valid: probe, timeout:SECONDS, signal, enter, exec)")


def test_parse_ports() -> None:
    assert parse_ports("8080,9000") == (8080, 9000)
    assert parse_ports(" 80 , 443,80") == (80, 443)
    for bad in ("", "0", "65536", "80,", "http", "-1"):
        with pytest.raises(ProbeSpecError):
            parse_ports(bad)

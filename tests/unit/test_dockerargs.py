"""`docker run`'s option syntax as the docker CLI parses it, and its bad values as usage
errors (exit 2) before anything starts."""

from __future__ import annotations

import json

import pytest

from minifier.cli import main
from minifier.dockerargs import parse_cpus, parse_memory, parse_tmpfs, read_security_opts
from minifier.errors import ExitStatus, UsageError


@pytest.mark.parametrize("text,expected", [
    ("67108864", 67108864), ("64m", 64 << 20), ("64M", 64 << 20), ("64MiB", 64 << 20),
    ("64mb", 64 << 20), ("1.5g", 3 << 29), ("512k", 512 << 10), ("1 g", 1 << 30),
])
def test_memory_sizes_are_binary_like_docker(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "64x", "-1m", "1e3"])
def test_bad_memory_size(text):
    with pytest.raises(UsageError, match="--memory: invalid size"):
        parse_memory(text)


def test_cpus():
    assert parse_cpus("1.5") == 1_500_000_000
    assert parse_cpus("0.01") == 10_000_000
    with pytest.raises(UsageError, match="--cpus: invalid number 'half'"):
        parse_cpus("half")
    with pytest.raises(UsageError, match="too precise"):
        parse_cpus("0.0000000001")


def test_tmpfs():
    assert parse_tmpfs("/run") == ("/run", "")
    assert parse_tmpfs("/run:rw,size=64m,mode=1777") == ("/run", "rw,size=64m,mode=1777")
    with pytest.raises(UsageError, match="not an absolute path"):
        parse_tmpfs("run")


def test_security_opts_read_a_seccomp_file_like_the_docker_cli(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": []\n}\n')
    opts = read_security_opts((f"seccomp={profile}", "no-new-privileges",
                               "apparmor=unconfined", "seccomp=unconfined",
                               f"seccomp:{profile}"))
    compact = 'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'
    assert opts == (compact, "no-new-privileges", "apparmor=unconfined",
                    "seccomp=unconfined", compact)
    assert json.loads(opts[0].partition("=")[2]) == json.loads(profile.read_text())


def test_bad_security_opts(tmp_path):
    with pytest.raises(UsageError, match="invalid value 'nonsense'"):
        read_security_opts(("nonsense",))
    with pytest.raises(UsageError, match="cannot read seccomp profile /nonexistent.json"):
        read_security_opts(("seccomp=/nonexistent.json",))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match=f"seccomp profile {bad} is not JSON"):
        read_security_opts((f"seccomp={bad}",))


@pytest.mark.parametrize("args,text", [
    (["--memory", "lots"], "--memory: invalid size 'lots'"),
    (["--cpus", "half"], "--cpus: invalid number 'half'"),
    (["--tmpfs", "scratch"], "--tmpfs: 'scratch' is not an absolute path"),
    (["--security-opt", "seccomp=/nonexistent.json"], "cannot read seccomp profile"),
])
def test_cli_refuses_bad_values_before_anything_starts(capsys, args, text):
    # The engine is never asked: DOCKER_HOST is not even looked at before the options.
    assert main(["build", "minify-sandbox/busybox:latest", *args]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err.startswith("minify: error: ") and text in err

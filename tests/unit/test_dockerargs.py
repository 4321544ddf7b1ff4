"""`docker run`'s option syntax as the docker CLI parses it, and its bad values as usage
errors (exit 2) before anything starts."""

from __future__ import annotations

import json
import re

import pytest

from minifier.cli import main
from minifier.dockerargs import (
    parse_cpus,
    parse_link,
    parse_memory,
    parse_network,
    parse_tmpfs,
    read_env_files,
    read_security_opts,
)
from minifier.errors import ExitStatus, UsageError
from minifier.mountargs import api_mount, parse_mount, parse_volume


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


# -- --volume / --mount ---------------------------------------------------------------


@pytest.mark.parametrize("text,kind,target,source,ro,nocopy,bind", [
    ("/data", "volume", "/data", "", False, False, "/data"),  # anonymous
    ("/data:ro", "volume", "/data", "", True, False, "/data:ro"),  # anonymous, a mode
    ("cache:/var/cache/app", "volume", "/var/cache/app", "cache", False, False,
     "cache:/var/cache/app"),
    ("cache:/var/cache/app:nocopy,ro", "volume", "/var/cache/app", "cache", True, True,
     "cache:/var/cache/app:nocopy,ro"),
    ("/srv/conf:/etc/app/", "bind", "/etc/app", "/srv/conf", False, False,
     "/srv/conf:/etc/app"),
    ("/srv/conf:/etc/app:ro,rshared", "bind", "/etc/app", "/srv/conf", True, False,
     "/srv/conf:/etc/app:ro,rshared"),
])
def test_volume_like_docker_run_v(text, kind, target, source, ro, nocopy, bind):
    m = parse_volume(text)
    assert (m.kind, m.target, m.source, m.read_only, m.no_copy, m.bind) == (
        kind, target, source, ro, nocopy, bind)
    # What lies under a bind mount is the host's; an empty volume gets the image's files.
    assert m.image_content == (kind == "volume" and not nocopy)


def test_volume_relative_host_path_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    m = parse_volume("./conf:/etc/app:ro")
    assert (m.kind, m.source, m.bind) == ("bind", f"{tmp_path}/conf",
                                          f"{tmp_path}/conf:/etc/app:ro")


@pytest.mark.parametrize("text,message", [
    ("data", "the container path 'data' is not absolute"),
    ("/a:b", "the container path 'b' is not absolute"),
    ("/a:/b:rx", "invalid mode 'rx'"),
    ("/a:/b:ro:x", "not [SOURCE:]CONTAINER-PATH[:MODE]"),
    (":/b", "not [SOURCE:]CONTAINER-PATH[:MODE] (empty source)"),
    ("my vol:/b", "'my vol' is neither an absolute host path nor a volume name"),
])
def test_bad_volumes(text, message):
    with pytest.raises(UsageError, match=re.escape(f"--volume {text}: {message}")):
        parse_volume(text)


def test_mount_key_value_like_docker_run_mount():
    m = parse_mount("type=bind,source=/srv/conf,target=/etc/app,readonly,"
                    "bind-propagation=rslave")
    assert (m.kind, m.source, m.target, m.read_only, m.propagation, m.bind) == (
        "bind", "/srv/conf", "/etc/app", True, "rslave", "")
    assert api_mount(m) == {"Type": "bind", "Target": "/etc/app", "ReadOnly": True,
                            "Source": "/srv/conf", "BindOptions": {"Propagation": "rslave"}}
    v = parse_mount("src=data,dst=/var/lib/x,volume-nocopy=true,ro=false")  # type: volume
    assert (v.kind, v.source, v.target, v.read_only, v.no_copy, v.image_content) == (
        "volume", "data", "/var/lib/x", False, True, False)
    assert api_mount(v) == {"Type": "volume", "Target": "/var/lib/x", "ReadOnly": False,
                            "Source": "data", "VolumeOptions": {"NoCopy": True}}
    t = parse_mount("type=tmpfs,destination=/scratch,tmpfs-size=64m,tmpfs-mode=1770")
    assert api_mount(t) == {"Type": "tmpfs", "Target": "/scratch", "ReadOnly": False,
                            "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770}}
    assert not t.image_content


def test_mount_docker_slim_form_is_read_like_v():
    m = parse_mount("/srv/conf:/etc/app:ro")
    assert (m.kind, m.source, m.target, m.read_only, m.bind) == (
        "bind", "/srv/conf", "/etc/app", True, "/srv/conf:/etc/app:ro")
    assert parse_mount("data:/var/lib/x").bind == "data:/var/lib/x"


@pytest.mark.parametrize("text,message", [
    ("/data", "not SOURCE:CONTAINER-PATH[:MODE] or type=...,source=...,target=..."),
    ("type=bind,target=/x", "a bind mount needs source=HOST-PATH"),
    ("type=bind,source=/a", "no target (target=CONTAINER-PATH)"),
    ("type=tmpfs,source=/a,target=/x", "a tmpfs takes no source"),
    ("type=npipe,target=/x", "type 'npipe' is not bind, volume or tmpfs"),
    ("type=bind,source=/a,target=/x,readonly=maybe", "readonly=maybe is not true or false"),
    ("type=volume,target=/x,bind-propagation=shared", "bind-propagation=shared needs"),
    ("type=bind,source=/a,target=/x,consistency=cached", "unknown key 'consistency'"),
    ("type=tmpfs,target=/x,tmpfs-mode=rwx", "tmpfs-mode 'rwx' is not octal"),
])
def test_bad_mounts(text, message):
    with pytest.raises(UsageError, match=re.escape(f"--mount {text}: {message}")):
        parse_mount(text)


# -- --network / --link ---------------------------------------------------------------


def test_network_and_links():
    assert parse_network(None) is None
    assert parse_network("appnet") == "appnet" and parse_network("none") == "none"
    for refused in ("host", "container:db"):
        with pytest.raises(UsageError, match=f"--network {refused}: not supported: minify "
                                             "probes the app through ports published"):
            parse_network(refused)
    assert parse_link("db") == ("db", "db")
    assert parse_link("/db:database") == ("db", "database")
    with pytest.raises(UsageError, match="--link a:b:c: not CONTAINER"):
        parse_link("a:b:c")


# -- --env-file -----------------------------------------------------------------------


def test_env_file_read_like_docker_run(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_bytes(
        "\ufeffFIRST=1\n"
        "# a comment\n"
        "\n"
        "   INDENTED=kept as is  \n"
        'QUOTED="not unquoted"\n'
        "EMPTY=\n"
        "FROM_HOST\n"
        "NOT_ON_HOST\n"
        "EQ=a=b\r\n".encode())
    host = {"FROM_HOST": "host value"}
    assert read_env_files([str(env_file)], ["FIRST=override", "FROM_HOST", "GONE"], host) == (
        "FIRST=1", "INDENTED=kept as is  ", 'QUOTED="not unquoted"', "EMPTY=",
        "FROM_HOST=host value", "EQ=a=b",
        # --env after the files, so its values win where the app's env is merged
        "FIRST=override", "FROM_HOST=host value")


@pytest.mark.parametrize("content,message", [
    (b"BAD NAME=1\n", "line 1: 'BAD NAME' is not a variable name"),
    (b"OK=1\n=value\n", "line 2: '' is not a variable name"),
    (b"OK=1\nLATIN=caf\xe9\n", "line 2 is not UTF-8"),
])
def test_bad_env_files(tmp_path, content, message):
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(content)
    with pytest.raises(UsageError, match=re.escape(f"--env-file {env_file}: {message}")):
        read_env_files([str(env_file)], [], {})
    with pytest.raises(UsageError, match="--env-file /nonexistent.env: No such file"):
        read_env_files(["/nonexistent.env"], [], {})

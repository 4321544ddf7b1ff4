"""The traced app's launch follows Docker's semantics for Entrypoint, Cmd, Env, WorkDir,
User and groups; `docker run`'s keyword arguments come from one derivation."""

import signal
from dataclasses import replace

import pytest

from minifier.errors import ImageError
from minifier.image.users import Credentials
from minifier.mountargs import parse_mount, parse_volume
from minifier.observe.appspec import (
    RunOptions,
    app_user,
    check_command,
    docker_run_kwargs,
    health_spec,
    launch_spec,
    stop_signal,
    supplementary_groups,
)
from minifier.options import ContainerOptions
from tests.unit.fixtures import image_info


def _image(entrypoint=(), cmd=(), env=(), workdir="", user=""):
    return image_info(entrypoint=entrypoint, cmd=cmd, env=env, workdir=workdir, user=user)


APP = Credentials(1000, 1001, (27, 50), "app", "/home/app")


def test_entrypoint_plus_cmd_env_and_workdir():
    spec = launch_spec(_image(("/bin/app",), ("--port", "80"), ("A=1", "PATH=/opt/bin"),
                              "/srv"), RunOptions(env=("A=2", "B=3")), APP)
    assert spec.argv == ("/bin/app", "--port", "80")
    assert spec.env == ("HOME=/home/app", "A=2", "PATH=/opt/bin", "B=3")  # overrides win
    assert spec.workdir == "/srv"
    # The engine gives the primary group as a supplementary group too.
    assert (spec.uid, spec.gid, spec.groups) == (1000, 1001, (1001, 27, 50))
    # Capabilities are the engine's, copied from the container's PID 1 at launch.
    assert spec.keep_caps is None


def test_supplementary_groups_like_the_engine():
    # docker run: `groups=0` for root without /etc/group, `groups=2000` for --user 1000:2000,
    # and a member of its own primary group has it once.
    assert supplementary_groups(Credentials(0, 0, (), "")) == (0,)
    assert supplementary_groups(Credentials(1000, 2000, (), "")) == (2000,)
    assert supplementary_groups(Credentials(1000, 1000, (1000, 2000), "u")) == (1000, 2000)


def test_user_option_wins_over_the_image_user():
    image = _image(cmd=("app",), user="app")
    assert app_user(image, RunOptions()) == "app"
    assert app_user(image, RunOptions(user="1000:2000")) == "1000:2000"
    assert app_user(image, RunOptions(user="")) == ""  # docker run --user "" is root


def test_docker_run_kwargs_one_derivation():
    opts = RunOptions(
        entrypoint=("/bin/sh",), cmd=("-c", "x"), env=("A=1",), workdir="/w", user="1000",
        container=ContainerOptions(
            memory=64 << 20, pids_limit=20, nano_cpus=500_000_000,
            security_opt=("no-new-privileges", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'),
            cap_add=("SYS_ADMIN",), cap_drop=("NET_RAW",), read_only=True,
            tmpfs=(("/scratch", "size=1m"), ("/run", ""))))
    container = {
        "mem_limit": 64 << 20, "pids_limit": 20, "nano_cpus": 500_000_000,
        "security_opt": ["no-new-privileges", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'],
        "cap_add": ["SYS_ADMIN"], "cap_drop": ["NET_RAW"], "read_only": True,
        "tmpfs": {"/scratch": "size=1m", "/run": ""}}
    assert docker_run_kwargs(opts, app=False) == container
    assert docker_run_kwargs(opts) == {
        **container, "entrypoint": ["/bin/sh"], "command": ["-c", "x"],
        "environment": ["A=1"], "working_dir": "/w", "user": "1000"}
    # A generated profile (--seccomp-profile) replaces the user's seccomp option only.
    assert docker_run_kwargs(opts, seccomp="{}")["security_opt"] == [
        "no-new-privileges", "seccomp={}"]
    assert docker_run_kwargs(RunOptions()) == {}


def test_default_path_and_root_workdir():
    spec = launch_spec(_image(cmd=("nginx",)), RunOptions(), APP)
    assert spec.env[0].startswith("PATH=/usr/local/sbin:") and spec.workdir == "/"


def test_overrides_like_docker_run():
    image = _image(("/bin/app",), ("serve",))
    assert check_command(image, RunOptions(cmd=("check",))) == ("/bin/app", "check")
    # --entrypoint drops the image's Cmd, as `docker run --entrypoint` does.
    assert check_command(image, RunOptions(entrypoint=("/bin/sh",))) == ("/bin/sh",)
    assert check_command(image, RunOptions(entrypoint=("/bin/sh",), cmd=("-c", "true"))) == (
        "/bin/sh", "-c", "true")
    assert launch_spec(image, RunOptions(workdir="/tmp"), APP).workdir == "/tmp"


def test_no_command_is_an_image_error():
    with pytest.raises(ImageError, match="has no Entrypoint or Cmd"):
        check_command(_image(), RunOptions())


@pytest.mark.parametrize("text,expected", [
    ("", signal.SIGTERM), ("SIGQUIT", signal.SIGQUIT), ("quit", signal.SIGQUIT),
    ("9", 9), ("SIGBOGUS", signal.SIGTERM)])
def test_stop_signal(text, expected):
    assert stop_signal(text) == expected


def _with_health(test, shell=None, **timing):
    image = _image(cmd=("app",))
    check = {"Test": list(test), **timing}
    config = {"Healthcheck": check, **({"Shell": shell} if shell else {})}
    return replace(image, healthcheck=check, config=config)


def test_healthcheck_forms_run_like_docker_runs_them():
    shell = health_spec(_with_health(["CMD-SHELL", "curl -f http://127.0.0.1/ || exit 1"]))
    assert shell.argv == ("/bin/sh", "-c", "curl -f http://127.0.0.1/ || exit 1")
    assert (shell.interval, shell.timeout, shell.start_period, shell.retries) == (30, 30, 0, 3)
    own_shell = health_spec(_with_health(["CMD-SHELL", "check"], shell=["/bin/bash", "-ec"]))
    assert own_shell.argv == ("/bin/bash", "-ec", "check")
    argv = health_spec(_with_health(["CMD", "redis-cli", "ping"], Interval=1_000_000_000,
                                    Timeout=5_000_000_000, StartPeriod=2_500_000_000,
                                    Retries=5))
    assert argv.argv == ("redis-cli", "ping")
    assert (argv.interval, argv.timeout, argv.start_period, argv.retries) == (1, 5, 2.5, 5)
    assert argv.bound == 2.5 + 5 * 1 + 5


def test_no_healthcheck():
    assert health_spec(_image(cmd=("app",))) is None
    assert health_spec(_with_health(["NONE"])) is None
    assert health_spec(_with_health([])) is None
    with pytest.raises(ImageError, match="unknown form 'SHELL'"):
        health_spec(_with_health(["SHELL", "x"]))


def test_docker_run_kwargs_mounts_and_network():
    """--volume goes to the engine as the docker CLI sends -v (binds), --mount KEY=VALUE
    as the API's Mount objects; --network and --link as docker run's."""
    container = ContainerOptions(
        mounts=(parse_volume("/srv/conf:/etc/app:ro"), parse_volume("/data"),
                parse_mount("type=volume,source=cache,target=/var/cache,volume-nocopy")),
        network="appnet", links=(("db", "database"),))
    assert docker_run_kwargs(RunOptions(container=container), app=False) == {
        "volumes": ["/srv/conf:/etc/app:ro", "/data"],
        "mounts": [{"Type": "volume", "Target": "/var/cache", "ReadOnly": False,
                    "Source": "cache", "VolumeOptions": {"NoCopy": True}}],
        "network": "appnet",
        # On a user network the engine reads links from the endpoint, as the docker CLI
        # sends them; on the default bridge from the container's legacy links.
        "networking_config": {"appnet": {"Links": ["db:database"]}}}
    bridge = RunOptions(container=ContainerOptions(links=(("db", "db"),)))
    assert docker_run_kwargs(bridge, app=False) == {"links": [("db", "db")]}

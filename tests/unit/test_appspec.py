"""The traced app's launch follows Docker's semantics for Entrypoint, Cmd, Env, WorkDir."""

import signal

import pytest

from minifier.errors import ImageError
from minifier.image.users import Credentials
from minifier.observe.appspec import (
    DOCKER_DEFAULT_CAPS,
    RunOptions,
    check_command,
    launch_spec,
    stop_signal,
)
from minifier.records import ImageInfo


def _image(entrypoint=(), cmd=(), env=(), workdir=""):
    return ImageInfo(ref="x:1", id="sha256:" + "0" * 64, repo_tags=(), size=0,
                     architecture="amd64", os="linux", entrypoint=entrypoint, cmd=cmd, env=env,
                     workdir=workdir, user="", exposed_ports=(), volumes=(), labels={},
                     stop_signal="", healthcheck=None, config={})


APP = Credentials(1000, 1001, (27, 50), "app", "/home/app")


def test_entrypoint_plus_cmd_env_and_workdir():
    spec = launch_spec(_image(("/bin/app",), ("--port", "80"), ("A=1", "PATH=/opt/bin"),
                              "/srv"), RunOptions(env=("A=2", "B=3")), APP)
    assert spec.argv == ("/bin/app", "--port", "80")
    assert spec.env == ("HOME=/home/app", "A=2", "PATH=/opt/bin", "B=3")  # overrides win
    assert spec.workdir == "/srv"
    assert (spec.uid, spec.gid, spec.groups) == (1000, 1001, (27, 50))
    assert spec.keep_caps == DOCKER_DEFAULT_CAPS


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

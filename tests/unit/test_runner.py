"""The traced container's creation arguments: the user's confinement options as `docker run`
takes them, minify's stand-in PID 1, and the two adjustments the stand-in needs."""

from __future__ import annotations

from minifier.mountargs import parse_volume
from minifier.observe.runner import PAUSE_PATH, PAUSE_VOLUME, TracedContainer
from minifier.options import ContainerOptions, RunOptions
from tests.unit.fixtures import image_info

IMAGE = image_info(ref="x:1", entrypoint=("/app",), user="app", exposed_ports=("8080/tcp",))


def _kwargs(container: ContainerOptions, **run) -> tuple[dict, str]:
    tc = TracedContainer(None, IMAGE, None, RunOptions(container=container, **run), "/tmp")
    return tc._create_kwargs()


def test_defaults_are_docker_runs_own():
    kwargs, pause = _kwargs(ContainerOptions(), user="nobody", env=("A=1",))
    assert pause == PAUSE_PATH
    # No capability, seccomp or limit of minify's own: the engine's defaults, which the
    # launcher copies from this container's PID 1. The app's --user and --env are the
    # launcher's business, not the stand-in's.
    assert {k: v for k, v in kwargs.items() if k not in ("name", "labels")} == {
        "entrypoint": [PAUSE_PATH], "command": [], "user": "0:0",
        "ports": {"8080/tcp": ("127.0.0.1", None)}, "healthcheck": {"test": ["NONE"]},
        "detach": True}


def test_user_options_with_the_stand_ins_adjustments():
    kwargs, pause = _kwargs(ContainerOptions(
        memory=64 << 20, pids_limit=20, nano_cpus=500_000_000, cap_add=("SYS_ADMIN",),
        cap_drop=("NET_RAW",), security_opt=("no-new-privileges",), read_only=True,
        tmpfs=(("/scratch", "size=1m"),)))
    assert kwargs["pids_limit"] == 21  # the stand-in is one task: the app keeps its 20
    assert (kwargs["mem_limit"], kwargs["nano_cpus"]) == (64 << 20, 500_000_000)
    assert (kwargs["cap_add"], kwargs["cap_drop"]) == (["SYS_ADMIN"], ["NET_RAW"])
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert (kwargs["read_only"], kwargs["tmpfs"]) == (True, {"/scratch": "size=1m"})
    # The engine copies nothing into a read-only root, but into a volume.
    assert pause == f"{PAUSE_VOLUME}/pause" and kwargs["volumes"] == [PAUSE_VOLUME]
    assert kwargs["entrypoint"] == [pause]


def test_unlimited_pids_stay_unlimited():
    assert _kwargs(ContainerOptions(pids_limit=-1))[0]["pids_limit"] == -1


def test_the_users_volumes_and_network_with_a_read_only_root():
    conf = parse_volume("/srv/conf:/etc/app:ro")
    kwargs, pause = _kwargs(ContainerOptions(read_only=True, mounts=(conf,), network="appnet",
                                             links=(("db", "db"),)))
    # The stand-in's volume comes next to the user's, which stay as given.
    assert kwargs["volumes"] == ["/srv/conf:/etc/app:ro", PAUSE_VOLUME]
    assert (kwargs["network"], kwargs["networking_config"]) == (
        "appnet", {"appnet": {"Links": ["db:db"]}})
    # Probing still goes through ports published on 127.0.0.1 only.
    assert kwargs["ports"] == {"8080/tcp": ("127.0.0.1", None)}


def test_a_bound_stand_in_is_one_more_read_only_mount():
    tc = TracedContainer(None, IMAGE, None, RunOptions(container=ContainerOptions(
        read_only=True, mounts=(parse_volume("/srv/conf:/etc/app:ro"),))), "/tmp")
    kwargs, pause = tc._create_kwargs(bind="/tmp/x/.minify-pause-1")
    assert pause == PAUSE_PATH and kwargs["entrypoint"] == [PAUSE_PATH]
    # Mounted where it runs, even on a read-only root: no volume is needed for it.
    assert kwargs["mounts"] == [{"Type": "bind", "Source": "/tmp/x/.minify-pause-1",
                                 "Target": PAUSE_PATH, "ReadOnly": True}]
    assert kwargs["volumes"] == ["/srv/conf:/etc/app:ro"]

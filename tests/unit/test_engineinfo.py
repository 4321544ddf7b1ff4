"""Engine detection from the API's own answers: Docker or Podman, rootless or not.

The answers are trimmed copies of what real engines said: Docker 20.10 and Podman 4.3.1
(rootful and rootless, the latter run as `nobody`) on the project's test machine; a
rootless Docker engine's /info lists `name=rootless` among its SecurityOptions (Docker's
rootless documentation; no such engine runs here).
"""

import pytest

from minifier.engineinfo import check_rootful, engine_info, may_bind_host_files, rootless_text
from minifier.errors import EngineError, ExitStatus

DOCKER_VERSION = {
    "Platform": {"Name": ""},
    "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1",
                    "Details": {"ApiVersion": "1.41", "MinAPIVersion": "1.12"}},
                   {"Name": "containerd", "Version": "1.6.20~ds1"},
                   {"Name": "runc", "Version": "1.1.5+ds1"},
                   {"Name": "docker-init", "Version": "0.19.0"}],
    "Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12"}
DOCKER_INFO = {
    "Driver": "overlay2",
    "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                     ["Native Overlay Diff", "true"], ["userxattr", "false"]],
    "SecurityOptions": ["name=seccomp,profile=default"], "CgroupVersion": "1",
    "CgroupDriver": "cgroupfs", "DockerRootDir": "/var/lib/docker",
    "ServerVersion": "20.10.24+dfsg1"}
PODMAN_VERSION = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1",
                    "Details": {"APIVersion": "4.3.1", "MinAPIVersion": "4.0.0"}},
                   {"Name": "Conmon", "Version": "conmon version 2.1.6, commit: unknown"},
                   {"Name": "OCI Runtime (runc)", "Version": "runc version 1.1.5+ds1"}],
    "Version": "4.3.1", "ApiVersion": "1.41", "MinAPIVersion": "1.24"}
PODMAN_INFO = {
    "Driver": "overlay",
    "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                     ["Native Overlay Diff", "true"], ["Using metacopy", "false"]],
    "SecurityOptions": ["name=seccomp,profile=default"], "CgroupVersion": "1",
    "CgroupDriver": "cgroupfs", "DockerRootDir": "/var/lib/containers/storage",
    "ServerVersion": "4.3.1"}
# Podman's compatible /info says nothing of rootless mode; only its own /libpod/info does.
PODMAN_ROOTLESS_INFO = {**PODMAN_INFO, "Driver": "vfs", "DriverStatus": [],
                        "DockerRootDir": "/home/u/.local/share/containers/storage"}


def _libpod(rootless: bool) -> dict:
    return {"host": {"security": {"apparmorEnabled": False, "rootless": rootless,
                                  "seccompEnabled": True, "selinuxEnabled": False}}}


def test_docker_rootful():
    e = engine_info(DOCKER_VERSION, DOCKER_INFO)
    assert (e.kind, e.name, e.version, e.api_version) == (
        "docker", "Docker Engine", "20.10.24+dfsg1", "1.41")
    assert not e.rootless
    assert (e.storage_driver, e.backing_filesystem) == ("overlay2", "extfs")
    assert (e.cgroup_version, e.cgroup_driver, e.root_dir) == ("1", "cgroupfs",
                                                               "/var/lib/docker")
    check_rootful(e)  # no error


def test_docker_rootless_from_its_security_options(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    info = {**DOCKER_INFO, "SecurityOptions": [
        "name=seccomp,profile=default", "name=rootless", "name=cgroupns"]}
    e = engine_info(DOCKER_VERSION, info)
    assert e.rootless
    with pytest.raises(EngineError) as err:
        check_rootful(e)
    assert err.value.exit_status == ExitStatus.ENGINE
    assert err.value.message == (
        "the engine at unix:///var/run/docker.sock is a rootless Docker Engine "
        "20.10.24+dfsg1 (its /info lists the security option name=rootless): minify works "
        "only with rootful engines so far; missing: a rootful engine (the system's dockerd "
        "run by root, DOCKER_HOST=unix:///var/run/docker.sock)")


def test_a_seccomp_option_naming_rootless_is_not_rootless_mode():
    info = {**DOCKER_INFO, "SecurityOptions": ["name=seccomp,profile=rootless"]}
    assert not engine_info(DOCKER_VERSION, info).rootless


def test_podman_rootful():
    e = engine_info(PODMAN_VERSION, PODMAN_INFO, _libpod(False))
    assert (e.kind, e.name, e.version, e.api_version) == ("podman", "Podman", "4.3.1", "1.41")
    assert not e.rootless
    assert e.storage_driver == "overlay"


def test_podman_rootless_from_libpod_info(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/podman/podman.sock")
    e = engine_info(PODMAN_VERSION, PODMAN_ROOTLESS_INFO, _libpod(True))
    assert e.rootless and e.storage_driver == "vfs"
    assert rootless_text(e) == (
        "the engine at unix:///run/user/1000/podman/podman.sock is a rootless Podman 4.3.1 "
        "(its /libpod/info says host.security.rootless): minify works only with rootful "
        "engines so far; missing: a rootful engine (sudo podman system service --time=0 "
        "unix:///run/podman/podman.sock, then DOCKER_HOST=unix:///run/podman/podman.sock)")


def test_unknown_engine_is_named_by_its_first_component():
    e = engine_info({"Components": [{"Name": "Other"}], "Version": "1"}, {})
    assert (e.kind, e.name) == ("unknown", "Other")


@pytest.mark.parametrize("host, security, binds", [
    ("", ["name=seccomp,profile=default"], True),
    ("unix:///var/run/docker.sock", ["name=apparmor"], True),
    ("tcp://10.0.0.2:2376", [], False),  # another host's files
    ("ssh://builder", [], False),
    ("", ["name=selinux"], False),  # a file from /tmp is not labelled for containers
])
def test_a_stand_in_is_bound_only_from_a_local_engine_without_selinux(host, security, binds):
    e = engine_info(DOCKER_VERSION, {**DOCKER_INFO, "SecurityOptions": security})
    assert may_bind_host_files(e, {"DOCKER_HOST": host} if host else {}) is binds

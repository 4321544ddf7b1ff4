"""Refusing what cannot work, early and by name: other CPUs, missing capabilities,
and the ptrace-only fallback when fanotify is not available."""

from __future__ import annotations

import pytest

from minifier.errors import CapabilityError, ImageError, UsageError
from minifier.observe.monitor import start_monitors
from minifier.observe.preflight import check_privileges, check_runnable
from minifier.observe.watcher import Watcher
from minifier.records import ImageInfo
from tests.unit.fixtures import image_info


def _image(arch: str, os_: str = "linux") -> ImageInfo:
    return image_info(architecture=arch, os=os_, cmd=("x",))


def test_image_for_another_cpu_is_refused():
    with pytest.raises(ImageError, match="linux/arm64 but this machine is linux/amd64"):
        check_runnable(_image("arm64"), machine="x86_64")
    check_runnable(_image("amd64"), machine="x86_64")
    check_runnable(_image(""), machine="x86_64")  # unknown architecture: let it run


def test_windows_image_is_refused():
    with pytest.raises(ImageError, match="is for windows"):
        check_runnable(_image("amd64", "windows"), machine="x86_64")


def _status(tmp_path, capeff: int):
    path = tmp_path / "status"
    path.write_text(f"Name:\tx\nCapEff:\t{capeff:016x}\n")
    return str(path)


def test_missing_capabilities_are_named(tmp_path):
    with pytest.raises(CapabilityError) as err:
        check_privileges(_status(tmp_path, 1 << 19))  # SYS_PTRACE only
    assert "CAP_SYS_ADMIN" in err.value.message and "CAP_SYS_PTRACE" not in err.value.message
    with pytest.raises(CapabilityError, match="CAP_SYS_PTRACE.*CAP_SYS_ADMIN"):
        check_privileges(_status(tmp_path, 0))
    check_privileges(_status(tmp_path, (1 << 19) | (1 << 21)))


def test_fanotify_unavailable_falls_back_to_ptrace_with_a_warning(tmp_path):
    warnings: list[str] = []
    assert start_monitors([Watcher(str(tmp_path / "missing"))], warnings) == []
    assert warnings == [f"fanotify failed on {tmp_path / 'missing'}: No such file or directory: "
                        "continuing with ptrace only (processes started with docker exec are "
                        "not seen)"]


def test_no_network_and_http_probing():
    from minifier.observe.preflight import check_network_ports

    check_network_ports("none", ())  # no HTTP port: the socket table needs no network
    check_network_ports("appnet", (8080,))
    check_network_ports(None, (8080,))
    with pytest.raises(UsageError, match=r"--network none: HTTP probing needs port\(s\) 80, "
                                         "8080 published on 127.0.0.1"):
        check_network_ports("none", (80, 8080))

"""The runner + tracer + watcher on real containers: what each sample app touches."""

from __future__ import annotations

import json
import os

import pytest
import requests

from minifier.engine import Reaper, inspect_image
from minifier.image import imagefs
from minifier.image.source import DockerExportSource
from minifier.image.users import resolve_user
from minifier.observe.appspec import launch_spec
from minifier.observe.monitor import merge
from minifier.observe.runner import TracedContainer
from minifier.options import RunOptions
from probes import Target, wait_ready

from .conftest import SANDBOX


def _observe(client, tmp_path, name, paths, port):
    image = inspect_image(client, SANDBOX[name])
    with DockerExportSource(client, image.id).open() as stream:
        fs = imagefs.scan(stream)
    spec = launch_spec(image, RunOptions(), resolve_user(fs, image.user))
    with TracedContainer(client, image, spec, RunOptions(), str(tmp_path)) as tc:
        target = Target(host="127.0.0.1", ports={port: tc.ports[port]})
        wait_ready(target, (port,), 60, tc.app_alive)
        session = requests.Session()
        session.trust_env = False
        answers = {p: session.get(f"http://127.0.0.1:{tc.ports[port]}{p}", timeout=10)
                   for p in paths}
        observed = tc.finish()
    return merge(observed.results), answers, observed


def test_nginx_trace(client, tmp_path):
    record, answers, _ = _observe(client, tmp_path, "nginx", ["/", "/about.html"], 80)
    assert all(r.status_code == 200 for r in answers.values())
    seen = record.existing()
    for path in ("/usr/sbin/nginx", "/etc/nginx/nginx.conf"):
        assert path in seen
    assert any(p.endswith("/ld-linux-x86-64.so.2") for p in seen)
    assert any(p.endswith("/libc.so.6") for p in seen)
    served = [p for p in seen if p.endswith("/index.html") or p.endswith("/about.html")]
    assert len(served) >= 2, served
    assert record.accesses["/usr/sbin/nginx"].ops & {"exec", "execve"}


def test_python_trace_sees_modules_and_per_request_exec(client, tmp_path):
    record, answers, observed = _observe(client, tmp_path, "python",
                                         ["/api/uname", "/api/greeting"], 8080)
    assert answers["/api/uname"].json()["uname"].strip() == "Linux"
    greeting = answers["/api/greeting"].json()
    assert greeting["cwd"] == "/app" and greeting["uid"] != 0
    seen = record.existing()
    assert "/app/app.py" in seen
    assert any(p.startswith("/usr/bin/python3") for p in seen)
    assert any("/flask/" in p and p.endswith(".py") for p in seen)
    assert "/usr/bin/uname" in seen
    assert "exec" in record.accesses["/usr/bin/uname"].ops


def test_busybox_trace_sees_symlinked_applet(client, tmp_path):
    record, answers, _ = _observe(client, tmp_path, "busybox", ["/"], 8080)
    assert answers["/"].status_code == 200
    seen = record.existing()
    assert "/bin/httpd" in seen  # the symlinked entrypoint, as named
    assert "/bin/busybox" in seen  # what it points to
    assert "/www/index.html" in seen


def test_fanotify_sees_docker_exec(client, tmp_path):
    image = inspect_image(client, SANDBOX["busybox"])
    with DockerExportSource(client, image.id).open() as stream:
        fs = imagefs.scan(stream)
    spec = launch_spec(image, RunOptions(), resolve_user(fs, image.user))
    with TracedContainer(client, image, spec, RunOptions(), str(tmp_path)) as tc:
        wait_ready(Target(ports={8080: tc.ports[8080]}), (8080,), 60, tc.app_alive)
        container = client.containers.get(tc.name)
        code, _ = container.exec_run(["/bin/cat", "/www/page.html"])
        assert code == 0
        observed = tc.finish()
    by_fanotify = {e.path for r in observed.results for e in r.events if e.source == "fanotify"}
    assert "/www/page.html" in by_fanotify
    ptrace_paths = {e.path for r in observed.results for e in r.events if e.source == "ptrace"}
    assert "/www/page.html" not in ptrace_paths  # only fanotify can see a docker exec


def test_app_output_and_exit_are_reported(client, tmp_path):
    image = inspect_image(client, SANDBOX["crash"])
    spec = launch_spec(image, RunOptions(), resolve_user(_fs(client, image), image.user))
    with TracedContainer(client, image, spec, RunOptions(), str(tmp_path)) as tc:
        assert tc.wait_app(30)
        assert not tc.app_alive()
        assert "fatal: config missing" in tc.app_output_tail()
        observed = tc.finish()
    assert observed.app_exit == 3


def _fs(client, image):
    with DockerExportSource(client, image.id).open() as stream:
        return imagefs.scan(stream)


@pytest.mark.parametrize("name", ["busybox"])
def test_nothing_left_after_error_inside(client, tmp_path, name):
    image = inspect_image(client, SANDBOX[name])
    spec = launch_spec(image, RunOptions(), resolve_user(_fs(client, image), image.user))
    with pytest.raises(RuntimeError):
        with TracedContainer(client, image, spec, RunOptions(), str(tmp_path)) as tc:
            pid = tc.pid1
            raise RuntimeError("boom")
    assert not os.path.exists(f"/proc/{pid}")


# -- the stand-in PID 1: bind-mounted where the engine sees this host's files, else copied


def _stand_in(tc) -> tuple[bool, bool]:
    """(whether /.minify-pause is a mount point in the container, whether its root is
    read-only), from the container's own mount table."""
    with open(f"/proc/{tc.pid1}/mountinfo") as f:
        mounts = {fields[4]: fields[5].split(",") for fields in (line.split() for line in f)}
    return "/.minify-pause" in mounts, "ro" in mounts["/"]


@pytest.mark.parametrize("read_only", [False, True])
def test_the_stand_in_is_bind_mounted_where_the_engine_sees_it(client, tmp_path, read_only):
    from minifier.options import ContainerOptions

    # A user by name: the image's /etc/passwd is read from the container (by the engine).
    opts = RunOptions(container=ContainerOptions(read_only=read_only), user="nobody")
    image = inspect_image(client, SANDBOX["python"])
    with Reaper(client) as reaper:
        with TracedContainer(client, image, None, opts, str(tmp_path), reaper,
                             bind_pause=True) as tc:
            # Bound by the engine, then taken out of the container's mount table before the
            # app started: the app sees the mounts `docker run` makes, no more.
            assert _stand_in(tc) == (False, read_only)
            assert tc.spec.uid == 65534  # the image's /etc/passwd, read through its root
            # The host file stays while the container does: the engine resolves every
            # mount's source when it copies from the container (docker cp).
            assert _pause_files(tmp_path) == [f".minify-pause-{tc.name[len('minify-'):]}"]
            chunks, _ = client.api.get_archive(tc.name, "/etc/hostname")
            assert b"".join(chunks)
            volumes = client.api.inspect_container(tc.name)["Mounts"]
            tc.finish()
    assert [m["Type"] for m in volumes] == ["bind"]  # no volume for the stand-in
    assert _pause_files(tmp_path) == []  # removed with the container


def _pause_files(directory) -> list[str]:
    return [p for p in os.listdir(directory) if p.startswith(".minify-pause")]


_UNSEEN = """
import json, os, sys
import docker
from minifier.engine import Reaper, inspect_image
from minifier.observe.runner import TracedContainer
from minifier.options import RunOptions
client = docker.from_env()
image = inspect_image(client, sys.argv[1])
with TracedContainer(client, image, None, RunOptions(), sys.argv[2], bind_pause=True) as tc:
    mounts = [m["Type"] for m in client.api.inspect_container(tc.name)["Mounts"]]
    with open(f"{sys.argv[2]}/app.spec.json") as f:
        detach = json.load(f)["detach_mount"]  # no mount to take out of a copied one
    left = sorted(p for p in os.listdir(sys.argv[2]) if p.startswith(".minify-pause"))
    print(json.dumps({"mounts": mounts, "detach": detach, "host_files": left,
                      "alive": tc.app_alive(), "ports": list(tc.ports)}))
    tc.finish()
"""


def test_the_stand_in_is_copied_when_the_engine_cannot_see_the_file(client, tmp_path):
    """As when minify runs in a container of its own: its work directory is on a mount
    the engine does not see (here a tmpfs in a private mount namespace), the engine
    refuses the bind, and the stand-in is copied in instead."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    script = tmp_path / "unseen.py"
    script.write_text(_UNSEEN)
    import subprocess
    import sys

    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount -t tmpfs none "$1" && exec "{sys.executable}" "{script}" "$2" "$1"', "sh",
         str(hidden), SANDBOX["busybox"]],
        capture_output=True, text=True, timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"mounts": [], "detach": "", "host_files": [],
                                      "alive": True, "ports": [8080]}

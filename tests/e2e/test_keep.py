"""Keep-lists and wait modes end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from .conftest import SANDBOX
from .helpers import ENV, MINIFY, STARTED, minify


def test_include_shell_and_include_path(client, tmp_path):
    tag = "minify-test/python-shell.min:e2e"
    report_file = tmp_path / "report.json"
    run = minify("build", SANDBOX["python"], "--tag", tag, "--include-shell",
                 "--include-path", "/usr/share/common-licenses", "--report-file",
                 str(report_file))
    try:
        assert run.code == 0, run.stderr
        out = client.containers.run(tag, entrypoint=["/bin/sh", "-c"],
                                    command=["ls /usr/share/common-licenses/Apache-2.0 && "
                                             "echo shell-ok"], remove=True)
        assert out.decode().splitlines() == ["/usr/share/common-licenses/Apache-2.0",
                                             "shell-ok"]
        reasons = {k["path"]: k["reasons"] for k in json.loads(report_file.read_text())["kept"]}
        assert "include-shell" in reasons["/usr/bin/dash"]
        assert "include-path" in reasons["/usr/share/common-licenses/GPL-3"]
    finally:
        client.images.remove(tag, force=True)


def test_continue_after_timeout_observes_longer(client):
    tag = "minify-test/busybox-timeout.min:e2e"
    run = minify("build", SANDBOX["busybox"], "--tag", tag, "--continue-after", "timeout:3")
    try:
        assert run.code == 0, run.stderr
        assert "observing for 3 s more" in run.stderr
        assert run.seconds >= 3
    finally:
        client.images.remove(tag, force=True)


def test_continue_after_signal(client):
    tag = "minify-test/busybox-signal.min:e2e"
    proc = subprocess.Popen([*MINIFY, "build", SANDBOX["busybox"], "--tag", tag,
                             "--continue-after", "signal"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    STARTED.append(proc.pid)
    try:
        for line in proc.stderr:
            if "observing until SIGUSR1" in line:
                time.sleep(0.5)  # still observing: it must wait for the signal, not end
                assert proc.poll() is None
                proc.send_signal(signal.SIGUSR1)
                break
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        client.images.remove(tag, force=True)

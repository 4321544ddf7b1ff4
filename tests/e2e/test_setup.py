"""The set-up: the engine bootstrap is idempotent, and a plain `pip install .` works."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _dockerd_pids() -> list[str]:
    return subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()


def test_engine_script_is_a_no_op_when_an_engine_answers(client):
    before = _dockerd_pids()
    proc = subprocess.run(["bash", str(ROOT / "sandbox" / "engine.sh")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout
    assert _dockerd_pids() == before


def test_pip_install_into_a_fresh_venv_gives_a_working_cli(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = subprocess.run([str(venv / "bin" / "minify"), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "build" in out.stdout
    build_help = subprocess.run([str(venv / "bin" / "minify"), "build", "--help"],
                                capture_output=True, text=True, timeout=60)
    assert "Exit codes" in build_help.stdout


def test_engine_script_installs_docker_io_where_it_is_missing(client):
    """On a Debian machine without docker.io (a fresh sandbox container): the script
    installs the package and starts dockerd; an unprivileged container cannot run an
    engine, so this also shows the bounded wait ending in a clear error with the log."""
    proc = subprocess.run(
        ["docker", "run", "--rm", "--label", "minify.run=test",
         "-v", f"{ROOT / 'sandbox' / 'engine.sh'}:/engine.sh:ro",
         "-e", "MINIFY_ENGINE_TIMEOUT=10", "minify-sandbox/debian:bookworm",
         "bash", "-c", "! command -v dockerd && bash /engine.sh"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "dockerd is missing; installing Debian's docker.io" in proc.stdout
    assert "starting dockerd in the background" in proc.stdout
    assert "the Docker engine did not answer within 10s" in proc.stderr
    assert "last lines of /var/log/minify-dockerd.log" in proc.stderr

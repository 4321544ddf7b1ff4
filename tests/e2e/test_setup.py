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

"""The fanotify watcher on a real tmpfs: events with paths, and overflow never silent."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from minifier.observe.watcher import Watcher


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "minify-test", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_records_open_exec_and_listing(tmpfs):
    (tmpfs / "data.txt").write_text("x")
    shutil.copy("/bin/true", tmpfs / "prog")
    os.chmod(tmpfs / "prog", 0o755)
    (tmpfs / "dir").mkdir()
    watcher = Watcher(str(tmpfs))
    watcher.start()
    try:
        (tmpfs / "data.txt").read_text()
        subprocess.run([str(tmpfs / "prog")], check=True)
        os.listdir(tmpfs / "dir")
    finally:
        watcher.stop()
    result = watcher.result()
    kinds = {(os.path.basename(e.path), e.op) for e in result.events}
    assert ("data.txt", "open") in kinds
    assert ("prog", "exec") in kinds
    assert ("dir", "list") in kinds
    assert all(e.source == "fanotify" and e.ok for e in result.events)
    assert result.overflows == 0 and result.warnings == ()


def test_queue_overflow_is_counted_and_warned(tmpfs):
    names = [tmpfs / f"f{i}" for i in range(17000)]  # the kernel queue holds 16384
    for n in names:
        n.write_bytes(b"")
    watcher = Watcher(str(tmpfs), bounded_queue=True)
    watcher.open()  # events queue from here, nobody drains them yet
    for n in names:
        os.close(os.open(n, os.O_RDONLY))
    watcher.start()
    watcher.stop()
    result = watcher.result()
    assert result.overflows >= 1
    assert any("overflowed" in w for w in result.warnings)


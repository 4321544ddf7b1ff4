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


def test_a_file_read_again_and_again_costs_one_event_and_an_exec_is_still_seen(tmpfs):
    """A server opens its page on every request: after the first open and read, the
    file's ignore mark keeps the kernel from queueing more; an exec is never ignored."""
    shutil.copy("/bin/true", tmpfs / "prog")
    os.chmod(tmpfs / "prog", 0o755)
    (tmpfs / "other.txt").write_text("y")
    watcher = Watcher(str(tmpfs))
    watcher.open()  # driven here, without its thread: each drain is a known point
    try:
        (tmpfs / "prog").read_bytes()
        watcher.drain()
        first = watcher.result().received
        assert first >= 1
        # Other processes each (the kernel merges a process's like events, not
        # different processes'): 50 events without the ignore mark.
        for _ in range(50):
            subprocess.run(["cat", str(tmpfs / "prog")], check=True, stdout=subprocess.DEVNULL)
        (tmpfs / "other.txt").read_text()
        watcher.drain()
        # The other file's first open (and read: one event, or two if not merged) only.
        assert watcher.result().received - first in (1, 2)
        subprocess.run([str(tmpfs / "prog")], check=True)
        watcher.drain()
    finally:
        watcher.stop()
    kinds = {(os.path.basename(e.path), e.op) for e in watcher.result().events}
    assert {("prog", "open"), ("prog", "exec"), ("other.txt", "open")} <= kinds


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


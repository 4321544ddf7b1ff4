"""fanotify monitor: every open, read and exec on a container's root filesystem.

It marks the container's overlay filesystem as a whole (FAN_MARK_FILESYSTEM on the
merged dir): a mount mark made from the host sees nothing, because the container has
its own copy of the mount. Reading the link of each event's fd yields the container
path directly. It catches what the tracer cannot see (processes started with `docker
exec`), but sees no symlinks, stats or lookups, so it only adds to the trace.

A regular file's first open (or read) is all the record needs: the file then gets an
ignore mark for that kind of event, so a server opening the same file on every request
costs one event, not one per request (the first executable to open or read a file is
the one fanotify names; later ones are named by the tracer when it traces them). An
exec is never ignored.

pyfanotify supplies the fanotify_init/fanotify_mark bindings; the event loop is our
own because pyfanotify's forwarding process drops events after three busy retries,
and a lost event must be counted, never silent.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import struct
import threading
from typing import Optional

from pyfanotify import ext as fan

from minifier.engine import signals_deferred
from minifier.errors import CapabilityError
from minifier.records import FileEvent, WatchResult

__all__ = ["Watcher"]

_META = struct.Struct("=IBBHQii")  # struct fanotify_event_metadata
_MASK = fan.FAN_OPEN | fan.FAN_OPEN_EXEC | fan.FAN_ACCESS | fan.FAN_ONDIR
_O_FLAGS = os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC | os.O_NOATIME
_IGNORABLE = fan.FAN_OPEN | fan.FAN_ACCESS
_IGNORE = fan.FAN_MARK_ADD | fan.FAN_MARK_IGNORED_MASK | fan.FAN_MARK_IGNORED_SURV_MODIFY


def _kind(mask: int, mode: int) -> str:
    if mask & fan.FAN_OPEN_EXEC:
        return "exec"
    # The event mask does not say FAN_ONDIR without FID reporting: the fd's mode does.
    if mask & fan.FAN_OPEN and stat.S_ISDIR(mode):
        return "list"
    if mask & fan.FAN_OPEN:
        return "open"
    return "access"


class Watcher:
    """Watches one filesystem (given by any path on it) until stopped.

    `bounded_queue` keeps the kernel's default 16384-event queue instead of an
    unlimited one; overflows are then possible and are counted (tests use it).
    A monitor (monitor.py): where fanotify is not permitted, ptrace alone still records
    everything the app does, so the run goes on without it.
    """

    name = "fanotify"
    degraded = "continuing with ptrace only (processes started with docker exec are not seen)"

    def __init__(self, path: str, bounded_queue: bool = False) -> None:
        self._path = path
        self._bounded = bounded_queue
        self._seen: dict[tuple[str, str, str], FileEvent] = {}
        self._overflows = 0
        self._warnings: list[str] = []
        self._exes: dict[int, str] = {}
        self._thread: Optional[threading.Thread] = None
        self._stop_r, self._stop_w = -1, -1
        self._fd = -1
        self._ctx = None
        self._ignoring = True  # until the kernel refuses another mark
        self._received = 0

    def start(self) -> None:
        """Mark the filesystem (see `open`) and start draining events in a thread."""
        if self._fd < 0:
            self.open()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="fanotify", daemon=True)
        with signals_deferred():  # a start cut short leaves a thread nobody stops
            self._thread.start()

    def open(self) -> None:
        """Create the fanotify group and mark the filesystem: events queue from now on."""
        flags = fan.FAN_CLOEXEC | fan.FAN_NONBLOCK | fan.FAN_CLASS_NOTIF
        if not self._bounded:
            flags |= fan.FAN_UNLIMITED_QUEUE | fan.FAN_UNLIMITED_MARKS  # one per file
        self._ctx = fan.create()
        try:
            self._fd = fan.init(self._ctx, flags, _O_FLAGS)
            fan.mark(self._ctx, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, _MASK,
                     fan.AT_FDCWD, self._path)
        except OSError as exc:
            self._close_fd()
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise CapabilityError(
                    "fanotify is not permitted here (needs CAP_SYS_ADMIN); "
                    "run as root or use --no-fanotify") from exc
            raise CapabilityError(f"fanotify failed on {self._path}: {exc.strerror}") from exc

    def stop(self) -> None:
        """Drain what is queued, then end the loop."""
        if self._thread is None:
            if self._fd >= 0:  # opened, never started: still collect what queued
                self.drain()
                self._close_fd()
            return
        os.write(self._stop_w, b"x")
        self._thread.join()
        self._thread = None
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._close_fd()

    def result(self) -> WatchResult:
        warnings = list(self._warnings)
        if self._overflows:
            warnings.append(
                f"fanotify queue overflowed {self._overflows} time(s): some file events "
                "were lost; the ptrace record is unaffected")
        return WatchResult(events=tuple(self._seen.values()), overflows=self._overflows,
                           warnings=tuple(warnings), received=self._received)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            self.drain()
            if self._stop_r in ready:
                self.drain()
                return

    def drain(self) -> None:
        """Read and record what the kernel has queued now (the thread's loop does this;
        a caller that opened the watcher without starting it may too)."""
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self._warnings.append(f"fanotify read failed: {exc.strerror}")
                return
            self._parse(buf)

    def _parse(self, buf: bytes) -> None:
        offset = 0
        while offset + _META.size <= len(buf):
            event_len, _vers, _res, _mlen, mask, fd, pid = _META.unpack_from(buf, offset)
            offset += event_len or _META.size
            if mask & fan.FAN_Q_OVERFLOW:
                self._overflows += 1
            if fd < 0:
                continue
            self._received += 1
            try:
                self._record(fd, mask, pid)
            finally:
                os.close(fd)

    def _record(self, fd: int, mask: int, pid: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
            mode = os.fstat(fd).st_mode
        except OSError:
            return
        kind = _kind(mask, mode)
        exe = self._exe(pid, refresh=kind == "exec")
        key = (path, kind, exe)
        if key not in self._seen:
            self._seen[key] = FileEvent(path=path, op=kind, ok=True, exe=exe, pid=pid,
                                        source="fanotify")
        if self._ignoring and stat.S_ISREG(mode) and mask & _IGNORABLE:
            self._ignore(fd, mask & _IGNORABLE)

    def _ignore(self, fd: int, mask: int) -> None:
        """No more events of these kinds for the file behind `fd` (see the module's doc)."""
        try:
            fan.mark(self._ctx, _IGNORE, mask, fd)
        except OSError:  # no room for more marks (bounded): every event comes, as before
            self._ignoring = False

    def _exe(self, pid: int, refresh: bool) -> str:
        if refresh or pid not in self._exes:
            try:
                self._exes[pid] = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                self._exes[pid] = ""
        return self._exes[pid]

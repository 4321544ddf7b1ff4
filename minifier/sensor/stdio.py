"""The launched program's stdout and stderr: one pipe, copied into its log by a thread.

A container's processes write to pipes, never to files: the engine reads them into the
container's log. runc makes the container user their owner (fixStdioPermissions), so
an app running as www-data can reopen them as /dev/stdout, /dev/stderr or
/proc/self/fd/N (nginx's and Apache's logs are symlinks to those), and `> /dev/stdout`
(O_TRUNC) truncates nothing. The same here: the launcher gives the program the pipe's
write end as fds 1 and 2, owned by the program's uid (launch.py does that in the child);
stdout and stderr share the one pipe, so the log keeps their order. A thread of the
tracer process appends what arrives to the log file, which minify reads while the
program runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Optional

__all__ = ["OutputCopy"]

_CHUNK = 65536


class OutputCopy:
    """The pipe and its copy into `log_path` (created, or appended to)."""

    def __init__(self, log_path: str) -> None:
        self._log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                            0o644)
        try:
            # Close-on-exec here: the launcher dup2()s the write end to fds 1 and 2.
            self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        except OSError:
            os.close(self._log)
            raise
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Once the program is forked: close this process's write end (so the copy ends
        when the last process holding the pipe has exited) and start copying."""
        self._close_write()
        self._thread = threading.Thread(target=self._copy, name="output-copy", daemon=True)
        self._thread.start()

    def finish(self, timeout: float) -> bool:
        """Wait, at most `timeout` s, for the copy to reach the end of the output;
        whether it did. A copy still running (something outside the trace holds the
        pipe) is left to end with the process."""
        self._close_write()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self._close(self.read_fd)
        self._close(self._log)
        self.read_fd = self._log = -1
        return True

    def _copy(self) -> None:
        writable = True
        while True:
            try:
                data = os.read(self.read_fd, _CHUNK)
            except OSError:
                return
            if not data:
                return
            view = memoryview(data)
            while view and writable:
                try:
                    view = view[os.write(self._log, view):]
                except OSError:
                    # The log cannot be written (disk full): keep draining the pipe, or
                    # the program would block on its next write.
                    writable = False

    def _close_write(self) -> None:
        self._close(self.write_fd)
        self.write_fd = -1

    @staticmethod
    def _close(fd: int) -> None:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

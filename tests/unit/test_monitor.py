"""Merging monitor results into the access record; starting and stopping monitors."""

import os

import pytest

from minifier.errors import CapabilityError, MinifyError
from minifier.observe.monitor import Monitor, access_to_json, merge, start_monitors, stop_monitors
from minifier.observe.tracerprocess import TracerProcess
from minifier.records import FileEvent, LaunchSpec, TraceResult, WatchResult


def _trace(*events, counts=None):
    return TraceResult(events=tuple(events), syscall_counts=counts or {}, exit_status=0)


def test_merge_groups_by_path_and_tracks_existence():
    t1 = _trace(
        FileEvent("/etc/passwd", "openat", True, "/usr/bin/id"),
        FileEvent("/etc/missing", "openat", False, "/usr/bin/id", errno=2),
        counts={"openat": 2},
    )
    t2 = _trace(FileEvent("/etc/passwd", "newfstatat", True, "/bin/ls"), counts={"openat": 3})
    watch = WatchResult(events=(FileEvent("/usr/bin/id", "exec", True, "/usr/bin/id",
                                          source="fanotify"),), overflows=0)
    record = merge([t1, t2, watch])
    passwd = record.accesses["/etc/passwd"]
    assert passwd.ops == {"openat", "newfstatat"}
    assert passwd.exes == {"/usr/bin/id", "/bin/ls"}
    assert passwd.sources == {"ptrace"}
    assert record.accesses["/etc/missing"].exists is False
    assert record.accesses["/usr/bin/id"].sources == {"fanotify"}
    assert record.syscall_counts == {"openat": 5}
    assert record.existing() == ["/etc/passwd", "/usr/bin/id"]


def test_access_json_is_sorted_and_complete():
    record = merge([_trace(FileEvent("/b", "stat", True, "/x"),
                           FileEvent("/a", "openat", True, "/x"))])
    doc = access_to_json(record)
    assert [p["path"] for p in doc["paths"]] == ["/a", "/b"]
    assert doc["paths"][0] == {"path": "/a", "ops": ["openat"], "exes": ["/x"],
                               "sources": ["ptrace"], "exists": True}


# -- the runner's monitor handling, against stub monitors -------------------------------

class Stub:
    """A monitor that logs its calls; `fails` is raised by start()."""

    def __init__(self, name, log, *, degraded=None, fails=None, events=(), overflows=0):
        self.name, self.degraded, self._log, self._fails = name, degraded, log, fails
        self._events, self._overflows = events, overflows

    def start(self):
        self._log.append(("start", self.name))
        if self._fails is not None:
            raise self._fails

    def stop(self):
        self._log.append(("stop", self.name))

    def result(self):
        warnings = (f"{self.name} queue overflowed {self._overflows} time(s)",) \
            if self._overflows else ()
        return WatchResult(events=self._events, overflows=self._overflows, warnings=warnings)


def test_a_monitor_that_cannot_start_is_left_out_and_an_overflow_is_reported():
    log, warnings = [], []
    seen = FileEvent("/app/data", "open", True, "/app/bin", source="lossy")
    traced = FileEvent("/app/bin", "execve", True, "/app/bin")
    monitors = [
        Stub("denied", log, degraded="continuing without it",
             fails=CapabilityError("denied is not permitted here")),
        Stub("lossy", log, degraded="continuing without it", events=(seen,), overflows=2),
        Stub("ptrace", log, events=(traced,)),
    ]
    started = start_monitors(monitors, warnings)
    assert [m.name for m in started] == ["lossy", "ptrace"]
    assert warnings == ["denied is not permitted here: continuing without it"]
    stop_monitors(started)
    # Started in order, stopped in reverse: the first one sees the others stop.
    assert log == [("start", "denied"), ("start", "lossy"), ("start", "ptrace"),
                   ("stop", "ptrace"), ("stop", "lossy")]
    record = merge(m.result() for m in started)
    assert record.warnings == ("lossy queue overflowed 2 time(s)",)
    assert record.accesses["/app/data"].sources == {"lossy"}
    assert record.accesses["/app/bin"].sources == {"ptrace"}


@pytest.mark.parametrize("fails", [CapabilityError("ptrace is not permitted"),
                                   KeyboardInterrupt()])
def test_a_monitor_the_run_needs_stops_the_started_ones(fails):
    log, warnings = [], []
    monitors = [Stub("watch", log, degraded="continuing without it"),
                Stub("ptrace", log, fails=fails), Stub("never", log)]
    with pytest.raises(type(fails)):
        start_monitors(monitors, warnings)
    assert log == [("start", "watch"), ("start", "ptrace"), ("stop", "ptrace"),
                   ("stop", "watch")]
    assert warnings == []


def test_the_tracer_process_as_a_monitor(tmp_path):
    """The real tracer process (on this host, no container): started, run to its end,
    stopped and read through the same handling as in a run."""
    spec = LaunchSpec(argv=("/bin/cat", "/etc/hostname"), env=("PATH=/usr/bin:/bin",),
                      output_path=str(tmp_path / "out"))
    tracer = TracerProcess(spec, str(tmp_path), "app", 10)
    assert isinstance(tracer, Monitor) and tracer.degraded is None  # needed by every run
    warnings = []
    started = start_monitors([tracer], warnings)
    assert tracer.pid is not None and tracer.wait(10)
    stop_monitors(started)
    record = merge([tracer.result()])
    assert warnings == [] and tracer.result().exit_status == 0
    assert record.accesses["/etc/hostname"].exists
    assert record.accesses["/etc/hostname"].sources == {"ptrace"}


def test_stopping_a_running_trace_ends_the_program_and_keeps_the_result(tmp_path):
    tracer = TracerProcess(LaunchSpec(argv=("/bin/sleep", "60")), str(tmp_path), "app", 10)
    tracer.start()
    assert not tracer.wait(0.2)
    tracer.stop()
    assert not tracer.alive()
    result = tracer.result()
    assert result.exit_status == -9
    # The warning says which signal cut the trace short, and who sent it: this process.
    with open("/proc/self/comm") as f:
        me = f.read().strip()
    assert result.warnings == (f"trace interrupted by SIGTERM from pid {os.getpid()} ({me}): "
                               "the traced processes were killed",)


def test_a_tracer_without_a_result_is_an_error_with_its_log(tmp_path):
    tracer = TracerProcess(LaunchSpec(argv=("/bin/true",)), str(tmp_path), "gone", 10)
    (tmp_path / "tracer-gone.log").write_text("Traceback: something broke\n")
    with pytest.raises(MinifyError, match="the tracer ended without a result") as err:
        tracer.result()
    assert err.value.detail == "Traceback: something broke"

"""Merging monitor results into the access record."""

from minifier.observe.monitor import access_to_json, merge
from minifier.records import FileEvent, TraceResult, WatchResult


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
    record = merge([t1, t2], watch)
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
                           FileEvent("/a", "openat", True, "/x"))], None)
    doc = access_to_json(record)
    assert [p["path"] for p in doc["paths"]] == ["/a", "/b"]
    assert doc["paths"][0] == {"path": "/a", "ops": ["openat"], "exes": ["/x"],
                               "sources": ["ptrace"], "exists": True}

"""Verification that means "it works", for every app shape, end to end.

The commands a new user would type, on a database with a root entrypoint that drops
privileges (postgres), a key-value server (redis), an HTTP app with a HEALTHCHECK that
uses curl (health) and a one-shot command (oneshot): the minified image starts, answers
the client, survives `docker restart` and turns healthy; and each deliberately broken
variant (a file only startup or only the health command needs, excluded) fails with exit
7 and the reason named. One minify run per case, shared by its assertions.
"""

from __future__ import annotations

import re
import time

import pytest

from minifier.errors import ExitStatus
from minifier.procfs import listening_ports

from .conftest import SANDBOX
from .helpers import answers, minify

PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "select 1"]
PSQL_OUT = " ?column? \n----------\n        1\n(1 row)\n\n"
PING = ["redis-cli", "-h", "127.0.0.1", "ping"]
CURL_CHECK = ["/bin/sh", "-c", "curl -fsS http://127.0.0.1:8080/healthz || exit 1"]
BOUND = 60  # seconds the tests give a plain container to come up


@pytest.fixture(scope="module")
def built(build):
    """One minify run per case (builds.CASES), shared with the other e2e modules."""
    return build


# -- plain containers, as a user runs them ---------------------------------------------


def _run(client, tag, **kwargs):
    return client.containers.run(tag, detach=True, labels={"minify.run": "test"}, **kwargs)


def _until(check, what: str, bound: float = BOUND):
    deadline = time.monotonic() + bound
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not {what} within {bound} s"
        time.sleep(0.2)


def _exec_when_ready(container, argv):
    """The client as a user would run it once the server is up (the test's readiness
    loop: minify itself needed none)."""
    def attempt():
        code, out = container.exec_run(argv)
        return (code, out.decode()) if code == 0 else None
    return _until(attempt, f"answering {argv}")


def _healthy(container) -> bool:
    container.reload()
    status = container.attrs["State"]["Health"]["Status"]
    assert status != "unhealthy", container.attrs["State"]["Health"]["Log"][-1]
    return status == "healthy"


def _listening(container, port) -> bool:
    container.reload()
    return port in listening_ports(container.attrs["State"]["Pid"])


def _restart(container):
    container.restart(timeout=10)
    container.reload()
    assert container.status == "running"


def _uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def _labels(client, tag):
    return client.images.get(tag).labels


# -- postgres: a database with a root entrypoint that initialises and drops privileges --


def test_postgres_with_a_client_probe_and_no_readiness_loop(client, built):
    b = built("postgres")
    assert b.run.code == 0, b.run.stderr
    v = b.report["verify"]
    assert (v["status"], v["reason"], v["mismatches"]) == ("passed", "", [])
    assert v["liveness"]["shape"] == "service" and v["liveness"]["ok"]
    assert v["liveness"]["ports"] == [5432] and v["liveness"]["restarted"]
    assert [(e["round"], e["argv"], e["compared"], e["original_exit_code"],
             e["minified_exit_code"]) for e in v["execs"]] == [
        (1, PSQL, "exit code+stdout", 0, 0), (2, PSQL, "exit code+stdout", 0, 0)]
    assert v["health"]["status"] == "none"
    assert b.report["probe"]["execs"] == [{"argv": PSQL, "exit_code": 0}]
    # Observation waited for the server: it was traced serving, not stopped in initdb.
    kept = {k["path"] for k in b.report["kept"]}
    assert {"/usr/lib/postgresql/15/bin/postgres", "/usr/lib/postgresql/15/bin/initdb",
            "/usr/lib/postgresql/15/bin/psql", "/usr/bin/setpriv"} <= kept
    assert "minify.verified" not in _labels(client, b.tag)


def test_minified_postgres_answers_the_client_and_survives_a_restart(client, built):
    b = built("postgres")
    assert b.run.code == 0, b.run.stderr
    container = _run(client, b.tag)
    try:
        assert _exec_when_ready(container, PSQL) == (0, PSQL_OUT)
        _restart(container)
        assert _exec_when_ready(container, PSQL) == (0, PSQL_OUT)
        logs = container.logs().decode()
        # initdb ran on the first start only; the second start took the other path.
        assert logs.count("entrypoint: database initialised") == 1
        assert logs.count("database system is ready to accept connections") >= 2
        container.reload()  # the server is PID 1 (exec'ed), no longer root
        assert _uid(container.attrs["State"]["Pid"]) != 0
    finally:
        container.remove(force=True, v=True)


def test_postgres_missing_a_file_only_initdb_needs_fails_verification(client, built):
    b = built("postgres-broken")
    assert b.run.code == ExitStatus.VERIFY, b.run.stderr
    assert re.fullmatch(
        r"minify: error: verification failed: the minified app exited with code 1 after "
        r"[0-9.]+ s, before listening on port\(s\) 5432; kept as "
        r"minify-test/shared-postgres-broken\.min:e2e, labelled minify\.verified=false",
        b.error_line)
    assert ('initdb: error: file "/usr/share/postgresql/15/postgres.bki" does not exist'
            in b.run.stderr)
    assert "hint: try --include-path /usr/share/postgresql/15/postgres.bki" in b.run.stderr
    v = b.report["verify"]
    assert v["status"] == "failed" and [m["kind"] for m in v["mismatches"]] == ["liveness"]
    assert not v["liveness"]["ok"] and not v["liveness"]["restarted"]
    assert _labels(client, b.tag)["minify.verified"] == "false"


# -- redis: a key-value server with an exec-form HEALTHCHECK ----------------------------


def test_redis_with_a_client_probe(client, built):
    b = built("redis")
    assert b.run.code == 0, b.run.stderr
    v = b.report["verify"]
    assert v["status"] == "passed"
    assert (v["health"]["status"], v["health"]["test"]) == ("passed", PING)
    assert v["liveness"]["ports"] == [6379] and v["liveness"]["restarted"]
    assert [(e["round"], e["ok"]) for e in v["execs"]] == [(1, True), (2, True)]
    container = _run(client, b.tag)
    try:
        _until(lambda: _healthy(container), "healthy")
        assert container.exec_run(PING) == (0, b"PONG\n")
        assert container.exec_run(["redis-cli", "-h", "127.0.0.1", "set", "k", "v"]) == \
            (0, b"OK\n")
        _restart(container)
        _until(lambda: _healthy(container), "healthy after restart")
        assert container.exec_run(PING) == (0, b"PONG\n")
    finally:
        container.remove(force=True, v=True)


def test_redis_without_its_config_fails_verification_also_with_no_probe(client, built):
    b = built("redis-broken")
    assert b.run.code == ExitStatus.VERIFY, b.run.stderr
    assert re.fullmatch(
        r"minify: error: verification failed: the minified app exited with code 1 after "
        r"[0-9.]+ s, before listening on port\(s\) 6379 \(and 1 more\); kept as "
        r"minify-test/shared-redis-broken\.min:e2e, labelled minify\.verified=false", b.error_line)
    assert ("Fatal error, can't open config file '/etc/redis/minify.conf': No such file or "
            "directory") in b.run.stderr
    assert "hint: try --include-path /etc/redis/minify.conf" in b.run.stderr
    v = b.report["verify"]
    assert [m["kind"] for m in v["mismatches"]] == ["liveness", "log"]
    assert v["requests"] == [] and v["execs"] == []
    assert b.report["probe"]["execs"] == []  # no probe: observation ran 2 s and stopped it
    assert _labels(client, b.tag)["minify.verified"] == "false"


# -- health: an HTTP app whose HEALTHCHECK uses curl through /bin/sh --------------------


def test_healthcheck_image_with_no_options(client, built):
    b = built("health")
    assert b.run.code == 0, b.run.stderr
    assert "running the image's HEALTHCHECK: /bin/sh -c curl -fsS" in b.run.stderr
    v = b.report["verify"]
    assert v["status"] == "passed"
    assert (v["health"]["status"], v["health"]["test"]) == ("passed", CURL_CHECK)
    kept = {k["path"]: k["reasons"] for k in b.report["kept"]}
    # Only the health command needs these: it was traced like the app.
    assert "accessed" in kept["/usr/bin/curl"] and "accessed" in kept["/usr/bin/dash"]
    assert any(p.startswith("/usr/lib/x86_64-linux-gnu/libcurl.so.4") for p in kept)
    assert "/srv/www/healthz" in kept  # served to curl, never crawled
    container = _run(client, b.tag)
    try:
        _until(lambda: _healthy(container), "healthy")
        _restart(container)
        _until(lambda: _healthy(container), "healthy after restart")
    finally:
        container.remove(force=True, v=True)
    paths = ["/", "/about.html", "/healthz"]
    assert answers(client, b.tag, 8080, paths) == answers(client, SANDBOX["health"], 8080, paths)


def test_health_command_missing_curl_fails_verification(client, built):
    b = built("health-broken")
    assert b.run.code == ExitStatus.VERIFY, b.run.stderr
    assert b.error_line == (
        "minify: error: verification failed: the minified container turned unhealthy: "
        "/bin/sh: 1: curl: not found; kept as minify-test/shared-health-broken.min:e2e, labelled "
        "minify.verified=false")
    assert "hint: try --include-path /usr/bin/curl" in b.run.stderr
    v = b.report["verify"]
    assert (v["health"]["status"], v["health"]["output"]) == ("failed",
                                                             "/bin/sh: 1: curl: not found")
    assert all(r["ok"] for r in v["requests"])  # the app itself answers like the original
    assert _labels(client, b.tag)["minify.verified"] == "false"


def test_no_healthcheck_opts_out_and_says_so(client, built):
    b = built("health-opt-out")
    assert b.run.code == 0, b.run.stderr
    v = b.report["verify"]
    assert (v["status"], v["health"]["status"], v["health"]["reason"]) == (
        "passed", "skipped", "--no-healthcheck")
    assert "HEALTHCHECK" not in b.run.stderr
    assert "/usr/bin/curl" not in {k["path"] for k in b.report["kept"]}  # never ran


# -- oneshot: a command that prints and exits --------------------------------------------


def test_one_shot_command_exits_like_the_original(client, built):
    b = built("oneshot")  # no option: the image exposes no port, HTTP probing is skipped
    assert b.run.code == 0, b.run.stderr
    note = ("HTTP probing skipped: image minify-sandbox/oneshot:latest exposes no TCP port "
            "(--expose PORT or --http-probe-ports PORT probes one)")
    assert b.report["probe"]["notes"] == [note] and f"minify:   {note}" in b.run.stderr
    assert b.report["probe"]["requests"] == [] and b.report["probe"]["ports"] == []
    live = b.report["verify"]["liveness"]
    assert (live["shape"], live["original_exit_code"], live["minified_exit_code"],
            live["compared"], live["restarted"]) == ("one-shot", 0, 0, "exit code+stdout", True)
    assert "verify  passed (one-shot command, exit code 0; restarted)" in b.run.stdout
    container = client.containers.create(b.tag, labels={"minify.run": "test"})
    try:
        for _ in range(2):  # a first run, then a restart
            container.start()
            assert container.wait(timeout=BOUND)["StatusCode"] == 0
        assert container.logs().decode() == "items: 4\nfirst: apple\n" * 2
    finally:
        container.remove(force=True, v=True)


def test_one_shot_command_missing_its_data_fails_with_the_exit_codes(client, built):
    b = built("oneshot-broken")
    assert b.run.code == ExitStatus.VERIFY, b.run.stderr
    assert b.error_line == (
        "minify: error: verification failed: the minified command exited with code 2, the "
        "original with 0 (and 1 more); kept as minify-test/shared-oneshot-broken.min:e2e, labelled "
        "minify.verified=false")
    assert ("the minified command exited with code 2, the original with 0 (after docker "
            "restart)") in b.run.stderr
    assert "cannot open /usr/share/oneshot/items.txt: No such file" in b.run.stderr
    assert "hint: try --include-path /usr/share/oneshot/items.txt" in b.run.stderr


def test_an_image_that_cannot_start_is_a_verification_failure(client, built):
    b = built("oneshot-no-start")
    assert b.run.code == ExitStatus.VERIFY, b.run.stderr
    assert b.error_line.startswith(
        "minify: error: verification failed: the minified command did not start: ")
    assert "stat /usr/local/bin/summary: no such file or directory" in b.error_line
    assert b.error_line.endswith("labelled minify.verified=false")
    assert _labels(client, b.tag)["minify.verified"] == "false"


def test_an_exec_probe_that_fails_is_a_probe_failure(client, built):
    b = built("oneshot-exec-fails")
    assert b.run.code == ExitStatus.PROBE, b.run.stderr
    assert b.error_line == ("minify: error: exec probe 'cat /etc/no-such-file' exited with "
                            "code 1")
    assert "cat: /etc/no-such-file: No such file or directory" in b.run.stderr
    assert "--exec-allow-fail" in b.run.stderr


def test_an_allowed_failing_exec_probe_must_fail_the_same_way(client, built):
    b = built("oneshot-exec-allowed")
    assert b.run.code == 0, b.run.stderr
    assert [(e["round"], e["argv"], e["original_exit_code"], e["minified_exit_code"], e["ok"])
            for e in b.report["verify"]["execs"]] == [
        (1, ["cat", "/etc/no-such-file"], 1, 1, True),
        (2, ["cat", "/etc/no-such-file"], 1, 1, True)]


# -- readiness without HTTP: a port that never listens, an app that exits first ---------


def test_a_port_that_never_listens_is_named(client):
    run = minify("build", SANDBOX["nolisten"], "--no-http-probe", "--start-wait", "3")
    assert run.code == ExitStatus.APP, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("minify: error:")]
    assert errors == ["minify: error: the app did not listen on port(s) 8080 within 3 s"]
    assert "hint: the image exposes port(s) 8080; if the app starts slowly, a longer " \
           "--start-wait" in run.stderr
    assert run.seconds < 3 + 30


def test_an_app_that_exits_before_listening_shows_its_output(client):
    run = minify("build", SANDBOX["crash"], "--no-http-probe")
    assert run.code == ExitStatus.APP, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("minify: error:")]
    assert len(errors) == 1 and re.fullmatch(
        r"minify: error: the app exited after [0-9.]+ s, before listening on port\(s\) 8080",
        errors[0])
    assert "  fatal: config missing" in run.stderr

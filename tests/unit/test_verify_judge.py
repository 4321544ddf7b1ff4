"""Verification's verdict from the runs of the original and the minified image: liveness
for each app shape, HEALTHCHECK, exec probes, restart; and the exec-probe rule of
observation (a non-zero exit is a probe failure unless allowed)."""

import pytest

from minifier.errors import ProbeError
from minifier.observe.probing import check_probes
from minifier.options import BuildOptions, ContainerOptions, MountSpec, ProbeSetup, RunOptions
from minifier.output.exercise import ExecRun, Exercise, HealthState, Round, Script
from minifier.output.verify import (
    _overrides,
    _round_failure,
    _script,
    _StablePorts,
    judge,
    shares_with_original,
    stable_ports,
)
from minifier.records import AppLife, ExecOutcome, HealthOutcome, HealthSpec, Observation
from tests.unit.fixtures import image_info

SERVICE = AppLife(ran_seconds=4.2, exit_code=None, listening=(5432, 41234))
ONE_SHOT = AppLife(ran_seconds=0.5, exit_code=0, listening=(), output="items: 4")
PSQL = ("psql", "-h", "127.0.0.1", "-c", "select 1")
CHECK = HealthSpec(argv=("/bin/sh", "-c", "curl -f http://127.0.0.1/"), interval=1.0,
                   timeout=5.0, start_period=0.0, retries=3)


def _obs(life, execs=(), health=None, outputs=None):
    """`execs` probes whose traced runs printed `outputs` (default "1")."""
    outputs = outputs or ["1\n"] * len(execs)
    return Observation(http=None, target=None, health=health, life=life,
                       execs=tuple(ExecOutcome(a, 0, o, None) for a, o in zip(execs, outputs)))


def _printed(code, stdout):
    return Round(exit_code=code, stdout=stdout, output=stdout)


def _ok(stdout="1\n"):
    return ExecRun(0, stdout, stdout)


def _service(*rounds, logs=""):
    return Exercise(rounds=tuple(rounds), logs=logs)


def test_a_service_that_lives_like_the_original_passes():
    original = _service(Round(execs=(_ok(),), listening=(5432, 38000)),
                        Round(execs=(_ok(),), listening=(5432, 39000)))
    minified = _service(Round(execs=(_ok(),), listening=(5432,)),
                        Round(execs=(_ok(),), listening=(5432,)))
    v = judge(_obs(SERVICE, [PSQL]), Script(), original, minified)
    assert v.status == "passed", v.mismatches
    assert v.liveness.shape == "service" and v.liveness.restarted
    assert v.liveness.ports == (5432,)  # 41234 was an ephemeral port of the traced run
    assert v.liveness.required_seconds == 4.2
    assert [(e.round, e.compared, e.ok) for e in v.execs] == [
        (1, "exit code+stdout", True), (2, "exit code+stdout", True)]
    assert v.health.status == "none"


def test_a_service_that_exits_at_start_fails_with_its_exit_and_last_lines():
    original = _service(Round(execs=(_ok(),), listening=(5432,)),
                        Round(execs=(_ok(),), listening=(5432,)))
    minified = _service(Round(failure="exited with code 1 after 0.3 s, before listening on "
                                      "port(s) 5432"),
                        logs="initdb: error: file \"/usr/share/x.bki\" does not exist\n")
    v = judge(_obs(SERVICE, [PSQL]), Script(), original, minified)
    assert v.status == "failed"
    assert v.reason == ("the minified app exited with code 1 after 0.3 s, before listening "
                        "on port(s) 5432")
    assert v.liveness.ok is False and v.liveness.restarted is False
    assert v.minified_output == ('initdb: error: file "/usr/share/x.bki" does not exist',)
    assert v.execs == ()  # nothing ran: nothing compared, nothing passed


def test_a_port_no_longer_listened_on_after_restart_fails():
    original = _service(Round(listening=(6379,)), Round(listening=(6379,)))
    minified = _service(Round(listening=(6379,)), Round(listening=()))
    v = judge(_obs(AppLife(1.0, None, (6379,))), Script(), original, minified)
    assert [m.text for m in v.mismatches] == [
        "the minified app does not listen on port(s) 6379 (the original does) "
        "(after docker restart)"]


def test_an_exec_probe_is_compared_by_exit_code_and_stable_stdout():
    original = _service(Round(execs=(_ok("a\n"), _ok("t1\n"))),
                        Round(execs=(_ok("a\n"), _ok("t2\n"))))
    minified = _service(Round(execs=(ExecRun(2, "", "psql: error: no such file\n"),
                                     _ok("t3\n"))),
                        Round(execs=(_ok("b\n"), _ok("t4\n"))))
    v = judge(_obs(AppLife(1.0, None, ()), [PSQL, ("date",)], outputs=["a", "t0\n"]),
              Script(), original, minified)
    assert [(e.round, e.argv[0], e.compared, e.ok) for e in v.execs] == [
        (1, "psql", "exit code+stdout", False), (1, "date", "exit code", True),
        (2, "psql", "exit code+stdout", False), (2, "date", "exit code", True)]
    assert [m.text for m in v.mismatches] == [
        "exec psql -h 127.0.0.1 -c select 1: original exit 0, minified exit 2",
        "exec psql -h 127.0.0.1 -c select 1: the minified output differs from the original's "
        "(after docker restart)"]
    assert v.execs[0].minified_output == "psql: error: no such file\n"


def test_an_exec_probe_printing_its_container_s_name_is_compared_by_exit_code():
    """`hostname` prints the same in both rounds of one container (a restart keeps it),
    but not in the traced container: not stable, so not compared."""
    original = _service(Round(execs=(_ok("0a1b2c3d4e5f\n"),)),
                        Round(execs=(_ok("0a1b2c3d4e5f\n"),)))
    minified = _service(Round(execs=(_ok("9f8e7d6c5b4a\n"),)),
                        Round(execs=(_ok("9f8e7d6c5b4a\n"),)))
    v = judge(_obs(AppLife(1.0, None, ()), [("hostname",)], outputs=["5e5e5e5e5e5e\n"]),
              Script(), original, minified)
    assert v.status == "passed"
    assert {e.compared for e in v.execs} == {"exit code"}


def test_a_one_shot_command_needs_the_same_exit_code_and_output():
    original = _service(_printed(0, "items: 4\n"), _printed(0, "items: 4\n"))
    same = _service(_printed(0, "items: 4\n"), _printed(0, "items: 4\n"))
    v = judge(_obs(ONE_SHOT), Script(one_shot=True), original, same)
    assert v.status == "passed"
    assert (v.liveness.shape, v.liveness.compared, v.liveness.original_exit_code,
            v.liveness.minified_exit_code) == ("one-shot", "exit code+stdout", 0, 0)
    broken = _service(_printed(2, ""), _printed(0, "items: 3\n"))
    v = judge(_obs(ONE_SHOT), Script(one_shot=True), original, broken)
    assert [m.text for m in v.mismatches] == [
        "the minified command exited with code 2, the original with 0",
        "the minified command printed other output than the original: original 'items: 4', "
        "minified 'items: 3' (after docker restart)"]


def test_a_one_shot_command_with_unstable_output_is_compared_by_exit_code():
    original = _service(_printed(0, "12:00\n"), _printed(0, "12:00\n"))
    minified = _service(_printed(0, "12:02\n"), _printed(0, "12:02\n"))
    v = judge(_obs(ONE_SHOT), Script(one_shot=True), original, minified)
    assert v.status == "passed" and v.liveness.compared == "exit code"
    # The traced run (another container) is one of the original's runs: its output differs.
    traced = AppLife(ran_seconds=0.5, exit_code=0, listening=(), output="11:59")
    v = judge(_obs(traced), Script(one_shot=True), original, minified)
    assert v.status == "passed" and v.liveness.compared == "exit code"


def test_health_is_docker_s_verdict_on_the_minified_container():
    passed = HealthOutcome(CHECK, "passed", 1, 0, "")
    original = _service(Round(listening=(80,)), Round(listening=(80,)))
    minified = _service(
        Round(listening=(80,), health=HealthState("unhealthy", 3.4,
                                                  "/bin/sh: 1: curl: not found")))
    v = judge(_obs(AppLife(1.0, None, (80,)), health=passed), Script(), original, minified)
    assert v.reason == "the minified container turned unhealthy: /bin/sh: 1: curl: not found"
    assert (v.health.status, v.health.test, v.health.output) == (
        "failed", CHECK.argv, "/bin/sh: 1: curl: not found")
    healthy = _service(Round(listening=(80,), health=HealthState("healthy", 1.1)),
                       Round(listening=(80,), health=HealthState("healthy", 1.2)))
    v = judge(_obs(AppLife(1.0, None, (80,)), health=passed), Script(), original, healthy)
    assert (v.status, v.health.status, v.health.seconds) == ("passed", "passed", 1.1)
    starting = _service(Round(listening=(80,), health=HealthState("starting", 8.0)))
    v = judge(_obs(AppLife(1.0, None, (80,)), health=passed), Script(), original, starting)
    assert v.reason == "the minified container did not turn healthy within 8 s"


def test_the_original_is_replayed_only_once_docker_calls_it_healthy():
    """qa/lemp-health: the original answered 502 when replayed before its HEALTHCHECK
    passed. Both images now wait for `healthy` before anything is replayed, and an
    original that does not turn healthy leaves nothing to compare with."""
    life = AppLife(1.0, None, (80,))
    obs = _obs(life, health=HealthOutcome(CHECK, "passed", 1, 0, ""))
    script = _script(image_info(cmd=("x",), exposed_ports=("80/tcp",)), obs,
                     BuildOptions(image="x:1"), life)
    assert (script.health, script.health_bound) == (True, CHECK.bound)
    assert _round_failure(Round(health=HealthState("healthy", 2.0)), script) == ""
    assert _round_failure(Round(health=HealthState("starting", 9.0)), script) == \
        "did not turn healthy within 8 s"  # the bound
    assert _round_failure(Round(health=HealthState("unhealthy", 4.0, "curl: (7) refused")),
                          script) == "turned unhealthy: curl: (7) refused"
    assert _round_failure(Round(failure="exited with code 1 after 0.2 s"), script) == \
        "exited with code 1 after 0.2 s"
    skipped = _obs(life, health=HealthOutcome(CHECK, "skipped"))
    assert not _script(image_info(cmd=("x",)), skipped, BuildOptions(image="x:1"), life).health


def test_no_healthcheck_is_reported_as_skipped():
    skipped = HealthOutcome(CHECK, "skipped")
    original = _service(Round(), Round())
    v = judge(_obs(AppLife(1.0, None, ())), Script(), original, original)
    assert v.health.status == "none"
    v = judge(_obs(AppLife(1.0, None, ()), health=skipped), Script(), original, original)
    assert (v.status, v.health.status, v.health.reason) == ("passed", "skipped",
                                                            "--no-healthcheck")
    opts = BuildOptions(image="x:1", probe=ProbeSetup(http=None, healthcheck=False))
    assert _overrides(opts)["healthcheck"] == {"test": ["NONE"]}
    assert "healthcheck" not in _overrides(BuildOptions(image="x:1"))


def test_stable_ports_are_those_of_every_run():
    runs = _service(Round(listening=(80, 443, 40001)), Round(listening=(80, 443, 40002)))
    assert stable_ports(AppLife(1.0, None, (80, 443, 39999)), runs) == (80, 443)


class _OriginalSoFar:
    """The two things _StablePorts asks of the original's run in the background."""

    def __init__(self, *rounds: Round) -> None:
        self.rounds, self.waited = list(rounds), False

    def rounds_so_far(self):
        return tuple(self.rounds)

    def wait(self):
        self.waited = True


def test_ports_waited_for_alongside_narrow_as_the_original_rounds_end():
    """The minified app, run while the original's run goes on, is first waited for on
    every port the traced app listened on; each round of the original that ends drops a
    port it did not listen on (an ephemeral one), and the settled set is stable_ports."""
    life = AppLife(1.0, None, (80, 443, 39999))
    original = _OriginalSoFar()
    demand = _StablePorts(life, original)
    assert demand.now() == {80, 443, 39999}
    original.rounds.append(Round(listening=(80, 443, 40001)))
    assert demand.now() == {80, 443}
    original.rounds.append(Round(listening=(80, 40002)))
    assert demand.now() == {80}
    assert not original.waited
    assert demand.settled() == {80} and original.waited
    assert demand.settled() == set(stable_ports(life, _service(*original.rounds)))


def _opts(**container) -> BuildOptions:
    return BuildOptions(image="x:1", run=RunOptions(container=ContainerOptions(**container)))


def test_the_minified_image_runs_alongside_the_original_unless_they_could_meet():
    assert not shares_with_original(_opts())
    assert not shares_with_original(_opts(network="bridge"))
    assert not shares_with_original(_opts(network="none"))
    # Each container's own: a tmpfs, an anonymous volume.
    assert not shares_with_original(_opts(mounts=(MountSpec(kind="tmpfs", target="/run"),
                                                  MountSpec(kind="volume", target="/data"))))
    # One data directory (a database's lock), one network namespace (the same ports).
    assert shares_with_original(_opts(mounts=(MountSpec(kind="bind", target="/config",
                                                        source="/srv/conf"),)))
    assert shares_with_original(_opts(mounts=(MountSpec(kind="volume", target="/data",
                                                        source="pgdata"),)))
    assert shares_with_original(_opts(network="host"))
    assert shares_with_original(_opts(network="container:db"))
    # A peer both would talk to at once (a database migrated at start).
    assert shares_with_original(_opts(network="appnet"))
    assert shares_with_original(_opts(links=(("pg", "db"),)))


def test_loader_errors_the_original_did_not_print_fail():
    original = _service(Round(), Round(), logs="starting\n")
    minified = _service(Round(), Round(),
                        logs="starting\napp: error while loading shared libraries: libz.so.1\n")
    v = judge(_obs(AppLife(1.0, None, ())), Script(), original, minified)
    assert [(m.kind, m.text) for m in v.mismatches] == [
        ("log", "app: error while loading shared libraries: libz.so.1")]


@pytest.mark.parametrize("code,allowed,message", [
    (2, False, "exec probe 'psql -h 127.0.0.1 -c select 1' exited with code 2"),
    (-9, False, "exec probe 'psql -h 127.0.0.1 -c select 1' was killed by signal 9"),
    (None, False, "exec probe 'psql -h 127.0.0.1 -c select 1' did not finish"),
    (None, True, "exec probe 'psql -h 127.0.0.1 -c select 1' did not finish"),
])
def test_an_exec_probe_that_fails_is_a_probe_failure(code, allowed, message):
    obs = Observation(http=None, target=None, execs=(
        ExecOutcome(PSQL, code, "psql: error: the database system is starting up\n", None),))
    with pytest.raises(ProbeError) as err:
        check_probes(obs, ProbeSetup(http=None, exec_allow_fail=allowed))
    assert err.value.message == message
    if code is not None:
        assert "the database system is starting up" in err.value.detail
        assert "--exec-allow-fail" in err.value.detail


def test_an_allowed_non_zero_exec_probe_passes_observation():
    obs = Observation(http=None, target=None, execs=(ExecOutcome(PSQL, 1, "", None),))
    check_probes(obs, ProbeSetup(http=None, exec_allow_fail=True))


def test_an_http_timeout_while_verifying_is_a_reason():
    from requests.exceptions import ReadTimeout

    from minifier.output.verify import _broken

    v = _broken("minified", ReadTimeout("HTTPConnectionPool(host='localhost', port=None): "
                                        "Read timed out. (read timeout=120)"))
    assert v.status == "failed"
    assert v.reason == ("verification could not finish while running the minified image: "
                        "ReadTimeout: HTTPConnectionPool(host='localhost', port=None): Read "
                        "timed out. (read timeout=120)")

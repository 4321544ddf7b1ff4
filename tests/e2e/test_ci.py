"""minify in CI: the container image and its `docker run` flags, the outputs meant for
machines (--json, --report-file, --summary-md, thresholds), the seccomp profile, and
every command of docs/ci.md.

The containerised runs use `minify:latest` built by scripts/build-image.sh (a module
fixture; cached, so seconds when nothing changed). The output tests use the host venv's
`minify` through subprocess, like a CI job would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minifier.errors import ExitStatus
from minifier.observe.pause import pause_binary
from minifier.output.seccomp_profile import RUNC_SYSCALLS, RUNTIME_SYSCALLS
from minifier.output.summary import human_size

from . import helpers
from .conftest import SANDBOX
from .helpers import answers

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "ci.md"
MINIFY = str(Path(sys.executable).with_name("minify"))
IMAGE = "minify:latest"
CI_LABEL = "minify.ci-test"

# The documented flags (docs/ci.md), in the documented order.
SOCKET = ["-v", "/var/run/docker.sock:/var/run/docker.sock"]
PID = ["--pid=host"]
NETWORK = ["--network=host"]
CGROUPNS = ["--cgroupns=host"]
PTRACE = ["--cap-add", "SYS_PTRACE"]
ADMIN = ["--cap-add", "SYS_ADMIN"]
SECCOMP = ["--security-opt", "seccomp=unconfined"]
APPARMOR = ["--security-opt", "apparmor=unconfined"]
FLAGS = [*SOCKET, *PID, *NETWORK, *CGROUPNS, *PTRACE, *ADMIN, *SECCOMP, *APPARMOR]

# The commands of docs/ci.md, verbatim (indentation aside): each test checks the page
# still holds its text, then runs it.
DOC_FLAGS_BLOCK = """\
docker run --rm \\
  -v /var/run/docker.sock:/var/run/docker.sock \\
  --pid=host --network=host --cgroupns=host \\
  --cap-add SYS_PTRACE --cap-add SYS_ADMIN \\
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \\
  minify:latest build IMAGE [OPTIONS]"""
MAKE_IMAGE = "make image"
BUILD_APP = 'docker build -t "$APP_IMAGE" .'
BUILD_MINIFY = "minify/scripts/build-image.sh"
MINIFY_STEP = """\
mkdir -p minify-out
run=minify-run-$$
status=0
docker run --name "$run" \\
  -v /var/run/docker.sock:/var/run/docker.sock \\
  --pid=host --network=host --cgroupns=host \\
  --cap-add SYS_PTRACE --cap-add SYS_ADMIN \\
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \\
  minify:latest build "$APP_IMAGE" --tag "$MIN_IMAGE" \\
    --report-file report.json --summary-md summary.md \\
    --min-ratio "$MIN_RATIO" --max-size "$MAX_SIZE" || status=$?
docker cp "$run:/out/." minify-out/
docker rm "$run" >/dev/null
[ "$status" = 0 ] || exit "$status"
"""
SUMMARY_STEP = ('if [ -f minify-out/summary.md ]; then cat minify-out/summary.md >> '
                '"$GITHUB_STEP_SUMMARY"; fi')
TAG_STEP = 'docker tag "$MIN_IMAGE" "$PUSH_IMAGE"'
PIP_STEP = """\
python3 -m venv .minify-venv
.minify-venv/bin/pip install ./minify
mkdir -p minify-out
status=0
sudo .minify-venv/bin/minify build "$APP_IMAGE" --tag "$MIN_IMAGE" \\
  --report-file minify-out/report.json --summary-md minify-out/summary.md \\
  --min-ratio "$MIN_RATIO" --max-size "$MAX_SIZE" || status=$?
sudo chown -R "$(id -u):$(id -g)" minify-out
[ "$status" = 0 ] || exit "$status"
"""
SECCOMP_RUN = "docker run --security-opt seccomp=profile.json IMAGE.min"
# Not run here (no registry, no fresh runner): checked to be on the page only.
UNTESTED = ('docker push "$PUSH_IMAGE"', "docker login",
            "apt-get install -y -q --no-install-recommends docker.io")

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\x1b")


def _norm(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines())


def _doc_has(snippet: str, times: int = 1) -> None:
    assert _norm(DOCS.read_text()).count(_norm(snippet)) >= times, snippet


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_orphans(request):
    """conftest's no_leftovers covers the minify processes helpers.minify starts; the
    containerised minify and the CI steps start theirs through docker or bash. Their
    leftovers are `minify.run` containers made during this test whose `minify.pid`
    (a host pid: --pid=host) is no longer alive (tests label their own containers
    `minify.run=test`, without a pid). Another session's minify still runs
    while it owns containers, so it is never taken for ours."""
    start = time.time()
    yield
    if "client" not in request.fixturenames:
        return
    c = request.getfixturevalue("client")

    def orphans():
        out = []
        for x in c.api.containers(all=True, filters={"label": "minify.run"}):
            pid = (x.get("Labels") or {}).get("minify.pid", "")
            # A container without a pid is a test's own (minify.run=test), perhaps
            # another worker's: never taken for a leftover of minify.
            if x["Created"] >= start - 1 and pid.isdigit() and \
                    not os.path.exists(f"/proc/{pid}"):
                out.append(x["Id"])
        return out

    deadline = time.monotonic() + 10
    left = orphans()
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = orphans()
    for cid in left:
        try:
            c.api.remove_container(cid, force=True)
        except Exception:  # noqa: BLE001
            pass
    assert not left, f"containers left behind: {left}"


@pytest.fixture(scope="module")
def image(client):
    """minify:latest, built the documented way (`make image`)."""
    _doc_has(MAKE_IMAGE)
    proc = _run(["make", "-s", "-C", str(ROOT), "image"], 900)
    assert proc.code == 0, proc.stderr[-3000:]
    return client.images.get(IMAGE)


@pytest.fixture
def tags(client):
    """Image tags a test creates: removed afterwards, whatever happened."""
    made: list[str] = []
    yield made
    for tag in made:
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001
            pass


def _run(cmd, timeout, **kw) -> helpers.Run:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    return helpers.Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def _docker_minify(flags, *args, timeout=300, name=None):
    """`docker run --rm FLAGS minify:latest build ARGS` -> CompletedProcess."""
    name = name or f"minify-ci-{secrets.token_hex(4)}"
    cmd = ["docker", "run", "--rm", "--name", name, "--label", CI_LABEL, *flags, IMAGE,
           "build", *args]
    try:
        return _run(cmd, timeout)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def _host_minify(*args, timeout=300):
    """The host's minify as a subprocess (helpers.minify: its containers are tracked)."""
    return helpers.minify("build", *args, timeout=timeout)


def _exists(client, tag) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:  # noqa: BLE001
        return False


# -- the container and its flags ---------------------------------------------------------


def test_second_image_build_is_cached(image):
    start = time.monotonic()
    proc = _run(["bash", str(ROOT / "scripts" / "build-image.sh")], 300)
    assert proc.code == 0, proc.stderr
    assert time.monotonic() - start < 30
    assert "up to date" in proc.stderr


def test_containerised_minify_builds_and_verifies(client, image, tags):
    _doc_has(DOC_FLAGS_BLOCK)
    tag = "minify-test/ci-busybox.min:e2e"
    tags.append(tag)
    proc = _docker_minify(FLAGS, SANDBOX["busybox"], "--tag", tag, "--json")
    assert proc.code == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verify"]["status"] == "passed"
    assert report["output"]["image"] == tag
    assert client.images.get(tag).id == report["output"]["id"]


def _drop(flags, removed):
    out, i = [], 0
    while i < len(flags):
        for r in removed:
            if flags[i:i + len(r)] == list(r):
                i += len(r)
                break
        else:
            out.append(flags[i])
            i += 1
    return out


@pytest.mark.parametrize("case,flags,extra,codes,message", [
    ("no socket", _drop(FLAGS, [SOCKET]), (), {ExitStatus.ENGINE},
     "cannot reach the Docker engine at unix:///var/run/docker.sock"),
    ("no SYS_PTRACE", _drop(FLAGS, [PTRACE]), (), {ExitStatus.CAPABILITY},
     "missing capabilities: CAP_SYS_PTRACE"),
    ("no SYS_ADMIN", _drop(FLAGS, [ADMIN]), (), {ExitStatus.CAPABILITY},
     "missing capabilities: CAP_SYS_ADMIN"),
    ("no --network=host", _drop(FLAGS, [NETWORK]), ("--http-probe-start-wait", "5"),
     {ExitStatus.APP}, "no HTTP answer on port(s) 8080"),
    ("no --pid=host", _drop(FLAGS, [PID]), (), {ExitStatus.CAPABILITY},
     "give it --pid=host"),
    ("no seccomp=unconfined", _drop(FLAGS, [SECCOMP]), (), {ExitStatus.CAPABILITY},
     "cannot confine /bin/httpd like docker run would: the container's seccomp filter "
     "cannot be read because minify itself runs under seccomp (the kernel shows a filter "
     "only to an unconfined tracer): give minify's own container "
     "--security-opt seccomp=unconfined"),
    ("read-only, no writable /tmp", [*FLAGS, "--read-only"], (),
     {ExitStatus.USAGE}, "cannot create a temporary directory"),
])
def test_a_missing_flag_fails_with_its_documented_error(client, image, tags, case, flags,
                                                         extra, codes, message):
    tag = "minify-test/ci-flags.min:e2e"
    tags.append(tag)
    proc = _docker_minify(flags, SANDBOX["busybox"], "--tag", tag, "--json", *extra)
    assert proc.code in codes, (case, proc.code, proc.stderr)
    assert message in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)  # with --json, the error document and nothing else
    assert (doc["schema"], doc["error"]["exit_code"], doc["report"]) == (
        "minify.error/v1", proc.code, None)
    assert message in f"{doc['error']['message']}\n{doc['error']['detail']}"
    assert not _exists(client, tag)


def test_read_only_root_works_with_a_tmpfs(client, image, tags):
    tag = "minify-test/ci-ro.min:e2e"
    tags.append(tag)
    proc = _docker_minify([*FLAGS, "--read-only", "--tmpfs", "/tmp"], SANDBOX["busybox"],
                          "--tag", tag, "--json")
    assert proc.code == 0, proc.stderr


# -- outputs for machines (host minify) --------------------------------------------------


@pytest.fixture(scope="module")
def busybox_outputs(client, tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    tag = "minify-test/ci-outputs.min:e2e"
    proc = _host_minify(SANDBOX["busybox"], "--tag", tag, "--json",
                        "--report-file", str(out / "report.json"),
                        "--summary-md", str(out / "summary.md"))
    yield proc, out, tag
    try:
        client.images.remove(tag, force=True)
    except Exception:  # noqa: BLE001
        pass


def test_json_on_stdout_equals_the_report_file(client, busybox_outputs):
    proc, out, tag = busybox_outputs
    assert proc.code == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    assert proc.stdout.lstrip().startswith("{") and proc.stdout.rstrip().endswith("}")
    assert doc == json.loads((out / "report.json").read_text())
    assert doc["schema"] == "minify.report/v2"
    assert doc["verify"]["status"] == "passed"
    assert _exists(client, tag)


def test_progress_goes_to_stderr_without_control_characters(busybox_outputs):
    proc, _, _ = busybox_outputs
    assert "minify: inspecting" in proc.stderr
    assert "minify: inspecting" not in proc.stdout
    bad = CONTROL.findall(proc.stderr)
    assert not bad, f"control characters in stderr: {bad[:5]!r}"


def test_summary_md_is_a_before_after_table(busybox_outputs):
    proc, out, tag = busybox_outputs
    doc = json.loads(proc.stdout)
    md = (out / "summary.md").read_text()
    lines = md.splitlines()
    assert "| | before | after |" in lines
    assert "| --- | --- | --- |" in lines
    size = (f"| size | {human_size(doc['source']['size'])} | "
            f"{human_size(doc['output']['size'])} |")
    assert size in lines, md
    assert f"| image | `{SANDBOX['busybox']}` | `{tag}` |" in lines
    assert "verification: **passed**" in md


@pytest.mark.parametrize("option", [("--min-ratio", "1000"), ("--max-size", "1kB")])
def test_threshold_fails_with_exit_8_and_keeps_the_image(client, tmp_path, tags, option):
    tag = f"minify-test/ci-threshold-{option[0].strip('-')}.min:e2e"
    tags.append(tag)
    report = tmp_path / "report.json"
    proc = _host_minify(SANDBOX["busybox"], "--tag", tag, "--json", "--report-file",
                        str(report), *option)
    assert proc.code == ExitStatus.THRESHOLD == 8, proc.stderr
    assert "minify: error:" in proc.stderr and option[0] in proc.stderr
    assert _exists(client, tag)
    doc = json.loads(report.read_text())
    failure = json.loads(proc.stdout)  # the error document, carrying the report
    assert (failure["schema"], failure["error"]["exit_code"], failure["error"]["exit_name"]) \
        == ("minify.error/v1", 8, "threshold")
    assert option[0] in failure["error"]["message"]
    assert failure["report"] == doc
    assert doc["output"]["image"] == tag


# -- seccomp profile ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiled(client, tmp_path_factory):
    built = {}

    def build(name):
        if name not in built:
            out = tmp_path_factory.mktemp(f"seccomp-{name}")
            tag = f"minify-test/ci-seccomp-{name}.min:e2e"
            proc = _host_minify(SANDBOX[name], "--tag", tag, "--json",
                                "--seccomp-profile", str(out / "profile.json"))
            built[name] = (proc, tag, out / "profile.json")
        return built[name]

    yield build
    for _, tag, _ in built.values():
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001
            pass


@pytest.mark.parametrize("name,port", [("busybox", 8080), ("nginx", 80)])
def test_minified_image_answers_like_the_original_under_its_profile(client, profiled, name,
                                                                    port):
    _doc_has(SECCOMP_RUN)
    proc, tag, profile = profiled(name)
    assert proc.code == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verify"]["status"] == "passed"  # verification ran under the profile
    doc = json.loads(profile.read_text())
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO"
    names = set(doc["syscalls"][0]["names"])
    seen = {k for k, v in report["access"]["syscall_counts"].items()
            if v and ":" not in k and not k.startswith("syscall_")}
    assert seen <= names
    paths = sorted({r["path"] for r in report["probe"]["requests"]
                    if r["method"] == "GET" and r["status"] is not None})
    assert "/" in paths
    original = answers(client, SANDBOX[name], port, paths)
    minified = answers(client, tag, port, paths, seccomp_file=str(profile))
    assert minified == original


def test_a_profile_without_execve_does_not_start(client, profiled, tmp_path):
    proc, tag, profile = profiled("busybox")
    assert proc.code == 0, proc.stderr
    doc = json.loads(profile.read_text())
    doc["syscalls"][0]["names"].remove("execve")
    broken = tmp_path / "no-execve.json"
    broken.write_text(json.dumps(doc))
    run = subprocess.run(["docker", "run", "--rm", "--label", "minify.run=test",
                          "--security-opt", f"seccomp={broken}", tag],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "operation not permitted" in run.stderr, run.stderr


@pytest.fixture(scope="module")
def exit0_image(client, tmp_path_factory):
    """A FROM-scratch image whose entrypoint only calls exit_group(0): under a profile
    allowing RUNTIME_SYSCALLS + exit_group, whatever fails is runc's own need."""
    import minifier.observe.pause as pause

    ctx = tmp_path_factory.mktemp("exit0")
    saved = pause._CODE
    pause._CODE = bytes.fromhex("b8e7000000" "31ff" "0f05")  # mov eax,231; xor edi,edi; syscall
    try:
        data = pause_binary()
    finally:
        pause._CODE = saved
    (ctx / "exit0").write_bytes(data)
    (ctx / "exit0").chmod(0o755)
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY exit0 /exit0\nENTRYPOINT ["/exit0"]\n')
    tag = "minify-test/ci-exit0:e2e"
    client.images.build(path=str(ctx), tag=tag, rm=True)
    yield tag
    try:
        client.images.remove(tag, force=True)
    except Exception:  # noqa: BLE001
        pass


def _start_under(tag, names, tmp_path, user=None):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
               "syscalls": [{"names": sorted(set(names) | {"exit_group"}),
                             "action": "SCMP_ACT_ALLOW"}]}
    path = tmp_path / f"p-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps(profile))
    cmd = ["docker", "run", "--rm", "--label", "minify.run=test",
           "--security-opt", f"seccomp={path}"] + (["--user", user] if user else []) + [tag]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_runtime_syscalls_are_enough_for_runc(client, exit0_image, tmp_path):
    for user in (None, "1000:1000"):
        run = _start_under(exit0_image, RUNTIME_SYSCALLS, tmp_path, user)
        assert run.returncode == 0, (user, run.stderr)


@pytest.mark.parametrize("names", [
    *([n] for n in sorted(set(RUNC_SYSCALLS) - {"faccessat", "faccessat2"})),
    ["faccessat", "faccessat2"],  # either one is enough: Go falls back from 2 to 1
])
def test_each_runc_syscall_is_needed(client, exit0_image, tmp_path, names):
    run = _start_under(exit0_image, [n for n in RUNTIME_SYSCALLS if n not in names], tmp_path)
    assert run.returncode != 0, f"runc started without {names}"


# -- the CI commands of docs/ci.md --------------------------------------------------------


@pytest.fixture
def workspace(tmp_path, client, tags):
    """A CI checkout: an app Dockerfile (busybox plus 3 MB it never reads, so the ratio is
    above 2) and minify's repository at ./minify."""
    (tmp_path / "Dockerfile").write_text(
        f"FROM {SANDBOX['busybox']}\nCOPY unused.bin /opt/unused.bin\n")
    (tmp_path / "unused.bin").write_bytes(os.urandom(3_000_000))
    (tmp_path / "minify").symlink_to(ROOT)
    env = {**os.environ,
           "APP_IMAGE": "minify-test/ci-app:e2e", "MIN_IMAGE": "minify-test/ci-app.min:e2e",
           "PUSH_IMAGE": "registry.invalid/minify-test/ci-app:min",
           "MIN_RATIO": "2", "MAX_SIZE": "50MB",
           "MINIFY_IMAGE_BASE": "minify-sandbox/debian:bookworm",
           "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"),
           "DOCKER_BUILDKIT": "0"}
    tags.extend([env["APP_IMAGE"], env["MIN_IMAGE"], env["PUSH_IMAGE"]])
    return tmp_path, env


def _step(script, cwd, env, timeout=600):
    """One `run:` step as GitHub runs it (bash -e); sudo is a no-op when already root."""
    prelude = 'if ! command -v sudo >/dev/null; then sudo() { "$@"; }; fi\n'
    return _run(["bash", "-e", "-c", prelude + script], timeout, cwd=cwd, env=env)


def test_documented_ci_job_runs(client, image, workspace):
    ws, env = workspace
    for snippet, times in ((BUILD_APP, 2), (BUILD_MINIFY, 2), (MINIFY_STEP, 2),
                           (SUMMARY_STEP, 1), (TAG_STEP, 2), (PIP_STEP, 1)):
        _doc_has(snippet, times)  # the GitHub workflow and the GitLab job
    for text in UNTESTED:
        assert text in DOCS.read_text(), text
    for snippet in (BUILD_APP, BUILD_MINIFY, MINIFY_STEP, SUMMARY_STEP, TAG_STEP):
        proc = _step(snippet, ws, env)
        assert proc.code == 0, (snippet, proc.stderr[-3000:])
    report = json.loads((ws / "minify-out" / "report.json").read_text())
    assert report["verify"]["status"] == "passed"
    assert report["ratio"] >= 2
    assert (ws / "minify-out" / "report.json").stat().st_uid == os.getuid()
    summary = (ws / "step-summary.md").read_text()
    assert "| | before | after |" in summary
    assert client.images.get(env["PUSH_IMAGE"]).id == report["output"]["id"]
    assert not client.containers.list(all=True, filters={"name": "minify-run-"})


def test_documented_ci_job_fails_on_a_threshold(client, image, workspace):
    ws, env = workspace
    proc = _step(BUILD_APP, ws, env)
    assert proc.code == 0, proc.stderr
    proc = _step(MINIFY_STEP, ws, {**env, "MIN_RATIO": "1000"})
    assert proc.code == ExitStatus.THRESHOLD, proc.stderr[-3000:]
    assert "below --min-ratio 1000" in proc.stderr
    report = json.loads((ws / "minify-out" / "report.json").read_text())
    assert report["output"]["image"] == env["MIN_IMAGE"]
    assert (ws / "minify-out" / "summary.md").exists()
    assert _exists(client, env["MIN_IMAGE"])
    assert not client.containers.list(all=True, filters={"name": "minify-run-"})


def test_documented_pip_installed_variant_runs(client, workspace):
    ws, env = workspace
    if shutil.which("python3") is None:
        pytest.fail("python3 is needed for the pip-installed variant")
    proc = _step(BUILD_APP, ws, env)
    assert proc.code == 0, proc.stderr
    proc = _step(PIP_STEP, ws, env, timeout=900)
    assert proc.code == 0, proc.stderr[-3000:]
    report = json.loads((ws / "minify-out" / "report.json").read_text())
    assert report["verify"]["status"] == "passed" and report["ratio"] >= 2
    assert "| | before | after |" in (ws / "minify-out" / "summary.md").read_text()

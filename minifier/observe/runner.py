"""Start the image's app inside a container, traced from its first instruction.

The container's PID 1 is a tiny do-nothing program (see pause.py), bind-mounted from
the host where the engine sees the host's files, else copied into the container, so the
container exists with all its namespaces, ports and mounts, but the app is not
yet running. The tracer then enters those namespaces from the host and execs the app
with exactly the image's Entrypoint + Cmd, Env, WorkingDir and User. The app can be
stopped like `docker stop` and started again, traced, in the same container (its
writable layer keeps what the first run wrote), as `docker restart` would. The monitors (the
fanotify watcher on the container's root filesystem, then the app's tracer process) are
started and stopped through monitor.py. Everything created here is removed on every exit
path: the context manager's exit runs on errors and on the Interrupted exception that the
CLI raises for SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import secrets
import signal
import tarfile
import time
from dataclasses import dataclass, field, replace
from typing import Optional

import docker
from docker.errors import APIError, DockerException

from minifier.engine import (
    Reaper,
    container_labels,
    published_ports,
    remove_container,
    signals_deferred,
)
from minifier.errors import AppError, CapabilityError, EngineError, UsageError
from minifier.image.imagefs import ImageFS, scan
from minifier.image.users import resolve_user
from minifier.observe.appspec import app_user, docker_run_kwargs, launch_spec, stop_signal
from minifier.observe.monitor import Monitor, MonitorResult, start_monitors, stop_monitors
from minifier.observe.pause import pause_binary
from minifier.observe.tracerprocess import SpareTracer, TracerProcess, tail
from minifier.observe.watcher import Watcher
from minifier.options import RunOptions
from minifier.procfs import listening_ports, namespace_pids, read_in_root
from minifier.records import AppLife, ExecOutcome, ImageInfo, LaunchSpec

__all__ = ["ObservedRun", "Restarted", "TracedContainer"]

PAUSE_PATH = "/.minify-pause"
# With --read-only the engine refuses to copy into the root filesystem, but not into a
# volume: the stand-in then lives in an anonymous volume (removed with the container).
PAUSE_VOLUME = "/.minify"
KILL_POLL = 0.05  # seconds between looks for processes left after a SIGKILL


@dataclass(frozen=True)
class ObservedRun:
    """What the monitors recorded of a run, and how the app ended."""

    results: tuple[MonitorResult, ...]  # every monitor's, exec probes' traces included
    app_exit: Optional[int]  # the launched app's exit status (exit code, or -signal)
    app_output: str
    execs: tuple[ExecOutcome, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()
    life: Optional[AppLife] = None


def _pause_archive(name: str) -> bytes:
    data = pause_binary()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o555
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _port_spec(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


@dataclass(frozen=True)
class Restarted:
    """How the app's run before a restart lived, and how it was stopped."""

    life: AppLife
    stop: str  # "stopped by SIGTERM", "killed: ..."; "" when it had ended by itself

class TracedContainer:
    """A container whose app runs under the tracer; use as a context manager."""

    def __init__(self, client: docker.DockerClient, image: ImageInfo,
                 spec: Optional[LaunchSpec], opts: RunOptions, workdir: str,
                 reaper: Optional[Reaper] = None, bind_pause: bool = False) -> None:
        """`spec` None: derived from the image, its USER resolved against the image's own
        /etc/passwd and /etc/group, read from the created container. `reaper`: removes
        the container once the run went well, while the build goes on. `bind_pause`: the
        engine may see this host's files (engineinfo.may_bind_host_files): the stand-in
        is then bind-mounted, not copied in, unless the engine finds no such file."""
        self._client = client
        self._reaper = reaper
        self._bind_pause = bind_pause
        self._pause_host: Optional[str] = None  # the stand-in's host file, when bound
        self._image = image
        self._spec = spec
        self._opts = opts
        self._dir = workdir
        self._id = secrets.token_hex(6)
        self._container = None
        self._monitors: list[Monitor] = []
        self._app: Optional[TracerProcess] = None
        self._app_started = 0.0
        self._log = os.path.join(workdir, "app.log")  # the running app's output
        # The first run, once the app was restarted: its tracer and how it lived.
        self._first: Optional[tuple[TracerProcess, AppLife]] = None
        self._restarts = 0
        self._execs: list[ExecOutcome] = []
        # The next app start's tracer, started ahead (see SpareTracer), and every spare
        # started: those not taken are ended with the run, whoever holds them.
        self._spare: Optional[SpareTracer] = None
        self._spares: list[SpareTracer] = []
        self.ports: dict[int, int] = {}
        self.warnings: list[str] = []
        self.pid1 = 0

    @property
    def name(self) -> str:
        return f"minify-{self._id}"

    @property
    def app_log(self) -> str:
        """The first run's output (stdout and stderr); a restarted app's is app-N.log."""
        return os.path.join(self._dir, "app.log")

    @property
    def restarts(self) -> int:
        """How often the app was started again (restart_app)."""
        return self._restarts

    def __enter__(self) -> TracedContainer:
        try:
            self._spare = self._new_spare("app")  # starts while the container does
            self._create_and_start()
            if self._spec is None:
                creds = resolve_user(self._user_files(), app_user(self._image, self._opts))
                self._spec = launch_spec(self._image, self._opts, creds)
            spec = replace(self._spec, target_pid=self.pid1, output_path=self.app_log,
                           container_main=True,
                           detach_mount=PAUSE_PATH if self._pause_host else "")
            self._app = TracerProcess(spec, self._dir, "app", self._opts.stop_timeout,
                                      spare=self._take_spare())
            # The watcher first: it sees the app's first accesses too.
            watch = [Watcher(self._root_dir())] if self._opts.fanotify else []
            self._monitors = start_monitors([*watch, self._app], self.warnings)
            self._app_started = time.monotonic()
            failed = self._app.launch_error()
            if failed:  # what `docker run` refuses with "exec: ... not found in $PATH"
                raise AppError(f"cannot start {spec.argv[0]}: {failed}")
            self._spare = self._new_spare("app-2")  # for a restart
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, kind, *exc_info) -> None:
        self._cleanup(background=kind is None and self._reaper is not None)

    @property
    def spec(self) -> LaunchSpec:
        """The app's launch, known once the container exists."""
        assert self._spec is not None
        return self._spec

    @property
    def tracer_pid(self) -> Optional[int]:
        """The app's tracer process (the bench measures its CPU time)."""
        return self._app.tracer_pid if self._app is not None else None

    def app_alive(self) -> bool:
        """The app's main process still runs (its leftovers end with it, as in a container)."""
        return self._app is not None and self._app.alive()

    def wait_app(self, timeout: Optional[float]) -> bool:
        """Until the app has ended, at most `timeout` s; whether it has."""
        return self._app is None or self._app.wait(timeout)

    def app_output_tail(self, lines: int = 20) -> str:
        """The running app's last output lines (after a restart: the new run's)."""
        return tail(self._log, lines)

    def run_exec(self, argv: tuple[str, ...], timeout: float) -> ExecOutcome:
        """Run a command inside the container, traced, and wait for it (an exec probe)."""
        n = len(self._execs)
        out = os.path.join(self._dir, f"exec-{n}.log")
        spec = replace(self._spec, argv=argv, target_pid=self.pid1, output_path=out)
        tracer = TracerProcess(spec, self._dir, f"exec-{n}", self._opts.stop_timeout)
        try:
            tracer.start()
            tracer.wait(timeout)
        finally:
            tracer.stop()
        trace = tracer.read_result()
        with open(out, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        outcome = ExecOutcome(argv=argv, exit_code=trace.exit_status if trace else None,
                              output=output, trace=trace)
        self._execs.append(outcome)
        return outcome

    def listening_ports(self) -> frozenset[int]:
        """TCP ports the container's network namespace listens on (the app's sockets)."""
        return listening_ports(self.pid1)

    def restart_app(self) -> Restarted:
        """Restart the app like `docker restart`: stop it like `docker stop` (the image's
        StopSignal, the grace period, then SIGKILL to every process in the container but
        its stand-in PID 1), then start it again, traced, in the same container; returns
        how the first run lived and was stopped. Why the new run could not start is
        `launch_error()`."""
        assert self._app is not None
        life = self._life()
        if self._first is None:
            self._first = (self._app, life)
        stopped = self._stop_app("before its restart")
        self._kill_app()
        self._app.wait(self._opts.stop_timeout)  # the kill above ends what was left
        self._restarts += 1
        label = f"app-{self._restarts + 1}"
        self._log = os.path.join(self._dir, f"{label}.log")
        tracer = TracerProcess(replace(self._app.spec, output_path=self._log), self._dir, label,
                               self._opts.stop_timeout, spare=self._take_spare())
        self._monitors.extend(start_monitors([tracer], self.warnings))
        self._app, self._app_started = tracer, time.monotonic()
        return Restarted(life, stopped)

    def launch_error(self) -> str:
        """Why the app's last start failed ("": it runs, or ran)."""
        return self._app.launch_error() if self._app is not None else ""

    def finish(self) -> ObservedRun:
        """Stop the app as `docker stop` would (the image's StopSignal, then a bounded
        grace period, then SIGKILL), so its shutdown is traced too; collect the results.
        After a restart, how the app lived and ended is its first run's."""
        assert self._app is not None
        life = self._life()
        self._stop_app()
        # What is left, but the stand-in PID 1: the container itself is removed after.
        if not self._kill_app():
            self._kill_container()
        self._app.wait(self._opts.stop_timeout)  # the kill above ends what was left
        monitors, self._monitors = self._monitors, []
        stop_monitors(monitors)
        results = [m.result() for m in monitors]
        first, life = self._first or (self._app, life)
        results.extend(e.trace for e in self._execs if e.trace is not None)
        return ObservedRun(results=tuple(results), app_exit=first.result().exit_status,
                           app_output=tail(self.app_log, 50), execs=tuple(self._execs),
                           warnings=tuple(self.warnings), life=life)

    def _life(self) -> AppLife:
        """How the running app lives, read before it is stopped: whether it has ended by
        itself, how long it ran and what it listened on are what verification asks of
        the minified app."""
        ended = not self._app.alive()
        return AppLife(ran_seconds=round(time.monotonic() - self._app_started, 3),
                       exit_code=self._app.result().exit_status if ended else None,
                       listening=tuple(sorted(self.listening_ports())),
                       output=tail(self._log, lines=1 << 20) if ended else "")

    # -- internals -------------------------------------------------------------------

    def _create_kwargs(self, bind: Optional[str] = None) -> tuple[dict, str]:
        """The engine's arguments for the traced container, and the stand-in's path;
        `bind`: a host file holding the stand-in, mounted read-only at that path.

        The container gets the user's confinement options, exactly as `docker run`
        would: the engine applies them to PID 1 and the launcher copies them from there
        to every process it starts in the container. One change: a --pids-limit is
        raised by one for the stand-in PID 1, so the app may start exactly as many
        processes as under `docker run`, where it is PID 1 itself.
        """
        ports = {_port_spec(p): ("127.0.0.1", None)
                 for p in (*self._image.exposed_ports, *self._opts.expose)}
        kwargs = docker_run_kwargs(self._opts, app=False)
        if kwargs.get("pids_limit", 0) > 0:
            kwargs["pids_limit"] += 1
        pause = PAUSE_PATH
        if bind is not None:
            kwargs["mounts"] = [*(kwargs.get("mounts") or ()), {
                "Type": "bind", "Source": bind, "Target": pause, "ReadOnly": True}]
        elif self._opts.container.read_only:
            pause = f"{PAUSE_VOLUME}/pause"
            kwargs["volumes"] = [*kwargs.get("volumes", ()), PAUSE_VOLUME]
        kwargs.update(name=self.name, entrypoint=[pause], command=[], user="0:0",
                      labels=container_labels(self._id), ports=ports,
                      healthcheck={"test": ["NONE"]}, detach=True)
        return kwargs, pause

    def _create_and_start(self) -> None:
        try:
            pause = self._create(self._pause_file())
            if pause:
                # Copied into the container's own writable layer: that also works when
                # minify itself runs in a container and shares no path with the engine.
                # The image (the rebuild's source) never contains it.
                directory, name = posixpath.split(pause)
                self._container.put_archive(directory, _pause_archive(name))
            self._container.start()
            self._container.reload()
        except APIError as exc:
            why = getattr(exc, "explanation", None) or exc
            if exc.status_code == 400:  # the engine refused an option the user gave
                raise UsageError(f"the engine refused the container's options: {why}") from exc
            raise EngineError(f"starting a container from {self._image.ref} failed: "
                              f"{why}") from exc
        except DockerException as exc:
            raise EngineError(f"starting a container from {self._image.ref} failed: "
                              f"{exc}") from exc
        state = self._container.attrs["State"]
        if not state.get("Running"):
            raise EngineError(f"the container for {self._image.ref} did not start: "
                              f"{state.get('Error') or state.get('Status')}")
        self.pid1 = int(state["Pid"])
        if not os.path.exists(f"/proc/{self.pid1}"):
            raise CapabilityError(
                f"the container's PID 1 (host pid {self.pid1}) is not visible here: when "
                "minify itself runs in a container, give it --pid=host")
        self.ports = published_ports(self._container.attrs)

    def _pause_file(self) -> Optional[str]:
        """The stand-in as a host file to bind-mount, kept until the container is removed
        (the engine resolves every mount's source when it copies from the container, as
        `docker cp` does); None when it is to be copied in."""
        # A host file on a noexec mount would be noexec in the container too.
        if not self._bind_pause or os.statvfs(self._dir).f_flag & os.ST_NOEXEC:
            return None
        path = os.path.join(self._dir, f".minify-pause-{self._id}")
        self._pause_host = path
        with open(path, "wb") as f:
            f.write(pause_binary())
        os.chmod(path, 0o555)
        return path

    def _remove_pause_file(self) -> None:
        path, self._pause_host = self._pause_host, None
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _create(self, bind: Optional[str]) -> str:
        """Create the container, the stand-in bind-mounted from `bind` when it is given
        and the engine finds it; the stand-in's path when it must still be copied in
        ("" when mounted)."""
        if bind is not None:
            kwargs, _ = self._create_kwargs(bind)
            try:
                with signals_deferred():  # see engine.owned_container
                    self._container = self._client.containers.create(self._image.id,
                                                                     **kwargs)
                return ""
            except APIError as exc:
                # An engine in a VM, or minify in a container: no such file there.
                if exc.status_code != 400 or bind not in str(exc.explanation or exc):
                    raise
                self._remove_pause_file()  # copied in instead: no mount to take out
        kwargs, pause = self._create_kwargs()
        with signals_deferred():
            self._container = self._client.containers.create(self._image.id, **kwargs)
        return pause

    def _user_files(self) -> ImageFS:
        """An index holding just /etc/passwd and /etc/group of the image, read through
        the container's root (symlinks followed inside it), not asked of the engine."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as out:
            etc = tarfile.TarInfo("etc")
            etc.type, etc.mode = tarfile.DIRTYPE, 0o755
            out.addfile(etc)
            for path in ("/etc/passwd", "/etc/group"):
                data = read_in_root(self._root_dir(), path)
                if data is not None:  # none: names cannot be resolved, numeric ids still can
                    info = tarfile.TarInfo(path.lstrip("/"))
                    info.size = len(data)
                    out.addfile(info, io.BytesIO(data))
        buf.seek(0)
        return scan(buf)

    def _root_dir(self) -> str:
        # The container's root as seen through its PID 1: the same overlay filesystem as
        # the engine's merged dir, reachable without knowing the engine's storage paths.
        return f"/proc/{self.pid1}/root"

    def _stop_app(self, when: str = "") -> str:
        """Send the stop signal and wait out the grace period; how that went, in words
        ("" when the app had already ended)."""
        if self._app is None or not self._app.alive():
            return ""
        signum = stop_signal(self._image.stop_signal)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if not self._app.signal_program(signum):
            return ""  # already gone: the kill below ends whatever is left
        if self._app.wait(self._opts.stop_grace):
            return f"stopped by {name}"
        self.warnings.append(f"the app did not stop within {self._opts.stop_grace:g} s "
                             f"of its stop signal{' ' + when if when else ''} and was "
                             "killed")
        return f"killed: it did not stop within {self._opts.stop_grace:g} s of {name}"

    def _kill_app(self) -> bool:
        """`docker stop`'s SIGKILL without ending the container: every process in the
        container's pid namespace but its PID 1, until none is left (bounded: a process
        may fork while the others are killed); whether none is."""
        deadline = time.monotonic() + self._opts.stop_timeout
        while time.monotonic() < deadline:
            pids = namespace_pids(self.pid1)
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass  # gone meanwhile
            self._app.wait(KILL_POLL)  # its tracer reaps them
        return False

    def _kill_container(self) -> None:
        if self._container is None:
            return
        try:
            self._container.kill()
        except (APIError, DockerException):
            pass  # already stopped: the app exited and took PID 1's namespace with it

    def _new_spare(self, label: str) -> SpareTracer:
        with signals_deferred():  # a spare started is a spare known, to be ended
            spare = SpareTracer(self._dir, label)
            self._spares.append(spare)
        return spare

    def _take_spare(self) -> Optional[SpareTracer]:
        spare, self._spare = self._spare, None
        return spare

    def _cleanup(self, background: bool = False) -> None:
        spares, self._spares, self._spare = self._spares, [], None
        for spare in spares:
            spare.discard()  # nothing for one taken: its tracer is stopped as a monitor
        # By name: also when a signal cut the create short before its answer arrived.
        if background:
            self._reaper.remove(self.name, then=self._remove_pause_file)
        else:
            remove_container(self._client, self.name)
            self._remove_pause_file()
        self._container = None
        monitors, self._monitors = self._monitors, []
        stop_monitors(monitors)

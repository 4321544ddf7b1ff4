"""What the traced app is: its argv, environment, user and working directory, and the
keyword arguments of `docker run` for it, derived with Docker's semantics from the image
config and the user's options (pure functions).

Capabilities, seccomp profile, cgroups and LSM label are not derived here: the engine
applies the user's options to the traced container's PID 1, and the launcher copies
them from there (sensor/confine.py), so they are the engine's own, never a replica.
"""

from __future__ import annotations

import signal
from typing import Optional

from minifier.errors import ImageError
from minifier.image.users import Credentials
from minifier.mountargs import api_mount
from minifier.options import RunOptions
from minifier.records import DEFAULT_PATH, HealthSpec, ImageInfo, LaunchSpec

__all__ = ["app_user", "check_command", "docker_run_kwargs", "exposed_tcp_ports", "health_spec",
           "launch_spec", "stop_signal", "supplementary_groups"]


def _merge_env(base: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for item in (*base, *extra):
        name, _, value = item.partition("=")
        merged[name] = value
    return tuple(f"{k}={v}" for k, v in merged.items())


def check_command(image: ImageInfo, opts: RunOptions) -> tuple[str, ...]:
    """The app's argv with Docker's semantics; an image without one is an error."""
    if opts.entrypoint is not None:
        entrypoint, cmd = opts.entrypoint, opts.cmd or ()  # like docker: --entrypoint drops Cmd
    else:
        entrypoint, cmd = image.entrypoint, opts.cmd if opts.cmd is not None else image.cmd
    argv = (*entrypoint, *cmd)
    if not argv:
        raise ImageError(f"image {image.ref} has no Entrypoint or Cmd: pass --cmd or --entrypoint")
    return argv


def launch_spec(image: ImageInfo, opts: RunOptions, creds: Credentials) -> LaunchSpec:
    """The app's LaunchSpec with Docker's semantics for Entrypoint, Cmd, Env and WorkDir."""
    argv = check_command(image, opts)
    env = _merge_env(image.env, opts.env)
    names = {e.partition("=")[0] for e in env}
    defaults = tuple(d for d in (f"PATH={DEFAULT_PATH}", f"HOME={creds.home}")
                     if d.partition("=")[0] not in names)
    return LaunchSpec(
        argv=argv, env=(*defaults, *env), workdir=opts.workdir or image.workdir or "/",
        uid=creds.uid, gid=creds.gid, groups=supplementary_groups(creds),
        all_syscalls=opts.all_syscalls,
    )


def supplementary_groups(creds: Credentials) -> tuple[int, ...]:
    """The groups the engine gives the app: its primary group, then the /etc/group
    memberships, once each (`docker run` shows `groups=0` for root in an image without
    /etc/group, and `groups=2000` for --user 1000:2000)."""
    return tuple(dict.fromkeys((creds.gid, *creds.groups)))


def app_user(image: ImageInfo, opts: RunOptions) -> str:
    """The USER the app runs as: --user, else the image's."""
    return opts.user if opts.user is not None else image.user


def docker_run_kwargs(opts: RunOptions, *, app: bool = True,
                      seccomp: Optional[str] = None) -> dict:
    """docker-py's keyword arguments for `docker run` with the user's options: the
    container's confinement (--memory, --pids-limit, --cpus, --security-opt, --cap-add,
    --cap-drop, --read-only, --tmpfs), its mounts (--volume as the docker CLI's binds,
    --mount KEY=VALUE as the API's Mount objects) and network (--network, --link) and,
    with `app`, how the app runs (--entrypoint, --cmd, --env, --workdir, --user). The
    one derivation used by the traced container and by verification. `seccomp` (a
    profile's JSON) replaces the user's seccomp option.
    """
    c = opts.container
    security = [o for o in c.security_opt if not (seccomp and _is_seccomp(o))]
    pairs = {
        "mem_limit": c.memory, "pids_limit": c.pids_limit, "nano_cpus": c.nano_cpus,
        "security_opt": [*security, *([f"seccomp={seccomp}"] if seccomp else [])] or None,
        "cap_add": list(c.cap_add) or None, "cap_drop": list(c.cap_drop) or None,
        "read_only": c.read_only or None, "tmpfs": dict(c.tmpfs) or None,
        "volumes": [m.bind for m in c.mounts if m.bind] or None,
        "mounts": [api_mount(m) for m in c.mounts if not m.bind] or None,
        "network": c.network, **_links(c.network, c.links),
    }
    if app:
        pairs.update({
            "entrypoint": list(opts.entrypoint) if opts.entrypoint is not None else None,
            "command": list(opts.cmd) if opts.cmd is not None else None,
            "environment": list(opts.env) or None, "working_dir": opts.workdir or None,
            "user": opts.user,
        })
    return {k: v for k, v in pairs.items() if v is not None}


def _links(network: Optional[str], links: tuple[tuple[str, str], ...]) -> dict:
    """--link as the docker CLI sends it: the container's legacy links on the default
    bridge, the endpoint's links (aliases in the network's DNS) on a user network, where
    the engine ignores the former."""
    if not links:
        return {}
    if network in (None, "bridge", "default"):
        return {"links": list(links)}
    return {"networking_config": {network: {"Links": [f"{n}:{a}" for n, a in links]}}}


def _is_seccomp(opt: str) -> bool:
    return opt.startswith(("seccomp=", "seccomp:"))


def stop_signal(name: str) -> int:
    """Docker's StopSignal ("SIGQUIT", "QUIT" or "3"); SIGTERM when unset or unknown."""
    name = (name or "").strip().upper()
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        return int(signal.SIGTERM)


# Docker's HEALTHCHECK defaults, for the durations an image leaves at 0 (unset).
_HEALTH_DEFAULTS = {"Interval": 30.0, "Timeout": 30.0, "StartPeriod": 0.0}
_DEFAULT_SHELL = ("/bin/sh", "-c")


def exposed_tcp_ports(image: ImageInfo, expose: tuple[str, ...]) -> tuple[int, ...]:
    """The TCP ports the container publishes: the image's EXPOSE plus --expose, sorted."""
    return tuple(sorted({int(p.split("/")[0]) for p in (*image.exposed_ports, *expose)
                         if p.endswith("/tcp") or "/" not in p}))


def health_spec(image: ImageInfo) -> HealthSpec | None:
    """The image's HEALTHCHECK as the engine runs it, or None when there is none: `CMD`
    runs its argv as given, `CMD-SHELL` runs through the image's SHELL (or /bin/sh -c);
    durations are nanoseconds in the config, Docker's defaults where unset."""
    check = image.healthcheck or {}
    test = tuple(check.get("Test") or ())
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        shell = tuple(image.config.get("Shell") or ()) or _DEFAULT_SHELL
        argv = (*shell, " ".join(test[1:]))
    elif test[0] == "CMD":
        argv = test[1:]
    else:
        raise ImageError(f"image {image.ref} has a HEALTHCHECK of unknown form {test[0]!r}")
    if not argv:
        return None
    seconds = {k: (int(check.get(k) or 0) / 1e9) or default
               for k, default in _HEALTH_DEFAULTS.items()}
    return HealthSpec(argv=argv, interval=seconds["Interval"], timeout=seconds["Timeout"],
                      start_period=seconds["StartPeriod"],
                      retries=int(check.get("Retries") or 0) or 3)

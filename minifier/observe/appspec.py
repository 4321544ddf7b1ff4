"""What the traced app is: its argv, environment, credentials and capabilities, derived
with Docker's semantics from the image config and the user's overrides (pure functions)."""

from __future__ import annotations

import signal

from minifier.errors import ImageError
from minifier.image.users import Credentials
from minifier.options import RunOptions
from minifier.records import DEFAULT_PATH, ImageInfo, LaunchSpec

__all__ = ["DOCKER_DEFAULT_CAPS", "check_command", "launch_spec", "stop_signal"]

# The capabilities `docker run` gives a container by default: the traced app gets
# exactly these as its bounding set, never the tracer's full root set.
DOCKER_DEFAULT_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


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
        uid=creds.uid, gid=creds.gid, groups=creds.groups,
        keep_caps=DOCKER_DEFAULT_CAPS, all_syscalls=opts.all_syscalls,
    )


def stop_signal(name: str) -> int:
    """Docker's StopSignal ("SIGQUIT", "QUIT" or "3"); SIGTERM when unset or unknown."""
    name = (name or "").strip().upper()
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        return int(signal.SIGTERM)

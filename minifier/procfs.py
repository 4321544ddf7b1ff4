"""What the host's /proc says about a container's processes: the TCP ports its network
namespace listens on (and on which addresses), which signals a process catches, which
processes it has, and a file of its filesystem as seen from its root.

A TCP connect to a published port proves nothing (Docker's proxy accepts on the host
side even when the app does not listen yet), so "the app listens on 5432" is read
from the kernel's socket table of the container's network namespace instead. The bound
address matters too: a port listened on only on the container's loopback (127.0.0.1,
::1) is out of reach of a published port, whose traffic arrives on the container's own
interface.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import struct
from typing import Optional

from minifier import sockdiag

__all__ = ["listening_ports", "listening_sockets", "tcp_tables", "loopback_only", "parse_tcp_table",
           "parse_listeners", "catches_signal", "namespace_pids", "read_in_root"]

_MAX_LINKS = 40  # symlinks followed in one path, as the kernel's ELOOP bound

_LISTEN = "0A"
Listener = sockdiag.Listener  # (bound address as text, port)


def parse_listeners(text: str) -> frozenset[Listener]:
    """(address, port) of the LISTEN sockets in a /proc/net/tcp or tcp6 table (the kernel
    writes an address as 32-bit words in host, little-endian, order); an IPv4 address
    mapped into IPv6 is given as the IPv4 address."""
    found = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN:
            address, port = fields[1].rsplit(":", 1)
            words = struct.unpack(f"<{len(address) // 8}I", bytes.fromhex(address))
            packed = struct.pack(f">{len(words)}I", *words)
            ip = ipaddress.ip_address(packed)
            # An IPv6 socket bound to ::ffff:127.0.0.1 takes IPv4 127.0.0.1 only.
            found.add((str(getattr(ip, "ipv4_mapped", None) or ip), int(port, 16)))
    return frozenset(found)


def parse_tcp_table(text: str) -> frozenset[int]:
    """Local ports of the LISTEN sockets in a /proc/net/tcp or tcp6 table."""
    return frozenset(port for _, port in parse_listeners(text))


def listening_sockets(pid: int) -> frozenset[Listener]:
    """(address, port) of the TCP sockets (IPv4 and IPv6) listening in the network
    namespace of host pid `pid`; empty when the process is gone. Asked of sock_diag
    (sockdiag.py: one walk of the listening table) where that is allowed, else read from
    /proc/PID/net/tcp and tcp6."""
    asked = sockdiag.listening_sockets(pid)
    if asked is not None:
        return asked
    return tcp_tables(pid)


def tcp_tables(pid: int) -> frozenset[Listener]:
    """listening_sockets(), read from /proc/PID/net/tcp and tcp6."""
    found: set[Listener] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                found |= parse_listeners(f.read())
        except OSError:
            continue  # no IPv6 in this kernel, or the process has exited
    return frozenset(found)


def listening_ports(pid: int) -> frozenset[int]:
    """TCP ports (IPv4 and IPv6) listened on in the network namespace of host pid `pid`,
    on any address; empty when the process is gone."""
    return frozenset(port for _, port in listening_sockets(pid))


def loopback_only(listeners: frozenset[Listener]) -> dict[int, tuple[str, ...]]:
    """Ports listened on only on loopback addresses (127.0.0.0/8, ::1), with those
    addresses."""
    by_port: dict[int, list[str]] = {}
    for address, port in listeners:
        by_port.setdefault(port, []).append(address)
    return {port: tuple(sorted(addresses)) for port, addresses in sorted(by_port.items())
            if all(_is_loopback(a) for a in addresses)}


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def catches_signal(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (its SigCgt mask). A container's
    PID 1 without one never sees a signal sent from outside its PID namespace (the kernel
    drops it; only SIGKILL and SIGSTOP are forced), so `docker stop` waits its whole grace
    period for nothing. False when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


def namespace_pids(pid1: int) -> tuple[int, ...]:
    """Host pids of the live processes (zombies left out) in the pid namespace of host
    pid `pid1`, but `pid1` itself: a container's processes but its PID 1; () when
    `pid1` is gone."""
    try:
        ns = os.stat(f"/proc/{pid1}/ns/pid")
    except OSError:
        return ()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == pid1:
            continue
        try:
            theirs = os.stat(f"/proc/{name}/ns/pid")
            if (theirs.st_dev, theirs.st_ino) != (ns.st_dev, ns.st_ino):
                continue
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if state not in ("Z", "X"):
            found.append(int(name))
    return tuple(found)


def read_in_root(root: str, path: str, limit: int = 1 << 20) -> Optional[bytes]:
    """The first `limit` bytes of `path` as a process whose root is `root` (a directory,
    e.g. /proc/PID/root) reads it: every symlink followed inside that root (an absolute
    one from the root, `..` stopping at it), never out of it; None when there is no
    regular file there."""
    todo = [p for p in path.split("/") if p]
    at: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name in (".", ".."):
            if name == ".." and at:
                at.pop()
            continue
        try:
            mode = os.lstat(os.path.join(root, *at, name)).st_mode
        except OSError:
            return None
        if not stat.S_ISLNK(mode):
            at.append(name)
            continue
        links += 1
        if links > _MAX_LINKS:
            return None
        target = os.readlink(os.path.join(root, *at, name))
        if target.startswith("/"):
            at = []
        todo[:0] = [p for p in target.split("/") if p]
    try:
        fd = os.open(os.path.join(root, *at), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)

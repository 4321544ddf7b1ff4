"""What the host's /proc says about a container's processes: the TCP ports its network
namespace listens on, and which signals a process catches.

A TCP connect to a published port proves nothing (Docker's proxy accepts on the host
side even when the app does not listen yet), so "the app listens on 5432" is read
from the kernel's socket table of the container's network namespace instead.
"""

from __future__ import annotations

__all__ = ["listening_ports", "parse_tcp_table", "catches_signal"]

_LISTEN = "0A"


def parse_tcp_table(text: str) -> frozenset[int]:
    """Local ports of the LISTEN sockets in a /proc/net/tcp or tcp6 table."""
    ports = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return frozenset(ports)


def listening_ports(pid: int) -> frozenset[int]:
    """TCP ports (IPv4 and IPv6) listened on in the network namespace of host pid `pid`;
    empty when the process is gone."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                ports |= parse_tcp_table(f.read())
        except OSError:
            continue  # no IPv6 in this kernel, or the process has exited
    return frozenset(ports)


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

"""The TCP sockets listening in another process's network namespace, asked of the
kernel's sock_diag netlink interface (what `ss -ltn` uses).

/proc/PID/net/tcp and tcp6 are made by walking every bucket of the kernel's TCP hash
tables, which are shared by all namespaces and sized by the host's memory: 3-4 ms per
table on a 24 GiB host, read again at every look while an app is waited for. A sock_diag
dump asked for LISTEN sockets walks only the listening table. The netlink socket must be
made inside the namespace it asks about, so a short-lived thread enters that namespace
(`setns`), makes the socket and ends: no other thread of minify ever leaves its own.
`None` when the kernel or the caller's privileges do not allow it; the caller then reads
/proc.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
import threading
from typing import Optional

__all__ = ["listening_sockets"]

Listener = tuple[str, int]  # (bound address as text, port)

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_CLONE_NEWNET = 0x40000000

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid, zeroed.
_REQUEST = struct.Struct("=BBBxI48x")
# inet_diag_msg: family, state, timer, retrans; sockid: sport, dport (network order),
# src[16], dst[16], interface, cookie[2]; then expires, rqueue, wqueue, uid, inode.
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8sIIIII")


def listening_sockets(pid: int) -> Optional[frozenset[Listener]]:
    """(address, port) of the TCP sockets (IPv4 and IPv6) listening in the network
    namespace of host pid `pid` (an IPv4 address mapped into IPv6 given as the IPv4
    address); an empty set when the process is gone, `None` when sock_diag cannot be
    asked."""
    try:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return frozenset()
    except OSError:
        return None
    try:
        sock = _socket_in_namespace(fd)
    finally:
        os.close(fd)
    if sock is None:
        return None
    with sock:
        try:
            found = set()
            for family in (socket.AF_INET, socket.AF_INET6):
                found |= _dump(sock, family)
            return frozenset(found)
        except OSError:
            return None


def _socket_in_namespace(ns_fd: int) -> Optional[socket.socket]:
    made: list[socket.socket] = []

    def enter_and_make() -> None:
        # This thread's namespace changes, and the thread ends right after.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(ns_fd, _CLONE_NEWNET) != 0:
            return
        try:
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                      _NETLINK_SOCK_DIAG))
        except OSError:
            pass

    worker = threading.Thread(target=enter_and_make, name="minify-sockdiag")
    worker.start()
    worker.join()
    return made[0] if made else None


def _dump(sock: socket.socket, family: int) -> set[Listener]:
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
    sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), _SOCK_DIAG_BY_FAMILY,
                             _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + body)
    found: set[Listener] = set()
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return found
            if kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                raise OSError(code or errno.EIO, os.strerror(code or errno.EIO))
            if kind == _SOCK_DIAG_BY_FAMILY:
                found.add(_listener(data, offset + _NLMSGHDR.size))
            if length < _NLMSGHDR.size:
                raise OSError(errno.EIO, "malformed netlink message")
            offset += (length + 3) & ~3


def _listener(data: bytes, offset: int) -> Listener:
    fields = _MESSAGE.unpack_from(data, offset)
    family, sport, src = fields[0], fields[4], fields[6]
    ip = ipaddress.ip_address(src[:4] if family == socket.AF_INET else src)
    # An IPv6 socket bound to ::ffff:127.0.0.1 takes IPv4 127.0.0.1 only.
    return str(getattr(ip, "ipv4_mapped", None) or ip), int.from_bytes(sport, "big")

"""The listening-port reader, against the kernel's own socket tables."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from minifier.procfs import (
    catches_signal,
    listening_ports,
    listening_sockets,
    loopback_only,
    parse_listeners,
    parse_tcp_table,
)

TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:0050 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1
"""


def test_only_listen_sockets_count():
    assert parse_tcp_table(TABLE) == {8080}  # port 80 is an established connection


def test_a_socket_listening_here_is_seen_and_gone_after_close():
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family)
        s.bind((host, 0))
        port = s.getsockname()[1]
        assert port not in listening_ports(os.getpid())  # bound is not listening
        s.listen()
        assert port in listening_ports(os.getpid())
        s.close()
        assert port not in listening_ports(os.getpid())


TABLE6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A
   2: 0000000000000000FFFF00000100007F:1F40 00000000000000000000000000000000:0000 0A
"""


def test_the_bound_address_is_kept():
    assert parse_listeners(TABLE) == {("0.0.0.0", 8080)}
    assert parse_listeners(TABLE6) == {("::1", 3306), ("::", 8080), ("127.0.0.1", 8000)}
    assert loopback_only(parse_listeners(TABLE) | parse_listeners(TABLE6)) == {
        3306: ("::1",), 8000: ("127.0.0.1",)}


def test_sockets_listening_here_are_seen_with_their_address():
    """qa/loopback: `http.server --bind 127.0.0.1` is out of a published port's reach; a
    port also listened on an address outside the loopback is not."""
    socks = []
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"),
                             (socket.AF_INET, "0.0.0.0")):
            s = socket.socket(family)
            socks.append(s)
            s.bind((host, 0))
            s.listen()
        v4, v6, everywhere = (s.getsockname()[1] for s in socks)
        mine = {a for a in listening_sockets(os.getpid()) if a[1] in (v4, v6, everywhere)}
        assert mine == {("127.0.0.1", v4), ("::1", v6), ("0.0.0.0", everywhere)}
        assert loopback_only(frozenset(mine)) == {
            v4: ("127.0.0.1",), v6: ("::1",)}
        also = frozenset(mine | {("172.17.0.2", v4)})
        assert v4 not in loopback_only(also)
    finally:
        for s in socks:
            s.close()


def test_a_process_that_is_gone_listens_on_nothing():
    assert listening_ports(2**22 + 12345) == frozenset()


def test_a_caught_signal_is_seen_in_the_mask():
    code = ("import signal, sys; signal.signal(signal.SIGUSR1, lambda *a: None); "
            "print('ready', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        assert catches_signal(proc.pid, signal.SIGUSR1)
        assert not catches_signal(proc.pid, signal.SIGUSR2)
        assert catches_signal(proc.pid, signal.SIGINT)  # Python's KeyboardInterrupt handler
    finally:
        proc.communicate("")
    assert not catches_signal(proc.pid, signal.SIGUSR1)  # gone

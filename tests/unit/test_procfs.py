"""The /proc readers against the kernel's own tables: listening ports (also as
sock_diag answers them), caught signals, the processes of a pid namespace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from minifier import sockdiag
from minifier.procfs import (
    catches_signal,
    listening_ports,
    listening_sockets,
    loopback_only,
    namespace_pids,
    parse_listeners,
    parse_tcp_table,
    tcp_tables,
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


def _descendants(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *_descendants(int(child))]
    return found


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_the_live_processes_of_a_pid_namespace_but_its_pid_1():
    """Like a container: its PID 1 (here a sleep that never reaps), a live process and
    a zombie in a pid namespace of their own; only the live one counts."""
    script = "true & sleep 60 & exec sleep 60"
    unshare = subprocess.Popen(["unshare", "--pid", "--fork", "sh", "-c", script])
    try:
        deadline = time.monotonic() + 10
        while True:  # until the shell has exec'd and `true` has become a zombie
            tree = _descendants(unshare.pid)
            zombies = [p for p in tree if _state(p) == "Z"]
            if len(tree) == 3 and zombies and Path(f"/proc/{tree[0]}/comm").read_text() \
                    == "sleep\n":
                break
            assert time.monotonic() < deadline, tree
            time.sleep(0.02)
        pid1, live = tree[0], [p for p in tree[1:] if p not in zombies]
        assert namespace_pids(pid1) == tuple(live)
        assert namespace_pids(live[0]) == (pid1,)  # the same namespace, seen from another
        os.kill(pid1, signal.SIGKILL)  # a pid namespace's init: everything in it ends
        unshare.wait(10)
        assert namespace_pids(pid1) == ()
    finally:
        unshare.kill()
        unshare.wait(10)


def test_sock_diag_and_the_proc_tables_agree_here():
    """sock_diag (sockdiag.py) is asked first; the /proc tables are its fallback, so
    both must say the same, IPv4 mapped into IPv6 included."""
    socks = []
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"),
                             (socket.AF_INET6, "::ffff:127.0.0.3"), (socket.AF_INET, "0.0.0.0")):
            s = socket.socket(family)
            socks.append(s)
            s.bind((host, 0))
            s.listen()
        ports = {s.getsockname()[1] for s in socks}
        asked = sockdiag.listening_sockets(os.getpid())
        assert asked == tcp_tables(os.getpid())
        assert {a for a in asked if a[1] in ports} == {
            ("127.0.0.1", socks[0].getsockname()[1]), ("::1", socks[1].getsockname()[1]),
            ("127.0.0.3", socks[2].getsockname()[1]), ("0.0.0.0", socks[3].getsockname()[1])}
    finally:
        for s in socks:
            s.close()


def test_sock_diag_asks_the_namespace_of_the_process_and_leaves_ours_alone():
    """A process in a network namespace of its own, like a container's app: exactly its
    listener is seen, none of the host's, and the asking thread stays in its namespace."""
    code = ("import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); sys.stdin.read()")
    proc = subprocess.Popen(["unshare", "--net", sys.executable, "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    here = socket.socket()
    try:
        here.bind(("127.0.0.1", 0))
        here.listen()
        port = int(proc.stdout.readline())
        ours = os.readlink("/proc/thread-self/ns/net")
        assert sockdiag.listening_sockets(proc.pid) == {("127.0.0.1", port)}
        assert tcp_tables(proc.pid) == {("127.0.0.1", port)}
        assert os.readlink("/proc/thread-self/ns/net") == ours
        assert ("127.0.0.1", here.getsockname()[1]) in listening_sockets(os.getpid())
    finally:
        here.close()
        proc.communicate("")
    assert sockdiag.listening_sockets(proc.pid) == frozenset()  # gone

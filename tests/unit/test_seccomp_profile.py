"""build_profile: the Docker seccomp profile written by `minify build --seccomp-profile`."""

from __future__ import annotations

import json

from minifier.output.seccomp_profile import (
    EXIT_SYSCALLS,
    GO_RUNTIME_SYSCALLS,
    RUNC_SYSCALLS,
    RUNTIME_SYSCALLS,
    build_profile,
)
from minifier.sensor.syscalls import SYSCALL_NAMES


def test_format_is_a_docker_profile_denying_by_default():
    profile = build_profile({"read": 3})
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1  # EPERM, like Docker's own profile
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert len(profile["syscalls"]) == 1
    rule = profile["syscalls"][0]
    assert rule["action"] == "SCMP_ACT_ALLOW"
    assert set(rule) == {"names", "action"}
    json.dumps(profile)  # plain JSON types only


def test_names_are_sorted_unique_and_include_what_was_seen():
    names = build_profile({"sendfile": 2, "accept4": 1, "read": 9})["syscalls"][0]["names"]
    assert names == sorted(set(names))
    assert {"sendfile", "accept4", "read"} <= set(names)


def test_runtime_syscalls_are_always_allowed():
    names = set(build_profile({})["syscalls"][0]["names"])
    assert set(RUNTIME_SYSCALLS) <= names
    assert {"execve", "chdir", "getcwd", "setuid", "capset", "exit_group"} <= names


def test_unseen_and_untranslatable_calls_are_left_out():
    counts = {"i386:11": 4, "i386:252": 1, "syscall_999": 2, "mremap": 0, "pipe2": 1}
    names = build_profile(counts)["syscalls"][0]["names"]
    assert not [n for n in names if ":" in n or n.startswith("syscall_")]
    assert "mremap" not in names  # a zero count is not a call
    assert "pipe2" in names


def test_runtime_list_is_trimmed_to_runc_go_and_exit_needs():
    assert set(RUNTIME_SYSCALLS) == set(RUNC_SYSCALLS) | set(GO_RUNTIME_SYSCALLS) | set(
        EXIT_SYSCALLS)
    # The app's own start-up (the loader, libc) is traced after its execve: not added.
    for loader_call in ("arch_prctl", "brk", "mprotect", "set_tid_address", "rseq",
                        "prlimit64", "getrandom", "uname", "access", "readlink"):
        assert loader_call not in RUNTIME_SYSCALLS, loader_call
    assert all(reason for reason in RUNC_SYSCALLS.values())


def test_every_runtime_name_is_a_real_x86_64_syscall():
    known = set(SYSCALL_NAMES.values())
    assert set(RUNTIME_SYSCALLS) <= known, set(RUNTIME_SYSCALLS) - known

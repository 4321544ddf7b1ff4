"""Resolve a Docker USER string against the IMAGE's /etc/passwd and /etc/group.

Mirrors moby/sys/user GetExecUser, which the engine uses: "" means uid 0; a numeric
user is always a uid (allowed without a passwd entry); names must exist; supplementary
groups come from /etc/group membership only when no group is given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from minifier.errors import ImageError
from minifier.image.imagefs import ImageFS

__all__ = ["Credentials", "resolve_user", "parse_passwd", "parse_group"]


@dataclass(frozen=True)
class Credentials:
    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str  # the matched passwd name, "" for a numeric uid without an entry
    home: str = "/"  # HOME as Docker sets it: the passwd entry's directory, else "/"


@dataclass(frozen=True)
class _Pw:
    name: str
    uid: int
    gid: int
    home: str = "/"


@dataclass(frozen=True)
class _Gr:
    name: str
    gid: int
    members: tuple[str, ...]


def _int(s: str) -> Optional[int]:
    s = s.strip()
    return int(s) if s.isdigit() else None


def parse_passwd(data: bytes) -> list[_Pw]:
    """Entries of a passwd file; malformed lines are skipped like libc does."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if len(f) < 4 or line.startswith("#"):
            continue
        uid, gid = _int(f[2]), _int(f[3])
        if uid is not None and gid is not None:
            out.append(_Pw(f[0], uid, gid, (f[5] if len(f) > 5 else "") or "/"))
    return out


def parse_group(data: bytes) -> list[_Gr]:
    """Entries of a group file; malformed lines are skipped."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if len(f) < 3 or line.startswith("#"):
            continue
        gid = _int(f[2])
        if gid is not None:
            members = tuple(m for m in (f[3].split(",") if len(f) > 3 else ()) if m)
            out.append(_Gr(f[0], gid, members))
    return out


def resolve_user(fs: ImageFS, user: str) -> Credentials:
    """Docker's USER semantics: "", "name", "uid", "name:group", "uid:gid"."""
    user_arg, _, group_arg = user.partition(":")
    passwd = parse_passwd(fs.content("/etc/passwd") or b"")
    groups = parse_group(fs.content("/etc/group") or b"")
    uid_num = _int(user_arg) if user_arg else None

    def matches(p: _Pw) -> bool:
        if not user_arg:
            return p.uid == 0  # "" keeps the default uid 0
        return p.uid == uid_num if uid_num is not None else p.name == user_arg

    pw = next((p for p in passwd if matches(p)), None)
    uid, gid, name, home = 0, 0, "", "/"
    if pw is not None:
        uid, gid, name, home = pw.uid, pw.gid, pw.name, pw.home
    elif user_arg:
        if uid_num is None:
            raise ImageError(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_num  # a bare uid without passwd entry is fine; gid stays 0
    if group_arg:
        gid_num = _int(group_arg)
        if gid_num is not None:  # a numeric group is always a gid
            gr = next((g for g in groups if g.gid == gid_num), None)
        else:
            gr = next((g for g in groups if g.name == group_arg), None)
        if gr is not None:
            gid = gr.gid
        elif gid_num is not None:
            gid = gid_num
        else:
            raise ImageError(
                f"unable to find group {group_arg}: no matching entries in group file"
            )
        return Credentials(uid, gid, (), name, home)
    sgids = tuple(g.gid for g in groups if name and name in g.members)
    return Credentials(uid, gid, sgids, name, home)

"""users: Docker USER semantics against the image's own passwd and group files."""

from __future__ import annotations

import pytest

from minifier.errors import ImageError
from minifier.image.users import Credentials, resolve_user
from tests.unit.fixtures import member, scan_members

PASSWD = b"""root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
app:x:1000:1001::/home/app:/bin/sh
"""
GROUP = b"""root:x:0:
daemon:x:1:
www-data:x:33:
wheel:x:10:root,app
staff:x:50:app
appgrp:x:1001:
"""


@pytest.fixture()
def fs(tmp_path):
    return scan_members(tmp_path, [
        member("etc", "dir"),
        member("etc/passwd", data=PASSWD),
        member("etc/group", data=GROUP),
    ])


@pytest.mark.parametrize("user, expected", [
    ("", Credentials(0, 0, (10,), "root", "/root")),
    ("root", Credentials(0, 0, (10,), "root", "/root")),
    ("app", Credentials(1000, 1001, (10, 50), "app", "/home/app")),
    ("1000", Credentials(1000, 1001, (10, 50), "app", "/home/app")),
    ("www-data", Credentials(33, 33, (), "www-data", "/var/www")),
    ("app:staff", Credentials(1000, 50, (), "app", "/home/app")),
    ("app:33", Credentials(1000, 33, (), "app", "/home/app")),
    ("33:33", Credentials(33, 33, (), "www-data", "/var/www")),
    ("4242", Credentials(4242, 0, (), "")),  # numeric uid without a passwd entry
    ("4242:4343", Credentials(4242, 4343, (), "")),
])
def test_resolve_user(fs, user, expected):
    assert resolve_user(fs, user) == expected


def test_unknown_user(fs):
    with pytest.raises(ImageError) as e:
        resolve_user(fs, "nobody")
    assert e.value.message == "unable to find user nobody: no matching entries in passwd file"


def test_unknown_group(fs):
    with pytest.raises(ImageError, match="unable to find group nogroup"):
        resolve_user(fs, "app:nogroup")


def test_no_passwd_file(tmp_path):
    fs = scan_members(tmp_path, [member("etc", "dir")])
    assert resolve_user(fs, "") == Credentials(0, 0, (), "")
    assert resolve_user(fs, "1234:5") == Credentials(1234, 5, (), "")
    with pytest.raises(ImageError):
        resolve_user(fs, "app")


def test_passwd_through_symlink(tmp_path):
    fs = scan_members(tmp_path, [
        member("etc", "dir"),
        member("data", "dir"),
        member("data/passwd", data=PASSWD),
        member("etc/passwd", "symlink", link="/data/passwd"),
    ])
    # Only directly captured files are read: a symlinked passwd resolves to an uncaptured file.
    assert resolve_user(fs, "1000") == Credentials(1000, 0, (), "")

"""The findings xray looks for, as data: which paths or packages, and the fix.

A rule matches files by path pattern (`**` any depth, `*` one component) and/or by the
name of the package that installed them. Its bytes are those of every matching file in
every layer, also versions a later layer deleted or overwrote: what each pull
downloads and what the fix, applied in the layer that wrote them, saves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["Rule", "RULES", "glob_regex", "SLIM_EXCLUDES", "SLIM_INCLUDES"]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    fix: str
    paths: tuple[str, ...] = ()  # globs of files this rule covers
    exclude: tuple[str, ...] = ()  # globs taken back out
    packages: tuple[str, ...] = ()  # regexes over package names (whole name)
    category: str = "cache"  # cache | build | docs


def glob_regex(patterns: tuple[str, ...]) -> Optional[re.Pattern]:
    """One regex for a set of globs: `**` crosses directories, `*` does not."""
    if not patterns:
        return None
    parts = []
    for pattern in patterns:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        parts.append("".join(out))
    return re.compile("(?:" + "|".join(parts) + r")\Z")


HOMES = ("/root", "/home/*")

# What Debian's -slim images leave out, and keep (debuerreotype's slimify lists).
SLIM_EXCLUDES = ("/usr/share/doc/**", "/usr/share/groff/**", "/usr/share/info/**",
                 "/usr/share/linda/**", "/usr/share/lintian/overrides/**",
                 "/usr/share/locale/**", "/usr/share/man/**")
SLIM_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/doc/kde/HTML/C/**",
                 "/usr/share/gnome/help/*/C/**", "/usr/share/locale/all_languages",
                 "/usr/share/locale/currency/**", "/usr/share/locale/l10n/**",
                 "/usr/share/locale/languages", "/usr/share/locale/locale.alias",
                 "/usr/share/omf/*/*-C.emf")


def _home(*tails: str) -> tuple[str, ...]:
    return tuple(f"{home}/{tail}" for home in HOMES for tail in tails)


RULES: tuple[Rule, ...] = (
    Rule("apt-lists", "apt package lists left in the image",
         "run `apt-get update` and `rm -rf /var/lib/apt/lists/*` in the same RUN as "
         "`apt-get install`",
         paths=("/var/lib/apt/lists/**",)),
    Rule("apt-archives", "apt's downloaded .deb archives and package caches",
         "`apt-get clean` (or `rm -rf /var/cache/apt/*`) in the same RUN as `apt-get install`",
         paths=("/var/cache/apt/**",)),
    Rule("apk-cache", "apk's package cache",
         "`apk add --no-cache ...` (no `apk update`, no cache left)",
         paths=("/var/cache/apk/**", "/etc/apk/cache/**")),
    Rule("dnf-yum-cache", "dnf/yum metadata and package cache",
         "`dnf clean all` (or `yum clean all`) in the same RUN as the install, or "
         "`--setopt=keepcache=0`",
         paths=("/var/cache/dnf/**", "/var/cache/yum/**")),
    Rule("pip-cache", "pip's download and wheel cache",
         "`pip install --no-cache-dir ...` (or ENV PIP_NO_CACHE_DIR=1)",
         paths=_home(".cache/pip/**")),
    Rule("npm-yarn-cache", "npm/yarn package cache",
         "`npm ci` then `npm cache clean --force` in the same RUN (yarn: `yarn cache clean`), "
         "or install in a build stage and copy only node_modules",
         paths=_home(".npm/**", ".cache/yarn/**", ".yarn/berry/cache/**")
         + ("/usr/local/share/.cache/yarn/**",)),
    Rule("go-cache", "Go build and module caches",
         "build in a separate stage (multi-stage) and copy only the binary",
         paths=_home(".cache/go-build/**", "go/pkg/mod/**") + ("/go/pkg/mod/**",)),
    Rule("maven-gradle-cache", "Maven/Gradle dependency caches",
         "build in a separate stage (multi-stage) and copy only the artifact",
         paths=_home(".m2/repository/**", ".gradle/caches/**", ".gradle/wrapper/dists/**")),
    Rule("toolchain", "build toolchain in the runtime image (compilers, binutils, make)",
         "build in a separate stage (multi-stage) and copy only what the app runs",
         paths=("/usr/lib/gcc/**", "/usr/libexec/gcc/**", "/usr/local/go/**"),
         packages=(r"(gcc|g\+\+|cpp|gfortran|clang|lld|llvm)(-\d+)?",
                   r"(gcc|g\+\+|cpp|gfortran)-\d+-x86-64-linux-gnu",
                   r"binutils(-.+)?", r"libbinutils", r"libctf(-nobfd)?\d+", r"libgprofng\d+",
                   r"libsframe\d+", r"libcc1-\d+", r"lib(a|hwa|l|t|ub)san\d+", r"libitm\d+",
                   r"libisl\d+", r"libmpc\d+", r"libmpfr\d+", r"make", r"build-essential",
                   r"dpkg-dev", r"libc-dev-bin", r"golang(-[\d.]+)?(-go|-src)?", r"rustc",
                   r"cargo", r"openjdk-\d+-jdk(-headless)?"),
         category="build"),
    Rule("dev-packages", "development packages and headers (*-dev)",
         "install -dev packages only in a build stage (multi-stage); the runtime image "
         "needs the library packages alone",
         paths=("/usr/include/**", "/usr/local/include/**"),
         packages=(r".+-dev",), category="build"),
    Rule("static-libraries", "static libraries (.a)",
         "link in a build stage and ship only the result (multi-stage)",
         paths=("/usr/lib/**/lib*.a", "/lib/**/lib*.a", "/usr/local/lib/**/lib*.a",
                "/opt/**/lib*.a"),
         category="build"),
    Rule("docs", "documentation: /usr/share/doc, man and info pages",
         "dpkg `path-exclude` rules in /etc/dpkg/dpkg.cfg.d/ before installing (keep "
         "`/usr/share/doc/*/copyright`), `--no-install-recommends`, or a multi-stage build",
         paths=("/usr/share/doc/**", "/usr/share/man/**", "/usr/share/info/**",
                "/usr/share/groff/**", "/usr/share/lintian/overrides/**", "/usr/share/linda/**",
                "/usr/local/share/man/**", "/usr/local/share/doc/**"),
         exclude=("/usr/share/doc/*/copyright",), category="docs"),
    Rule("locales", "message translations (/usr/share/locale)",
         "dpkg `path-exclude /usr/share/locale/*` before installing, or a multi-stage build",
         paths=("/usr/share/locale/**",), exclude=SLIM_INCLUDES, category="docs"),
)

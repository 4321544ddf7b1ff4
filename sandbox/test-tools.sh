#!/usr/bin/env bash
# Make sure the programs some e2e tests drive are installed, from Debian's packages:
#   podman    tests/e2e/test_podman.py (minify against Podman's Docker-compatible API)
#   chromium  tests/e2e/test_report_html.py (the HTML report in a real headless browser)
#
#  - If both are on PATH, do nothing (a second run takes milliseconds).
#  - Otherwise, on Debian/Ubuntu as root: apt-get install only what is missing, without
#    recommended packages (measured on the project's machine: podman ~18 s, chromium
#    ~25 s, with the package lists already fetched).
#  - Anything else is an error that names what is missing: the tests fail loudly
#    rather than skip.
set -euo pipefail

say() { echo "test-tools: $*"; }
die() { echo "test-tools: ERROR: $*" >&2; exit 1; }

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if ((${#missing[@]} == 0)); then
    say "podman and chromium are installed; nothing to do."
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "${missing[*]} missing, and installing needs root (apt-get install ${missing[*]})."
command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and this is not a Debian/Ubuntu system (no apt-get); install them yourself."

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
start=$SECONDS
say "installing ${missing[*]} (apt-get)."
if ! apt_get install -y -q --no-install-recommends "${missing[@]}"; then
    say "refreshing the package lists and trying again."
    apt_get update -q
    apt_get install -y -q --no-install-recommends "${missing[@]}"
fi
for tool in "${missing[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool was installed but is still not on PATH."
done
say "installed ${missing[*]} in $((SECONDS - start)) s."

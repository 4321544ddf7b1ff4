#!/usr/bin/env bash
# Build the offline sandbox images.
#
#   sandbox/build.sh            # base image (if needed) + every sample
#   sandbox/build.sh nginx jq   # base image (if needed) + only these samples
#
# No container registry is reachable, so nothing is pulled:
#  1. the base image minify-sandbox/debian:bookworm is made with
#     `debootstrap --variant=minbase` and `docker import`, and labelled with a
#     hash of its recipe (the build_base function below): it is rebuilt only
#     when it is missing or the recipe changed;
#  2. each sandbox/NAME/Dockerfile is built as minify-sandbox/NAME:latest with
#     the legacy builder (the layer cache makes a second run take seconds).
#     apt inside the builds uses plain http to deb.debian.org.
#
# Environment:
#   MINIFY_DEBIAN_MIRROR   mirror for debootstrap (http://deb.debian.org/debian)
#   MINIFY_REBUILD_BASE=1  rebuild the base image even if its recipe is unchanged
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE_IMAGE=minify-sandbox/debian:bookworm
MIRROR=${MINIFY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Works with both the docker.io 20.10 client and newer clients without buildx.
export DOCKER_BUILDKIT=0

say() { echo "sandbox: $*"; }
die() { echo "sandbox: ERROR: $*" >&2; exit 1; }

ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [[ -x /bin/busybox ]] && dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them."
        say "installing ${missing[*]} (apt-get)."
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# The recipe of the base image. Its text is hashed into the image label
# minify.recipe, so editing this function rebuilds the base on the next run.
build_base() {
    local root
    root=$(mktemp -d /var/tmp/minify-bookworm.XXXXXX)
    BASE_ROOT=$root
    if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1; then
        tail -n 30 "$root.log" >&2
        die "debootstrap failed (log above)."
    fi
    echo "deb http://deb.debian.org/debian bookworm main" >"$root/etc/apt/sources.list"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -c . | docker import \
        --change "LABEL minify.recipe=$1" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        - "$BASE_IMAGE" >/dev/null
}

# Remove the debootstrap tree (also on failure or interruption).
BASE_ROOT=
cleanup_base_root() {
    [[ -n $BASE_ROOT && -d $BASE_ROOT ]] || return 0
    local m
    for m in dev/pts dev proc sys; do
        mountpoint -q "$BASE_ROOT/$m" 2>/dev/null && umount -l "$BASE_ROOT/$m" || true
    done
    rm -rf --one-file-system "$BASE_ROOT" "$BASE_ROOT.log"
    BASE_ROOT=
}
trap cleanup_base_root EXIT

recipe_hash() {
    { declare -f build_base; echo "$MIRROR"; } | sha256sum | cut -c1-16
}

ensure_base() {
    local want have
    want=$(recipe_hash)
    have=$(docker image inspect --format '{{ index .Config.Labels "minify.recipe" }}' "$BASE_IMAGE" 2>/dev/null || true)
    if [[ $have == "$want" && ${MINIFY_REBUILD_BASE:-0} != 1 ]]; then
        say "$BASE_IMAGE is up to date (recipe $want)."
        return
    fi
    if [[ -z $have ]]; then
        say "building $BASE_IMAGE with debootstrap (recipe $want); this takes a few minutes."
    else
        say "rebuilding $BASE_IMAGE (recipe ${have:-none} -> $want)."
    fi
    build_base "$want"
    cleanup_base_root
    say "built $BASE_IMAGE."
}

all_samples() {
    local d
    for d in "$HERE"/*/; do
        [[ -f $d/Dockerfile ]] && basename "$d"
    done
}

build_sample() {
    local name=$1 dir="$HERE/$1" log
    [[ -f $dir/Dockerfile ]] || die "no sample named '$name' (no $dir/Dockerfile)."
    log=$(mktemp /tmp/minify-sandbox-build.XXXXXX)
    local start=$SECONDS
    if ! docker build -t "minify-sandbox/$name:latest" "$dir" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "docker build of $name failed."
    fi
    rm -f "$log"
    say "built minify-sandbox/$name:latest ($((SECONDS - start))s)."
}

main() {
    local names=("$@")
    if ((${#names[@]} == 0)); then
        mapfile -t names < <(all_samples)
    fi
    ensure_host_tools
    docker info >/dev/null 2>&1 || die "no Docker engine answers; run 'make engine' (sandbox/engine.sh) first."
    ensure_base
    local n
    for n in "${names[@]}"; do
        build_sample "$n"
    done
}

main "$@"

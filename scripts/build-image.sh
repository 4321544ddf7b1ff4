#!/usr/bin/env bash
# Build the minify container image (minify:latest by default) from this checkout.
#
#   scripts/build-image.sh                 # wheels + docker build -t minify:latest
#   MINIFY_IMAGE=ci/minify:1 scripts/build-image.sh
#   MINIFY_IMAGE_BASE=python:3.11-slim scripts/build-image.sh   # on a machine with a registry
#
# 1. Wheels are built on the host with pip (which can reach the package index;
#    TLS downloads from inside a container may not work): the dependencies with
#    `pip wheel . -w build/image/deps` (pyfanotify has no binary wheel and is
#    compiled here, so the host needs a C compiler and the Python headers of the
#    same minor version as the image's python3), and the project itself into
#    build/image/project. Each step is redone only when its inputs changed (a
#    hash of pyproject.toml, resp. of the sources), so the files stay byte for byte
#    the same and Docker's layer cache keeps working: a second run takes seconds.
# 2. `docker build` with the legacy builder (works with docker.io 20.10 clients),
#    the Dockerfile at the repository root, and a .dockerignore that sends only
#    build/image/ to the engine.
#
# Environment:
#   MINIFY_IMAGE        tag to build (minify:latest)
#   MINIFY_IMAGE_BASE   base image, passed as --build-arg BASE (minify-sandbox/debian:bookworm)
#   PYTHON              python used for `pip wheel` (.venv/bin/python if present, else python3)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${MINIFY_IMAGE:-minify:latest}
BASE=${MINIFY_IMAGE_BASE:-minify-sandbox/debian:bookworm}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
OUT=$ROOT/build/image
export DOCKER_BUILDKIT=0

say() { echo "build-image: $*" >&2; }
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# pip's chatter goes to a log that is shown only when a step fails.
quiet() { "$@" >>"$LOG" 2>&1 || { cat "$LOG" >&2; die "failed: $*"; }; }
die() { echo "build-image: ERROR: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker not found"
cd "$ROOT"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# Dependencies: only when pyproject.toml (the dependency list) changes.
deps_hash=$(hash_of pyproject.toml)
if [[ ! -f $OUT/deps/.stamp || $(cat "$OUT/deps/.stamp") != "$deps_hash" ]]; then
    say "building dependency wheels into build/image/deps"
    rm -rf "$OUT/deps" && mkdir -p "$OUT/deps"
    quiet "$PYTHON" -m pip wheel . -w "$OUT/deps"
    rm -f "$OUT"/deps/minify-*.whl          # the project goes to its own layer
    echo "$deps_hash" >"$OUT/deps/.stamp"
else
    say "dependency wheels up to date"
fi

# The project: only when its sources change.
src_hash=$( { find minifier probes -type f \( -name '*.py' -o -name '*.json' \) \
                -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs cat; cat pyproject.toml README.md; } \
            | sha256sum | cut -c1-16)
if [[ ! -f $OUT/project/.stamp || $(cat "$OUT/project/.stamp") != "$src_hash" ]]; then
    say "building the minify wheel into build/image/project"
    rm -rf "$OUT/project" && mkdir -p "$OUT/project"
    quiet "$PYTHON" -m pip wheel --no-deps . -w "$OUT/project"
    echo "$src_hash" >"$OUT/project/.stamp"
else
    say "minify wheel up to date"
fi

say "docker build -t $IMAGE (base $BASE)"
quiet docker build --build-arg "BASE=$BASE" -t "$IMAGE" -f Dockerfile .
say "built $IMAGE ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19))"

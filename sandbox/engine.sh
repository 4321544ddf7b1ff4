#!/usr/bin/env bash
# Make sure a Docker engine answers.
#
#  - If `docker info` works (DOCKER_HOST is honoured), do nothing.
#  - Otherwise, on Debian/Ubuntu as root: install Debian's docker.io if dockerd
#    is missing, start dockerd in the background with its log in
#    $MINIFY_DOCKERD_LOG, and wait (bounded) until `docker info` answers.
#  - Never start a second dockerd: if a dockerd process already exists
#    (e.g. still starting up, or started by the package's init script), wait
#    for it instead.
#
# Environment:
#   MINIFY_DOCKERD_LOG      log file of the dockerd we start (/var/log/minify-dockerd.log)
#   MINIFY_ENGINE_TIMEOUT   seconds to wait for `docker info` (60)
set -euo pipefail

LOG=${MINIFY_DOCKERD_LOG:-/var/log/minify-dockerd.log}
TIMEOUT=${MINIFY_ENGINE_TIMEOUT:-60}

say() { echo "engine: $*"; }
die() { echo "engine: ERROR: $*" >&2; exit 1; }

engine_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 20 docker info >/dev/null 2>&1
}

dockerd_running() { pgrep -x dockerd >/dev/null 2>&1; }

wait_for_engine() {
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if engine_answers; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

fail_with_log() {
    echo "engine: ERROR: the Docker engine did not answer within ${TIMEOUT}s." >&2
    if [[ -f $LOG ]]; then
        echo "engine: last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
    fi
    exit 1
}

if engine_answers; then
    say "Docker engine answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null || echo '?')${DOCKER_HOST:+ at $DOCKER_HOST}); nothing to do."
    exit 0
fi

# A DOCKER_HOST pointing somewhere other than the local default socket is not
# something we can start.
if [[ -n ${DOCKER_HOST:-} && ${DOCKER_HOST} != unix:///var/run/docker.sock && ${DOCKER_HOST} != unix:///run/docker.sock ]]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer, and it is not a local engine this script can start."
fi

if dockerd_running; then
    say "a dockerd process exists but does not answer yet; waiting up to ${TIMEOUT}s (not starting another)."
    wait_for_engine || fail_with_log
    say "Docker engine answers."
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "no Docker engine answers and starting one needs root (run as root, or start dockerd yourself)."

if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "dockerd is missing and this is not a Debian/Ubuntu system (no apt-get); install a Docker engine yourself."
    say "dockerd is missing; installing Debian's docker.io (apt-get)."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends docker.io
    command -v dockerd >/dev/null 2>&1 || die "docker.io was installed but dockerd is still not on PATH."
    # The package's init script may have started an engine already.
    if dockerd_running; then
        say "the docker.io package started dockerd; waiting for it."
        wait_for_engine || fail_with_log
        say "Docker engine answers."
        exit 0
    fi
fi

mkdir -p "$(dirname "$LOG")"
say "starting dockerd in the background (log: $LOG)."
setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
disown || true

if wait_for_engine; then
    say "Docker engine answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null || echo '?'))."
    exit 0
fi
fail_with_log

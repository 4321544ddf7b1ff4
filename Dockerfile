# minify in a container. Build with scripts/build-image.sh (or `make image`), which
# first builds the wheels on the host into build/image/.
#
# Run it against the host's engine (why each flag is needed: docs/ci.md):
#
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock \
#       --pid=host --network=host --cap-add SYS_PTRACE --cap-add SYS_ADMIN \
#       minify:latest build IMAGE [OPTIONS]
#
# BASE defaults to the offline sandbox base; on a machine with a registry,
# --build-arg BASE=python:3.11-slim works too (its python3 is used as is).
ARG BASE=minify-sandbox/debian:bookworm
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# Debian's python3 unless the base already has one (python:3.11-slim does).
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv /opt/minify
# Dependencies first (they change rarely), then minify itself: editing minify's
# sources rebuilds only the last layer.
COPY build/image/deps/ /tmp/wheels/deps/
RUN /opt/minify/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /tmp/wheels/deps /tmp/wheels/deps/*.whl \
 && rm -rf /tmp/wheels
COPY build/image/project/ /tmp/wheels/project/
RUN /opt/minify/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
        --no-deps /tmp/wheels/project/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/minify/bin/minify --version
ENV PATH=/opt/minify/bin:$PATH PYTHONDONTWRITEBYTECODE=1
# Relative --report-file/--summary-md paths land here; CI copies them out with
# `docker cp`, which works even when the job's directory is not a path on the
# engine's host (GitLab socket binding, docker:dind) and gives the files to the
# user running the CLI.
RUN mkdir /out
WORKDIR /out
ENTRYPOINT ["minify"]
CMD ["--help"]

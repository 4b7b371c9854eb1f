#!/usr/bin/env bash
# Build and run the container stack for real, offline: `make test-docker`.
#
# 1. Install the Docker engine and debootstrap from Debian if missing.
# 2. Start dockerd in the background if no engine answers (log: $DOCKERD_LOG).
# 3. Build local stand-ins for the base images no registry can give us here:
#    a Debian rootfs (debootstrap, cached by tag), Python, Redis and nginx on it.
# 4. Run the docker tests (tests/docker), which build the web image from the
#    real Dockerfile.web, the worker from its real runtime stage, and run the
#    real compose.yaml. They tear their own stack down, pass or fail.
#
# Extra arguments go to pytest. The engine it starts is left running.
set -euo pipefail

cd "$(dirname "$0")/.."

# Debian 13 (trixie) for the stand-ins, not 12: bookworm's python3 is 3.11.2,
# where redis-py imports async_timeout, which locks made on Python >= 3.11.3
# (and the images' 3.12) rightly leave out. trixie's is 3.13.
SUITE=${STANDIN_SUITE:-trixie}
ROOTFS_IMAGE=${STANDIN_ROOTFS_IMAGE:-imgjobs-standin/rootfs:$SUITE}
PYTHON_IMAGE=${STANDIN_PYTHON_IMAGE:-imgjobs-standin/python:$SUITE}
REDIS_IMAGE=${STANDIN_REDIS_IMAGE:-imgjobs-standin/redis:$SUITE}
NGINX_IMAGE=${STANDIN_NGINX_IMAGE:-imgjobs-standin/nginx:$SUITE}
DOCKERD_LOG=${DOCKERD_LOG:-/var/tmp/imgjobs-dockerd.log}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
VENV=${VENV:-.venv}
# The engine here is Docker 20.10 with only the legacy builder.
export DOCKER_BUILDKIT=0

log() { printf '==> %s\n' "$*" >&2; }

debian_mirror() {
    # The mirror this host's apt uses, so debootstrap goes the same way.
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    echo "${DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

install_missing() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

start_engine() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    # Close every inherited descriptor first: run under `flock /tmp/docker.lock`, dockerd
    # would otherwise keep the lock's descriptor, and the lock, for as long as it runs.
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec nohup dockerd </dev/null >"$DOCKERD_LOG" 2>&1
    ) &
    local pid=$!
    for _ in $(seq 60); do
        if docker info >/dev/null 2>&1; then
            log "dockerd is up (pid $pid)"
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -20 "$DOCKERD_LOG" >&2
            log "dockerd exited"
            exit 1
        fi
        sleep 1
    done
    tail -20 "$DOCKERD_LOG" >&2
    log "dockerd did not answer within 60 s"
    exit 1
}

build_rootfs() {
    if docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
        log "$ROOTFS_IMAGE exists, not rebuilt"
        return
    fi
    local dir
    dir=$(mktemp -d /var/tmp/imgjobs-rootfs.XXXXXX)
    log "debootstrap $SUITE into $dir (about a minute)"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$dir" "$(debian_mirror)" >"$dir.log" 2>&1 \
        || { tail -20 "$dir.log" >&2; rm -rf "$dir"; exit 1; }
    # What a container never needs: downloaded .debs, apt lists, docs.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
        "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
        "$dir"/var/log/*
    # An imported image has no PATH of its own; give it the usual one so
    # `ENV PATH=/venv/bin:$PATH` in the Dockerfiles expands as on official images.
    tar -C "$dir" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$dir" "$dir.log"
    log "imported $ROOTFS_IMAGE"
}

# build_standin IMAGE NAME CONTEXT: tests/docker/standin/NAME.Dockerfile on the rootfs.
build_standin() {
    log "building $1"
    docker build -q --build-arg ROOTFS_IMAGE="$ROOTFS_IMAGE" -t "$1" \
        -f "tests/docker/standin/$2.Dockerfile" "$3" >/dev/null
}

build_standins() {
    # `docker build` reuses its layer cache, so these take seconds once built.
    local ctx
    ctx=$(mktemp -d)
    cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
    build_standin "$PYTHON_IMAGE" python "$ctx"
    build_standin "$REDIS_IMAGE" redis "$ctx"
    build_standin "$NGINX_IMAGE" nginx "$ctx"
    rm -rf "$ctx"
}

# prepare TARGET: what every container test needs first: the venv, the engine, the stand-ins.
prepare() {
    if [[ ! -x $VENV/bin/pytest ]]; then
        log "no $VENV/bin/pytest: run 'make $1', which installs requirements/dev.txt"
        exit 1
    fi
    install_missing
    start_engine
    build_rootfs
    build_standins
}

main() {
    local start=$SECONDS
    prepare test-docker
    log "stand-ins ready after $((SECONDS - start)) s"
    export STANDIN_PYTHON_IMAGE=$PYTHON_IMAGE STANDIN_REDIS_IMAGE=$REDIS_IMAGE STANDIN_NGINX_IMAGE=$NGINX_IMAGE
    # docker-compose and hadolint come from the venv (requirements/dev.txt).
    local bin
    bin=$(cd "$VENV/bin" && pwd)
    export PATH="$bin:$PATH"
    local status=0
    "$VENV/bin/pytest" -m "docker and not swarm" tests/docker "$@" || status=$?
    # Rebuilds leave the previous images untagged; drop only this project's.
    for title in imgjobs-web imgjobs-worker imgjobs-proxy; do
        docker image prune --force --filter "label=org.opencontainers.image.title=$title" >/dev/null
    done
    docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^imgjobs' >&2 || true
    log "docker tests took $((SECONDS - start)) s in all"
    return "$status"
}

# scripts/test-conda.sh sources this file for its functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi

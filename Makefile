# Everyday verbs. Every target installs what it needs on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev test chaos test-docker test-swarm test-conda lint bench lock system-deps clean

# Debian's own python3 needs the python3-venv package for this.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || (bash scripts/system-deps.sh python3-venv && $(PYTHON) -m venv --clear $(VENV))

$(VENV)/.runtime: $(BIN)/python requirements/web.txt requirements/worker.txt requirements/client.txt pyproject.toml
	$(BIN)/pip install --quiet --require-hashes -r requirements/web.txt -r requirements/worker.txt -r requirements/client.txt
	$(BIN)/pip install --quiet --no-deps --editable .  # the `imgjobs` command, in $(BIN)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements/dev.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt
	touch $@

## dev: run the whole service here (private Redis unless REDIS_URL is set, gunicorn, $WORKERS workers)
dev: $(VENV)/.runtime
	bash scripts/dev.sh

## system-deps: Debian packages the tests need (redis-server, nginx, chromium)
system-deps:
	bash scripts/system-deps.sh redis-server nginx chromium

## test: the whole suite except the container tests (real Redis, real workers, real Chromium)
test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest -m "not docker and not chaos" $(PYTEST_ARGS)

## chaos: 200 jobs while a worker child, a whole worker and Redis are killed; prints the counts
chaos: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest -m chaos -s -q tests/test_chaos.py

## test-docker: build the images and run the real compose.yaml (needs root for the engine)
test-docker: $(VENV)/.dev
	bash scripts/test-docker.sh

## test-swarm: deploy swarm.yaml on a single-node Docker Swarm with the local images: upload -> result, 1 -> 3 workers, a rolling update
test-swarm: $(VENV)/.dev
	bash scripts/test-swarm.sh

## test-conda: build the worker image through Dockerfile.worker's conda stage, offline (a local channel), and run a job in it
test-conda: $(VENV)/.dev system-deps
	bash scripts/test-conda.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# thumbor, the peer the benchmark compares with, lives in its own venv: never a dependency of the service.
BENCH_VENV := .venv-bench
THUMBOR := thumbor==7.8.0

$(BENCH_VENV)/.thumbor:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet $(THUMBOR)
	touch $@

## bench: speed ratios measured side by side in one run (this service against thumbor, queue, HTTP, ops)
bench: $(VENV)/.dev system-deps $(BENCH_VENV)/.thumbor
	$(BIN)/python -m bench.thumbor $(BENCH_VENV)/bin/thumbor
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.ops
	$(BIN)/python -m bench.abuse

## lock: recompile the pinned requirements/*.txt from requirements/*.in
lock: $(VENV)/.dev
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache

# Stand-in for Dockerfile.worker's conda stage, which cannot run offline (no
# conda channel). It makes the same /venv with the same packages, from PyPI
# wheels pinned in requirements/worker.txt, on the stand-in Python. The tests
# put this stage in front of the real runtime stage of Dockerfile.worker,
# copied verbatim, so user, paths, command, healthcheck and signals are the
# real ones. The runtime base must then be the same stand-in (its python3).
ARG STANDIN_PYTHON_IMAGE=imgjobs-standin/python:trixie
FROM ${STANDIN_PYTHON_IMAGE} AS env

COPY requirements/worker.txt /tmp/requirements-worker.txt
RUN python -m venv --without-pip /venv \
    && python -m pip --python /venv/bin/python install --no-cache-dir --no-deps \
        --require-hashes --requirement /tmp/requirements-worker.txt \
    && /venv/bin/python -c "import numpy, PIL.Image, redis, rq"

# Stand-in for mambaorg/micromamba where no conda channel can be reached: the
# stand-in Python with py-rattler (pinned, by hash), tests/conda/micromamba.py
# as `micromamba`, and the local channel built from the pins as conda-forge.
# Test-only; built by scripts/test-conda.sh from a context holding those.
ARG STANDIN_PYTHON_IMAGE=imgjobs-standin/python:trixie
FROM ${STANDIN_PYTHON_IMAGE}

COPY requirements-rattler.txt /tmp/requirements-rattler.txt
RUN python -m pip install --no-cache-dir --break-system-packages --require-hashes \
        --requirement /tmp/requirements-rattler.txt \
    && rm /tmp/requirements-rattler.txt
COPY micromamba.py /usr/local/bin/micromamba
COPY channel /opt/channel
ENV LOCAL_CHANNEL=/opt/channel

# Stand-in for python:3.12-slim where no registry can be reached: Debian's own
# python3 from a debootstrap rootfs (trixie: 3.13; see scripts/test-docker.sh
# for why not bookworm's 3.11.2), plus `python` and the host's CA bundle so pip
# inside builds gets through the intercepting proxy. Test-only; built by
# scripts/test-docker.sh from a context holding ca-certificates.crt.
ARG ROOTFS_IMAGE=imgjobs-standin/rootfs:trixie
FROM ${ROOTFS_IMAGE}

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -s /usr/bin/python3 /usr/local/bin/python

ENV LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_DEFAULT_TIMEOUT=180

CMD ["python3"]

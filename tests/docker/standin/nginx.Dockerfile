# Stand-in for nginx:1.28-alpine where no registry can be reached: Debian's nginx
# with the official image's user ids (nginx = 101:101), and wget for the
# healthcheck as the alpine image's busybox has it. Test-only.
ARG ROOTFS_IMAGE=imgjobs-standin/rootfs:trixie
FROM ${ROOTFS_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx wget \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 101 nginx \
    && useradd --system --uid 101 --gid 101 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nginx

CMD ["nginx", "-g", "daemon off;"]

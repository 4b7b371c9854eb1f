# Stand-in for redis:7-alpine where no registry can be reached: Debian's
# redis-server with the same user ids (redis = 999:1000), working
# directory and data volume as the official alpine image. Test-only.
ARG ROOTFS_IMAGE=imgjobs-standin/rootfs:trixie
FROM ${ROOTFS_IMAGE}

# The package's maintainer scripts create a `redis` user; give it the
# official image's ids afterwards.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupmod --gid 1000 redis \
    && usermod --uid 999 --gid 1000 redis \
    && install -d -o redis -g redis -m 0755 /data

WORKDIR /data
VOLUME /data
USER 999:1000
EXPOSE 6379
CMD ["redis-server"]

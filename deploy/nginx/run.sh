#!/bin/sh
# Start the nginx front in the foreground: fill imgjobs.conf.template from the environment,
# then exec nginx on it. Compose's proxy service and `make dev` both start it this way.
#   LISTEN         where clients connect          (8080; `make dev`: 127.0.0.1:$PORT)
#   UPSTREAM       the web's address              (web:5000)
#   RESOLVER       DNS server for UPSTREAM's name (127.0.0.11, Docker's)
#   SPOOL_DIR      bodies, responses, the pid     (/spool)
#   MAX_UPLOAD_MB  the app's body limit           (25)
set -eu
template="$(dirname "$0")/imgjobs.conf.template"
spool=${SPOOL_DIR:-/spool}
mb=${MAX_UPLOAD_MB:-25}
# What a killed nginx left half-spooled is nobody's any more.
rm -rf "$spool/body" "$spool/proxy"
mkdir -p "$spool"
# Started as root (`make dev` or the tests as root), nginx would run its workers as nobody,
# who may not reach a private SPOOL_DIR: they run as the starting user instead. In the
# containers nginx starts as its own user, and this line stays a comment.
if [ "$(id -u)" = 0 ]; then user="user root root;"; else user="# not started as root: workers run as this user"; fi
sed -e "s|@USER_DIRECTIVE@|$user|" \
    -e "s|@LISTEN@|${LISTEN:-8080}|g" \
    -e "s|@UPSTREAM@|${UPSTREAM:-web:5000}|g" \
    -e "s|@RESOLVER@|${RESOLVER:-127.0.0.11}|g" \
    -e "s|@SPOOL_DIR@|$spool|g" \
    -e "s|@MAX_BODY_BYTES@|$(awk -v mb="$mb" 'BEGIN { printf "%d", mb * 1048576 }')|g" \
    -e "s|@MAX_UPLOAD_MB@|$(awk -v mb="$mb" 'BEGIN { printf "%g", mb }')|g" \
    "$template" >"$spool/nginx.conf"
exec nginx -e stderr -p "$spool" -c "$spool/nginx.conf" -g 'daemon off;'

#!/usr/bin/python3
"""`wget -q -O FILE URL` for the SeaweedFS stand-in's healthcheck: exit 0 on a 2xx answer, 1 otherwise."""

import sys
import urllib.request

args = sys.argv[1:]
out = args[args.index("-O") + 1] if "-O" in args else None
url = args[-1]
try:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (a fixed healthcheck URL)
        body = reply.read()
except Exception as error:  # noqa: BLE001 (any failure is an unhealthy answer)
    print(f"wget: {url}: {error}", file=sys.stderr)
    sys.exit(1)
if out and out != "-":
    with open(out, "wb") as sink:
        sink.write(body)

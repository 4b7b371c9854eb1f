#!/usr/bin/env bash
# `make lock`: recompile requirements/*.txt from requirements/*.in with pip-tools.
# pip-compile resolves for the Python it runs on, so pins guarded by an environment marker
# that is false here (e.g. for Python < 3.11.3) would vanish: they are carried over as written.
set -euo pipefail
cd "$(dirname "$0")/../requirements"
for name in web worker client dev; do
  ../.venv/bin/pip-compile --quiet --strip-extras --no-header --allow-unsafe \
    --no-emit-index-url --no-emit-find-links "$name.in" -o "$name.txt"
  { grep -E '^[^#-].*;' "$name.in" || true; } | while read -r line; do
    grep -qxF "$line" "$name.txt" || echo "$line" >> "$name.txt"
  done
done

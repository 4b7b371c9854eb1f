#!/usr/bin/env bash
# `make lock`: recompile requirements/*.txt from requirements/*.in with pip-tools, every
# pin with the sha256 of each of its files (installs use --require-hashes), then the
# pip: section of environment.yml from requirements/worker.txt.
# pip-compile resolves for the Python it runs on, so pins guarded by an environment marker
# that is false here (e.g. for Python < 3.11.3) would vanish: they are carried over as
# written, with the hashes of that one pin.
set -euo pipefail
cd "$(dirname "$0")/../requirements"
compile() {
  ../.venv/bin/pip-compile --quiet --strip-extras --no-header --allow-unsafe --generate-hashes \
    --no-emit-index-url --no-emit-find-links "$@"
}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for name in web worker client dev; do
  compile "$name.in" -o "$name.txt"
  { grep -E '^[^#-].*;' "$name.in" || true; } | while read -r line; do
    pin=${line%%;*}
    pin=${pin%"${pin##*[![:space:]]}"}
    grep -qiE "^${pin%%==*}==" "$name.txt" && continue
    echo "$pin" > "$scratch/one.in"
    compile "$scratch/one.in" -o "$scratch/one.txt"
    # The pin's own block: its line with the marker put back, then its hash lines.
    awk -v pin="$pin" -v marker=";${line#*;}" '
      index($0, pin " ") == 1 { print pin " " marker " \\"; keep = 1; next }
      keep && /^ +--hash/ { print; next }
      { keep = 0 }' "$scratch/one.txt" >> "$name.txt"
  done
done
../.venv/bin/python ../scripts/environment.py

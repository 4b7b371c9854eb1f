#!/bin/sh
# Pack a conda env with conda-pack, unpack it where it will run, rewrite its
# prefixes with conda-unpack, and strip what a runtime never needs:
#   pack-env.sh CONDA_PACK ENV DEST
# The one copy of these steps: Dockerfile.worker's env stage runs it, and so
# does `make test-conda` through that same Dockerfile.
set -eu
conda_pack=$1 env=$2 dest=$3
tarball=$(mktemp -d)/env.tar

# --ignore-missing-files: a file that conda-meta lists but the env lacks (such
# as bytecode an installer skipped) must not stop the pack; the strip below
# drops bytecode anyway. conda-unpack's shebang is `/usr/bin/env python` and the
# build image need not have a python on PATH, so the env's own one runs it.
"$conda_pack" --prefix "$env" --output "$tarball" --ignore-missing-files --quiet
echo "packed env: $(du -m "$tarball" | cut -f1) MB (conda-pack tarball)"
mkdir -p "$dest"
tar -xf "$tarball" -C "$dest"
rm -rf "$(dirname "$tarball")"
"$dest/bin/python" "$dest/bin/conda-unpack"

# What a runtime never needs: package metadata, headers, static libraries, the
# linker conda ships for builds and python-config (which conda-unpack leaves
# pointing at the build prefix), conda-pack's own scripts, pip (the env is never
# changed after this), Tcl/Tk 8 and 9, docs, test suites and bytecode caches.
# The worker imports once per process, so in-memory compiles cost it little.
cd "$dest"
rm -rf conda-meta include share/doc share/man share/info compiler_compat \
    x86_64-conda-linux-gnu bin/x86_64-conda-linux-gnu-ld bin/x86_64-conda_cos*-ld \
    bin/conda-unpack bin/conda_unpack_progress.py bin/activate bin/activate.* bin/deactivate \
    bin/pip bin/pip3* bin/idle* bin/2to3* bin/wish* bin/tclsh* bin/python*-config bin/python*-gdb.py \
    lib/libtk* lib/libtcl* lib/tk8* lib/tcl8* lib/tk9* lib/tcl9* lib/itcl* lib/thread2* \
    lib/pkgconfig lib/cmake lib/python3*/config-3* \
    lib/python3*/site-packages/pip lib/python3*/site-packages/pip-*.dist-info \
    lib/python3*/test lib/python3*/idlelib lib/python3*/tkinter \
    lib/python3*/turtledemo lib/python3*/ensurepip lib/python3*/lib2to3 \
    lib/python3*/lib-dynload/_tkinter*
find . -depth \( -name '__pycache__' -o -name '*.a' -o -name '*.pyc' \
    -o \( -type d \( -name tests -o -name test \) -path '*/site-packages/*' \) \) \
    -exec rm -rf {} +
# Links left pointing at what was just removed (idle3 -> idle3.12, ...).
find . -type l ! -exec test -e {} \; -exec rm -f {} +
echo "stripped env: $(du -sm . | cut -f1) MB at $dest"

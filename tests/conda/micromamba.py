#!/usr/bin/env python3
"""Stand-in for micromamba where no conda channel can be reached, installed as `micromamba`.

It takes the two commands Dockerfile.worker gives, `create --yes --prefix P --file ENV.yml`
and `create --yes --prefix P --override-channels --channel conda-forge SPEC...`, plus
`clean`, and runs them with py-rattler against the local channel in $LOCAL_CHANNEL in
place of conda-forge: a real solve, a real install with conda-meta and prefix rewriting,
then, like micromamba, the pip: section through the env's own pip. Test-only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import rattler

CHANNEL = os.environ.get("LOCAL_CHANNEL", "/opt/channel")
CACHE = Path(tempfile.gettempdir()) / "rattler-cache"


def read_environment(path: Path) -> tuple[list[str], list[str]]:
    """Return environment.yml's conda specs and pip: lines (its flat shape, as the tests check)."""
    specs: list[str] = []
    pip: list[str] = []
    section = None
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.startswith("#") else ""
        if not line:
            continue
        if not line.startswith(" "):
            section = line.split(":", 1)[0]
        elif line == "  - pip:":
            section = "pip"
        elif section == "dependencies":
            specs.append(line.strip()[2:])
        elif section == "pip":
            pip.append(line.strip()[2:])
    return specs, pip


def local(spec: str, channel_python: str) -> str:
    """Return the spec as the local channel can meet it: its CPython is pyenv's, not conda-forge's."""
    name, _, version = spec.partition("=")
    if name != "python":
        return spec
    minor = ".".join(version.split(".")[:2])
    print(f"micromamba stand-in: {spec} -> python {minor}.* (the local channel's CPython {channel_python})")
    return f"python {minor}.*"


def channel_python() -> str:
    """Return the version of the local channel's python package."""
    found = [p.name for p in Path(CHANNEL, "linux-64").glob("python-*.tar.bz2")]
    return re.sub(r"^python-(.*)-[^-]+\.tar\.bz2$", r"\1", found[0]) if found else "none"


async def create(prefix: Path, specs: list[str]) -> None:
    """Solve the specs against the local channel and install them into the prefix."""
    python = channel_python()
    records = await rattler.solve([rattler.Channel(CHANNEL)], [local(s, python) for s in specs],
                                  platforms=["linux-64", "noarch"],
                                  virtual_packages=rattler.VirtualPackage.detect())
    print("micromamba stand-in: installing", ", ".join(f"{r.name.normalized} {r.version}" for r in records))
    await rattler.install(records, target_prefix=prefix, cache_dir=CACHE, show_progress=False)


def pip_install(prefix: Path, lines: list[str]) -> None:
    """Install the pip: section with the env's own pip, as micromamba does."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    try:
        subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "install", "--no-input", "--quiet",
                        "--disable-pip-version-check", "--no-cache-dir", "-r", handle.name], check=True)
    finally:
        os.unlink(handle.name)


def main(argv: list[str]) -> int:
    """Run `create` or `clean`."""
    parser = argparse.ArgumentParser(prog="micromamba")
    parser.add_argument("command", choices=["create", "clean"])
    parser.add_argument("--yes", "-y", action="store_true")
    parser.add_argument("--all", "-a", action="store_true")
    parser.add_argument("--prefix", "-p", type=Path)
    parser.add_argument("--file", "-f", type=Path)
    parser.add_argument("--override-channels", action="store_true")
    parser.add_argument("--channel", "-c", action="append", default=[])
    parser.add_argument("specs", nargs="*")
    args = parser.parse_intermixed_args(argv)
    if args.command == "clean":
        shutil.rmtree(CACHE, ignore_errors=True)
        return 0
    if set(args.channel) - {"conda-forge"}:
        parser.error(f"only conda-forge stands in here, not {args.channel}")
    specs, pip = read_environment(args.file) if args.file else (args.specs, [])
    asyncio.run(create(args.prefix, specs))
    if pip:
        pip_install(args.prefix, pip)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

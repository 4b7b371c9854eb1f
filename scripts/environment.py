"""Write environment.yml's pip: section from requirements/worker.txt (run by `make lock`).

The conda section (python, pip and the packages with compiled code) is written by hand with
versions that exist on conda-forge; each must equal its pin in worker.txt. Every other pin
of worker.txt goes to the pip: section with its hashes, so a new worker dependency arrives
there by itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = ROOT / "environment.yml"
LOCK = ROOT / "requirements" / "worker.txt"
PIP_HEADER = "  - pip:"
#: conda-forge name -> PyPI name where they differ.
PYPI_NAME = {"redis-py": "redis"}


def locked() -> dict[str, str]:
    """Return worker.txt as PyPI name -> its requirement on one line, hashes included."""
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        lines = [line.strip().rstrip("\\").strip() for line in block.splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if lines:
            pins[re.split(r"[=;\s]", lines[0], maxsplit=1)[0].lower()] = " ".join(lines)
    return pins


def conda_pins(head: str) -> dict[str, str]:
    """Return the hand-written conda dependencies as PyPI name -> version."""
    found = re.findall(r"^  - ([a-z0-9][a-z0-9._-]*)=(\S+)$", head, re.M)
    return {PYPI_NAME.get(name, name): version for name, version in found}


def main() -> int:
    """Check the conda pins against the lock and rewrite the pip: section."""
    text = ENVIRONMENT.read_text()
    head = text.split("\n" + PIP_HEADER + "\n", 1)[0].rstrip("\n")
    pins = locked()
    wrong = [f"{name}={version} (worker.txt: {pins.get(name, 'absent').split(' ')[0]})"
             for name, version in conda_pins(head).items()
             if name not in ("python", "pip") and not pins.get(name, "").startswith(f"{name}=={version} ")]
    if wrong:
        print(f"environment.yml: conda pins differ from requirements/worker.txt: {', '.join(wrong)}", file=sys.stderr)
        return 1
    rest = [line for name, line in sorted(pins.items()) if name not in conda_pins(head)]
    section = [PIP_HEADER, "    - --only-binary=:all:", *(f"    - {line}" for line in rest)]
    ENVIRONMENT.write_text(head + "\n" + "\n".join(section) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

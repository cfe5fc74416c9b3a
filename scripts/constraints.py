#!/usr/bin/env python
"""The tested dependency set: ``constraints.txt`` pins every package this bundle (with its test extra) pulls in.

    python scripts/constraints.py freeze       # rewrite constraints.txt from this environment (after the suite passed)
    python scripts/constraints.py keep-torch   # print constraints.txt without the installed torch and its requirements

``freeze`` writes what ``pip freeze`` would list for the packages this project depends on, directly or through
another package, and nothing else the machine happens to have; torch is written without its local label
(``2.13.0``, not ``2.13.0+cpu``) so that a CUDA build of the same release satisfies it. ``keep-torch`` is what
``scripts/setup.sh`` uses when a torch of another release is already installed (a GPU user's build): that torch and
the packages it requires are then left to pip within pyproject's ranges.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
PROJECT = "adversarial-segmentation-bundle"
HEADER = """\
# The versions the test suite passed with: scripts/setup.sh installs with them (pyproject.toml keeps ranges).
# To move on: `ADVSEG_UNPINNED=1 bash scripts/setup.sh` (newest releases in the ranges), `python -m pytest -q`,
# then `python scripts/constraints.py freeze` writes this file from that environment. Python {python}.
"""


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(name: str, extras: tuple[str, ...] = ()) -> dict:
    """Installed distributions that ``name`` (with ``extras``) needs here, itself included, by canonical name."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a fresh environment before set-up: pip's own copy
        from pip._vendor.packaging.requirements import Requirement
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(name, extras)]
    while todo:
        dist_name, dist_extras = todo.pop()
        if (canonical(dist_name), dist_extras) in seen:
            continue
        seen.add((canonical(dist_name), dist_extras))
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue  # required only on other platforms, or never installed
        found[canonical(dist_name)] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in dist_extras or ("",)):
                todo.append((req.name, tuple(sorted(req.extras))))
    return found


def freeze() -> str:
    """The text of ``constraints.txt`` for this environment."""
    dists = requirement_closure(PROJECT, ("test",))
    dists.pop(canonical(PROJECT), None)
    lines = []
    for key in sorted(dists):
        version = dists[key].version
        if key == "torch":
            version = version.split("+")[0]
        lines.append(f"{dists[key].metadata['Name']}=={version}")
    python = ".".join(map(str, sys.version_info[:2]))
    return HEADER.format(python=python) + "\n".join(lines) + "\n"


def without_installed_torch(text: str) -> str:
    """``text`` (a constraints file) without the lines of the installed torch and what it requires."""
    drop = set(requirement_closure("torch"))
    kept = [line for line in text.splitlines() if line.startswith("#") or canonical(line.split("==")[0]) not in drop]
    return "\n".join(kept) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["freeze"]:
        CONSTRAINTS.write_text(freeze())
        print(f"wrote {CONSTRAINTS}")
    elif argv == ["keep-torch"]:
        sys.stdout.write(without_installed_torch(CONSTRAINTS.read_text()))
    else:
        print("usage: python scripts/constraints.py freeze | keep-torch", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

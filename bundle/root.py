"""Where the bundle's files are (``configs/``, ``models/``, ``scripts/``), found without importing torch or MONAI, so
that ``advseg --help``, ``advseg where`` and argument mistakes answer at once."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLE_ROOT", "IS_CHECKOUT", "work_root"]

_PACKAGED = Path(__file__).resolve().parent / "bundle_root"  # the copy of the bundle root a wheel installs


def _bundle_root() -> tuple[Path, bool]:
    """The bundle root and whether it is a source checkout: the folder above the package in a checkout or an
    editable install, else the copy a wheel carries as package data."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "configs" / "common.yaml").is_file():
        return checkout, True
    return _PACKAGED, False


BUNDLE_ROOT, IS_CHECKOUT = _bundle_root()


def work_root(bundle_root: str | Path) -> str:
    """Where a run's default ``data/`` and ``outputs/`` go: the bundle root of a checkout, the current folder for the
    copy a wheel installs (site-packages is no place for generated phantoms and results)."""
    return str(Path.cwd() if Path(bundle_root).resolve() == _PACKAGED else Path(bundle_root))

"""Adversarial attacks on medical image segmentation, as a MONAI bundle (import name ``bundle``).

``load_examples`` and ``load_network`` are imported when first used (PEP 562), so that importing a light module such
as ``bundle.cli`` or ``bundle.root`` does not load torch and MONAI (about 15 s on a 2-core machine)."""

from __future__ import annotations

import importlib

__all__ = ["load_examples", "load_network"]

_HOMES = {"load_examples": "bundle.examples", "load_network": "bundle.networks"}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'bundle' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

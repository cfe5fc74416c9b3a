"""File-system helpers shared by every layer: atomic writes and safe names."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "safe_name"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    A writer that fails or is interrupted leaves neither ``path`` nor a partial file behind.
    The temporary name keeps the suffix so libraries that choose a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def safe_name(value: object, fallback: str = "case") -> str:
    """A file-name component made from ``value`` that cannot escape its folder (no separators, no dots first)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).lstrip("._")
    return name[:128] or fallback

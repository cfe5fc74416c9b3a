"""File-system helpers shared by every layer: atomic writes, clean-up of what interrupted writes left, safe names."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "remove_orphans", "safe_name"]

# temporary names: .<stem>.<host tag>-<pid>-<random>.part<suffix>; older versions wrote .<stem>.<mkstemp 8>.part<suffix>
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]
_PART = re.compile(r"^\..+\.(?:(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[0-9a-f]{8}|[a-z0-9_]{8})\.part(?:\.[^/]*)?$")
OTHER_HOST_AGE = 24 * 3600  # seconds after which another machine's temporary file counts as left behind
_cleaned: set[Path] = set()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    A writer that fails or is interrupted leaves neither ``path`` nor a partial file behind; a process killed
    outright leaves its temporary file, which :func:`remove_orphans` deletes the next time this process or
    another writes into that folder. The temporary file is created empty with the permissions ``open()`` gives
    (0666 less the umask) and keeps the suffix so libraries that choose a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    if folder not in _cleaned:
        remove_orphans(folder)
        _cleaned.add(folder)
    while True:
        tmp_path = path.parent / f".{path.stem}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.part{path.suffix}"
        try:
            os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` whose writer is gone; return them.

    Gone: a process of this machine that no longer runs, a file of an older version of this bundle (no process
    id in its name), or a file of another machine older than ``OTHER_HOST_AGE``. Files of live writers stay.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _PART.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or not _writer_gone(match, entry):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _writer_gone(match: re.Match, entry: os.DirEntry) -> bool:
    if match["pid"] is None:
        return True
    if match["host"] != _HOST:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > OTHER_HOST_AGE
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def safe_name(value: object, fallback: str = "case") -> str:
    """A file-name component made from ``value`` that cannot escape its folder (no separators, no dots first)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).lstrip("._")
    return name[:128] or fallback

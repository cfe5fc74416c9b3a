"""A throw-away Orthanc PACS for the tests: loopback clients only, DICOMweb plugin, storage in a temp folder.

Not a test file. Use it from a fixture::

    @pytest.fixture(scope="module")
    def orthanc_url(tmp_path_factory):
        with running_orthanc(tmp_path_factory.mktemp("orthanc")) as url:
            yield url

It needs the ``Orthanc`` executable and the DICOMweb plugin (Debian packages ``orthanc`` and
``orthanc-dicomweb``, installed by ``bash scripts/setup.sh``); when either is missing the caller is
skipped. The system service is never used: the server runs as a child process of the tests with a
configuration of its own and is terminated afterwards. Environment overrides: ``ORTHANC_EXECUTABLE``
and ``ORTHANC_DICOMWEB_PLUGIN``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["running_orthanc", "find_orthanc", "orthanc_config", "INSTALL_HINT", "DICOMWEB_ROOT"]

INSTALL_HINT = ("install them with `bash scripts/setup.sh` (or `apt-get install orthanc orthanc-dicomweb`; "
                "set ORTHANC_EXECUTABLE / ORTHANC_DICOMWEB_PLUGIN for other locations)")
DICOMWEB_ROOT = "/dicom-web/"
_PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                      "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                      "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
                      "/usr/lib/x86_64-linux-gnu/orthanc/libOrthancDicomWeb.so*")


def find_orthanc() -> tuple[str | None, str | None]:
    """``(executable, dicomweb_plugin)`` paths, ``None`` for each one not found.

    Debian puts ``Orthanc`` in ``/usr/sbin``, which is not on an unprivileged user's PATH, so that
    folder is looked at too.
    """
    exe = os.environ.get("ORTHANC_EXECUTABLE") or shutil.which("Orthanc") or shutil.which(
        "Orthanc", path="/usr/sbin:/usr/local/sbin")
    if exe is not None and not os.access(exe, os.X_OK):
        exe = None
    plugin = os.environ.get("ORTHANC_DICOMWEB_PLUGIN")
    if plugin is None:
        for pattern in _PLUGIN_CANDIDATES:
            hits = sorted(glob.glob(pattern))
            if hits:
                plugin = hits[0]
                break
    if plugin is not None and not Path(plugin).is_file():
        plugin = None
    return exe, plugin


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_config(root: Path, plugin: str, http_port: int, dicom_port: int, extra_plugins: tuple[str, ...] = ()) -> dict:
    """The configuration: HTTP on loopback only, no DICOM server, no authentication, DICOMweb on (and
    ``extra_plugins``, e.g. the Web Viewer)."""
    return {
        "Name": "adversarial-bundle-tests",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "StorageCompression": False,
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        # Orthanc 1.10 has no bind-address option and listens on 0.0.0.0; this refuses every client
        # that is not on loopback (HTTP 403), and the tests only ever talk to 127.0.0.1
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpDescribeErrors": True,
        "HttpThreadsCount": 4,
        "DicomServerEnabled": False,       # no DIMSE listener (Orthanc >= 1.6); the port below is free anyway
        "DicomPort": dicom_port,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
        "StableAge": 1,
        "Plugins": [plugin, *extra_plugins],
        "DicomWeb": {"Enable": True, "Root": DICOMWEB_ROOT, "EnableWado": False},
    }


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback URL we built)
        return response.read()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class _ExitedEarly(RuntimeError):
    """Orthanc stopped before answering (a port taken meanwhile, a bad plugin, a locked index)."""


def _start(root: Path, exe: str, plugin: str, timeout: float,
           extra_plugins: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str, Path]:
    """Start one Orthanc; raise RuntimeError (log tail included) when it exits or does not answer."""
    port = _free_port()
    config = orthanc_config(root, plugin, port, _free_port(), extra_plugins)
    config_path = root / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = root / "orthanc.log"
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "--no-jobs", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=root)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise _ExitedEarly(f"Orthanc ({exe}) exited with status {proc.returncode} before answering on "
                                   f"{base}; last lines of {log_path}:\n{_tail(log_path)}")
            try:
                system = json.loads(_get(f"{base}/system"))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc ({exe}) did not answer GET {base}/system within {timeout:.0f} s; "
                                       f"last lines of {log_path}:\n{_tail(log_path)}") from None
                time.sleep(0.1)
        plugins = json.loads(_get(f"{base}/plugins"))
        if "dicom-web" not in plugins:
            raise RuntimeError(f"Orthanc {system.get('Version')} started without the DICOMweb plugin ({plugin}); "
                               f"loaded plugins: {plugins}; last lines of {log_path}:\n{_tail(log_path)}")
    except BaseException:
        _stop(proc)
        raise
    return proc, base, log_path


@contextlib.contextmanager
def running_orthanc(tmp_path: str | os.PathLike, *, timeout: float = 30.0, attempts: int = 3,
                    extra_plugins: tuple[str, ...] = ()) -> Iterator[str]:
    """Run a private Orthanc with the DICOMweb plugin for the duration of the ``with`` block.

    Args:
        tmp_path: an empty folder for the configuration, the log, the storage and the index.
        timeout: seconds to wait for ``GET /system`` to answer.
        attempts: starts to try when Orthanc exits early (e.g. another process took the free port
            between choosing it and Orthanc binding it).
        extra_plugins: more plugin files to load (the caller checks that they exist).

    Yields:
        The base URL, e.g. ``http://127.0.0.1:40123``; DICOMweb lives under ``base + "/dicom-web"``.

    Skips the calling test (``pytest.skip``) when the executable or the plugin is missing; raises
    ``RuntimeError`` with the tail of Orthanc's log when it does not start.
    """
    exe, plugin = find_orthanc()
    missing = [name for name, found in (("the Orthanc executable", exe), ("the Orthanc DICOMweb plugin", plugin))
               if found is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found; {INSTALL_HINT}")
    root = Path(tmp_path)
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            proc, base, _ = _start(root, exe, plugin, timeout, tuple(extra_plugins))
            break
        except _ExitedEarly:
            if attempt == attempts - 1:
                raise
    try:
        yield base
    finally:
        _stop(proc)

"""Real viewers for the tests: OHIF's built viewer served on loopback against a private Orthanc, driven by Debian's
Chromium through playwright-core. Not a test file.

Components (``bash scripts/setup.sh`` installs them; a test that lacks one is skipped and told which):

* Orthanc with its DICOMweb and Web Viewer plugins (Debian ``orthanc``, ``orthanc-dicomweb``, ``orthanc-webviewer``),
  run by :func:`orthanc.running_orthanc`;
* OHIF's built viewer: the ``dist/`` folder of the npm package ``@ohif/app`` in ``<viewers>/ohif/dist``;
* ``playwright-core`` from npm in ``<viewers>/node/node_modules`` (it downloads no browser), run by Node.js;
* Debian's ``chromium`` (``/usr/bin/chromium``).

``<viewers>`` is ``$ADVSEG_VIEWERS`` or ``~/.cache/advseg-viewers``. Nothing here downloads anything: the browser's
own network services are switched off and every server listens on 127.0.0.1.

:func:`serving_ohif` serves ``dist/`` on a free loopback port with a configuration of its own (one DICOMweb data
source, no confirmation prompts, so a SEG opened in a viewport is drawn at once) and forwards ``/dicom-web/`` to
Orthanc, so that the browser sees one origin. :func:`screenshots` runs ``tests/viewer_shots.cjs``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["viewer_components", "serving_ohif", "screenshots", "WEBVIEWER_PLUGIN", "CHROMIUM"]

CHROMIUM = os.environ.get("ADVSEG_CHROMIUM", "/usr/bin/chromium")
WEBVIEWER_PLUGIN = os.environ.get("ORTHANC_WEBVIEWER_PLUGIN", "/usr/share/orthanc/plugins/libOrthancWebViewer.so")
SHOTS_SCRIPT = Path(__file__).with_name("viewer_shots.cjs")
INSTALL_HINT = "install them with `bash scripts/setup.sh`"
# OHIF 3.13 shows its onboarding tour ("Scrolling Through Images", 1/11) over a dimmed page until localStorage lists it
_NO_TOURS = {"shownTours": json.dumps(["basicViewerTour"])}

# the OHIF configuration served as /app-config.js: Orthanc's DICOMweb through this server, no prompts
_OHIF_CONFIG = {
    "routerBasename": "/",
    "extensions": [],
    "modes": [],
    "showStudyList": True,
    "maxNumberOfWebWorkers": 2,
    "showWarningMessageForCrossOrigin": False,
    "showCPUFallbackMessage": False,
    "showLoadingIndicator": True,
    "disableConfirmationPrompts": True,   # a SEG put in a viewport is loaded and drawn without asking
    "investigationalUseDialog": {"option": "never"},
    "defaultDataSourceName": "orthanc",
    "dataSources": [{
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "orthanc",
        "configuration": {
            "friendlyName": "Orthanc (tests)", "name": "orthanc",
            "wadoUriRoot": "/dicom-web", "qidoRoot": "/dicom-web", "wadoRoot": "/dicom-web",
            "qidoSupportsIncludeField": False, "imageRendering": "wadors", "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True, "supportsFuzzyMatching": False, "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True, "bulkDataURI": {"enabled": True},
        },
    }],
}


def viewers_root() -> Path:
    return Path(os.environ.get("ADVSEG_VIEWERS", Path.home() / ".cache" / "advseg-viewers"))


def viewer_components() -> tuple[dict[str, str], list[str]]:
    """``(found, missing)``: paths of the components found by name, and a description of each one missing."""
    root = viewers_root()
    wanted = {
        "ohif": (root / "ohif" / "dist" / "index.html", "OHIF's built viewer (npm @ohif/app) in " + str(root / "ohif")),
        "playwright": (root / "node" / "node_modules" / "playwright-core" / "package.json",
                       "playwright-core (npm) in " + str(root / "node")),
        "chromium": (Path(CHROMIUM), f"chromium at {CHROMIUM} (Debian package chromium)"),
        "webviewer": (Path(WEBVIEWER_PLUGIN), f"Orthanc's Web Viewer plugin {WEBVIEWER_PLUGIN} (Debian orthanc-webviewer)"),
    }
    found, missing = {}, []
    for name, (path, what) in wanted.items():
        if path.is_file():
            found[name] = str(path)
        else:
            missing.append(what)
    node = shutil.which("node")
    if node is None:
        missing.append("Node.js (`node` on PATH)")
    else:
        found["node"] = node
    return found, missing


class _OhifHandler(SimpleHTTPRequestHandler):
    """Static files of OHIF's ``dist/``; its single-page routes get ``index.html``; ``/dicom-web/`` goes to Orthanc."""

    orthanc = ""  # set per server (see serving_ohif)
    config_js = b""

    def log_message(self, *args) -> None:  # quiet: the tests read the screenshots, not the access log
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path.startswith("/dicom-web/"):
            return self._forward()
        if path == "/app-config.js":
            return self._reply(200, "application/javascript", self.config_js)
        if path != "/" and Path(self.translate_path(path)).is_file():
            return super().do_GET()
        self.path = "/index.html"  # a route of the single-page app (/viewer, /segmentation, ...)
        return super().do_GET()

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
        request = urllib.request.Request(self.orthanc + self.path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback URL we built)
                body, status = response.read(), response.status
                content_type = response.headers.get("Content-Type", "application/octet-stream")
        except urllib.error.HTTPError as e:
            body, status, content_type = e.read(), e.code, e.headers.get("Content-Type", "text/plain")
        self._reply(status, content_type, body)


@contextlib.contextmanager
def serving_ohif(dist: str | os.PathLike, orthanc_base: str) -> Iterator[str]:
    """Serve OHIF's ``dist`` on ``http://127.0.0.1:<free port>`` (a thread of this process) for the ``with`` block."""
    config = dict(_OHIF_CONFIG)
    handler = type("Handler", (_OhifHandler,), {
        "orthanc": orthanc_base.rstrip("/"),
        "config_js": f"window.config = {json.dumps(config, indent=1)};\n".encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(dist)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def screenshots(jobs: list[dict], work: Path, components: dict[str, str], timeout: float = 420.0) -> list[dict]:
    """Open each job's ``url`` in headless Chromium and save a PNG to its ``out``; return the per-job reports.

    A job: ``{"url", "out", "wait_for" (CSS selector), "settle_ms", "clip" (CSS selector of the element to shoot,
    optional), "click" (CSS selector to click first, optional), "reveal" (CSS selector to click after the
    screenshot, optional), "reveal_out" (a PNG of the whole page after that click, optional), "texts" (CSS
    selectors, optional)}``. A report adds ``"error"`` (or None), ``"texts"`` (per selector of ``texts``, the visible
    text of each element it matches, read from the DOM after ``reveal``) and ``"console"`` (the page's console
    errors). The browser gets a fresh profile in ``work``, its network services are off (no updates, no sync, no
    QUIC), and OHIF's onboarding tour counts as shown (it dims the page until dismissed).
    """
    work.mkdir(parents=True, exist_ok=True)
    spec = {"chromium": components["chromium"], "profile": str(work / "chromium-profile"), "jobs": jobs,
            "local_storage": _NO_TOURS}
    (work / "jobs.json").write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, NODE_PATH=str(Path(components["playwright"]).parents[1]))
    run = subprocess.run([components["node"], str(SHOTS_SCRIPT), str(work / "jobs.json"), str(work / "report.json")],
                         capture_output=True, text=True, timeout=timeout, env=env, cwd=work)
    if run.returncode != 0:
        raise RuntimeError(f"{SHOTS_SCRIPT.name} exited with status {run.returncode}:\n{run.stdout[-3000:]}\n"
                           f"{run.stderr[-3000:]}")
    return json.loads((work / "report.json").read_text())

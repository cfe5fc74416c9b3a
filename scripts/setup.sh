#!/usr/bin/env bash
# Set up this bundle on a fresh Debian/Ubuntu machine with Python 3.11 (no GPU needed).
# - dicom3tools (dciodvfy, the DICOM validator the tests run) from Debian packages;
# - orthanc + orthanc-dicomweb (the PACS the tests store to, run privately by tests/orthanc.py) from Debian packages;
# - torch: the CPU build 2.13.0 unless a torch is already installed (GPU users install their CUDA build first);
# - this package in editable mode with its test extra, at the versions of constraints.txt (see below).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
{ command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ]; } || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
# Versions: constraints.txt pins every package to the set the test suite passed with. To test the newest releases
# that pyproject.toml's ranges allow instead (upgrading what is installed): ADVSEG_UNPINNED=1 bash scripts/setup.sh
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    if [ -n "${ADVSEG_UNPINNED:-}" ]; then
        "$PY" -m pip install -q "torch==2.13.0"
    else
        "$PY" -m pip install -q -c constraints.txt "torch==2.13.0"
    fi
fi
torch_version="$("$PY" -c "import torch; print(torch.__version__)")"
kept="$(mktemp)"
trap 'rm -f "$kept"' EXIT
if [ -n "${ADVSEG_UNPINNED:-}" ]; then
    echo "torch==$torch_version" > "$kept"  # the installed torch stays, everything else is upgraded
    "$PY" -m pip install -q -U --upgrade-strategy eager -c "$kept" -e ".[test]"
elif [ "${torch_version%%+*}" = "$(sed -n 's/^torch==//p' constraints.txt)" ]; then
    "$PY" -m pip install -q -c constraints.txt -e ".[test]"
else  # a torch of another release (a GPU user's build) stays; it and what it requires are left to pip
    "$PY" scripts/constraints.py keep-torch > "$kept"
    "$PY" -m pip install -q -c "$kept" -e ".[test]"
fi

# --- Viewer test components (tests/test_viewers.py, tests/viewers.py) --------------------------------------------
# Debian's chromium and Orthanc's Web Viewer plugin (orthanc-webviewer); from npm, OHIF's built viewer (only the dist/
# folder of @ohif/app is unpacked) and playwright-core (which downloads no browser), both into $ADVSEG_VIEWERS
# (default ~/.cache/advseg-viewers). Whatever is present at these versions is kept. ADVSEG_NO_VIEWERS=1 skips this
# block (the viewer test then skips, naming what is missing).
OHIF_VERSION=3.13.2
PLAYWRIGHT_VERSION=1.65.1
if [ -z "${ADVSEG_NO_VIEWERS:-}" ]; then
    viewer_debs=()
    [ -x /usr/bin/chromium ] || viewer_debs+=(chromium)
    [ -e /usr/share/orthanc/plugins/libOrthancWebViewer.so ] || viewer_debs+=(orthanc-webviewer)
    command -v npm >/dev/null 2>&1 || viewer_debs+=(npm)
    if [ ${#viewer_debs[@]} -gt 0 ]; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${viewer_debs[@]}" >/dev/null
    fi
    viewers="${ADVSEG_VIEWERS:-$HOME/.cache/advseg-viewers}"
    npm_version() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1" 2>/dev/null | head -1; }
    if [ "$(npm_version "$viewers/ohif/package.json")" != "$OHIF_VERSION" ]; then
        unpack="$(mktemp -d)"
        (cd "$unpack" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
        mkdir -p "$unpack/ohif" "$viewers"
        tar xzf "$unpack"/ohif-app-*.tgz -C "$unpack/ohif" --strip-components=1 package/dist package/package.json
        rm -rf "$viewers/ohif" && mv "$unpack/ohif" "$viewers/ohif" && rm -rf "$unpack"
    fi
    if [ "$(npm_version "$viewers/node/node_modules/playwright-core/package.json")" != "$PLAYWRIGHT_VERSION" ]; then
        npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$viewers/node" \
            "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
    fi
fi

# --- A real skin photograph (scripts/real_dermoscopy.py, tests/test_real_dermoscopy.py) ---------------------------
# The wheel of PyPI's dermapred 0.0.3 (Apache-2.0) carries an iPhone close-up of hairy skin with naevi; only that
# JPEG is unpacked, into $ADVSEG_REAL_IMAGES (default ~/.cache/advseg-real); the package is not installed.
real_images="${ADVSEG_REAL_IMAGES:-$HOME/.cache/advseg-real}"
if [ ! -f "$real_images/dermapred-0.0.3-example_image.jpg" ]; then
    unpack="$(mktemp -d)"
    "$PY" -m pip download -q --no-deps --only-binary :all: -d "$unpack" "dermapred==0.0.3"
    mkdir -p "$real_images"
    "$PY" - "$unpack"/dermapred-0.0.3-*.whl "$real_images/dermapred-0.0.3-example_image.jpg" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("dermapred/examples/example_image.jpg") as src, \
        open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
    mv "$real_images/dermapred-0.0.3-example_image.jpg.part" "$real_images/dermapred-0.0.3-example_image.jpg"
    rm -rf "$unpack"
fi

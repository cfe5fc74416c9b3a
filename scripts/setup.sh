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

#!/usr/bin/env bash
# Set up this bundle on a fresh Debian/Ubuntu machine with Python 3.11 (no GPU needed).
# - dicom3tools (dciodvfy, the DICOM validator the tests run) from Debian packages;
# - orthanc + orthanc-dicomweb (the PACS the tests store to, run privately by tests/orthanc.py) from Debian packages;
# - torch: the CPU build 2.13.0 unless a torch is already installed (GPU users install their CUDA build first);
# - this package in editable mode with its test extra.
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
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[test]"

#!/usr/bin/env bash
# MONAI Label for apps/monailabel/, in a venv of its own: $ADVSEG_MONAILABEL, default ~/.cache/advseg-monailabel.
# Beside this bundle, monailabel 0.8.5 cannot run: it imports torchvision (transform/post.py), whose wheels on PyPI
# need a CUDA build of torch (the CPU torch 2.13.0 here has no libc10_cuda.so, and torchvision's CPU builds are not on
# PyPI), and pydicom-seg 0.4.1 pins numpy<2 and jsonschema<4. Here:
# - torch 2.14.1 with torchvision 0.29.1, PyPI's pair (the CUDA build, which runs on the CPU too; about 4 GB with
#   its nvidia-* wheels); then this bundle (editable) at constraints.txt's versions but torch's;
# - monailabel and pydicom-seg without their dependencies, then monailabel's own requirements but pydicom-seg (whose
#   pins its code does not need), numpymaxflow (a numpy 1 build, for the scribbles apps only) and sam2 (the SAM2 apps
#   only), at constraints.txt's versions where it has them;
# - pydicom3_bridge.pth: pydicom-seg imports pydicom._storage_sopclass_uids, which pydicom 3 (this bundle's, for
#   highdicom) folded into pydicom.uid; the .pth makes the old name an alias of pydicom.uid in this venv only.
# Rerunning keeps what is there. Then start the server (docs/monailabel.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ADVSEG_MONAILABEL:-$HOME/.cache/advseg-monailabel}"
MONAILABEL_VERSION=0.8.5
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
kept="$(mktemp)" requirements="$(mktemp)"
trap 'rm -f "$kept" "$requirements"' EXIT
"$PY" scripts/constraints.py keep-torch > "$kept"  # constraints.txt without torch and what it requires
"$PY" -m pip install -q -c "$kept" -e .
"$PY" -m pip install -q --no-deps "monailabel==$MONAILABEL_VERSION" "pydicom-seg==0.4.1"
"$PY" -c '
import re
from importlib.metadata import requires
print("\n".join(r for r in requires("monailabel") if re.split(r"[^A-Za-z0-9._-]", r)[0] not in ("pydicom-seg", "numpymaxflow", "sam2")))
print("SimpleITK\njsonschema")' > "$requirements"  # what pydicom-seg imports of its requirements
# pip then warns that pydicom-seg wants numpy<2 and jsonschema<4: expected, see above
"$PY" -m pip install -q -c "$kept" "torchvision==0.29.1" -r "$requirements"
cp apps/monailabel/pydicom3_bridge.pth "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
"$PY" -c "import monailabel, bundle, torch, numpy, pydicom_seg; print(f'MONAI Label {monailabel.__version__} in $VENV (torch {torch.__version__}, numpy {numpy.__version__})')"

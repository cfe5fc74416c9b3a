#!/usr/bin/env python
"""Convert the JSRT chest radiographs and SCR masks into DICOM DX + label maps + datalist (task ``cxr``)."""

from __future__ import annotations

import argparse
import sys

from bundle.data.jsrt import PAPER_VAL_FRACTION, convert_jsrt

LAYOUT = """\
expected input:
  IMAGES/JPCLN001.IMG ...      JSRT raw images: 2048x2048 big-endian 16-bit words, 12-bit values,
                               no header (exactly 8388608 bytes each); other files are ignored
  MASKS/right lung/JPCLN001.gif
  MASKS/left lung/JPCLN001.gif
  MASKS/heart/JPCLN001.gif     SCR masks (binary GIF, 1024x1024 or the image size), one per
  MASKS/right clavicle/...     structure and image; every image needs all five. Several MASKS
  MASKS/left clavicle/...      folders (e.g. the two SCR folds) are searched in order.

output:
  OUTPUT/images/<case>.dcm     DICOM DX, MONOCHROME2 = 4095 - raw (JSRT raw values are film-like,
                               higher = darker), pixel spacing 0.175 mm
  OUTPUT/labels/<case>.png     2048x2048 label map: 0 background, 1 right lung, 2 left lung,
                               3 heart, 4 right clavicle, 5 left clavicle (clavicle > heart > lung)
  OUTPUT/datalist.json         training, validation, test, training_surrogate, validation_surrogate

example:
  python scripts/convert_jsrt.py --images JSRT/All247images --masks SCR/masks --output data/cxr_jsrt
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", required=True, help="folder with the JSRT *.IMG files")
    parser.add_argument("--masks", required=True, nargs="+", help="folder(s) holding the five SCR structure folders")
    parser.add_argument("--output", required=True, help="dataset folder to write (created if needed)")
    parser.add_argument("--test-fraction", type=float, default=0.5, help="fraction of cases in the test split (default 0.5)")
    parser.add_argument(
        "--val-fraction", type=float, default=PAPER_VAL_FRACTION,
        help="validation fraction of the remaining pool, per network (default 23/123 as in Bortsova et al.)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split permutation (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    try:
        path = convert_jsrt(
            args.images, args.masks, args.output, test_fraction=args.test_fraction, val_fraction=args.val_fraction,
            seed=args.seed, overwrite=args.overwrite, progress=True,
        )
    except (OSError, ValueError) as err:
        print(f"convert_jsrt: error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

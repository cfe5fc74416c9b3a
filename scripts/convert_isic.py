#!/usr/bin/env python
"""Convert ISIC 2018 Task 1 images and ground-truth masks into label maps + datalist (task ``dermoscopy``)."""

from __future__ import annotations

import argparse
import sys

from bundle.data._convert import add_photo_split_arguments
from bundle.data.isic import convert_isic

LAYOUT = """\
expected input:
  IMAGES/ISIC_0000000.jpg ...               e.g. ISIC2018_Task1-2_Training_Input; only files named
                                            ISIC_<digits>.jpg|jpeg|png are read, others ignored
  MASKS/ISIC_0000000_segmentation.png ...   e.g. ISIC2018_Task1_Training_GroundTruth; gray PNG of the
                                            image's size, 0 background, 255 lesion

output:
  OUTPUT/images/ISIC_0000000.jpg   the input image, copied unchanged (or hard-linked with --link hardlink)
  OUTPUT/labels/ISIC_0000000.png   0 background, 1 lesion
  OUTPUT/datalist.json             seeded training / validation / test splits

example:
  python scripts/convert_isic.py --images ISIC2018_Task1-2_Training_Input \\
      --masks ISIC2018_Task1_Training_GroundTruth --output data/dermoscopy_isic
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", required=True, help="folder with the ISIC_*.jpg images")
    parser.add_argument("--masks", required=True, help="folder with the ISIC_*_segmentation.png masks")
    parser.add_argument("--output", required=True, help="dataset folder to write (created if needed)")
    add_photo_split_arguments(parser)
    args = parser.parse_args(argv)
    try:
        path = convert_isic(
            args.images, args.masks, args.output, fractions=args.fractions, seed=args.seed, link=args.link,
            overwrite=args.overwrite, progress=True,
        )
    except (OSError, ValueError) as err:
        print(f"convert_isic: error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Convert a folder of fundus photographs with optic disc/cup masks into label maps + datalist (task ``fundus``)."""

from __future__ import annotations

import argparse
import sys

from bundle.data._convert import add_photo_split_arguments
from bundle.data.fundus_folder import convert_fundus_folder

LAYOUT = """\
expected input, --style separate (RIM-ONE: one binary disc and one binary cup mask per image):
  IMAGES/**/N-10-R.jpg                    images matching --image-glob (default *.jpg), any depth
  DISC_MASKS/**/N-10-R-Disc-Avg.png       --disc-pattern (default {stem}-Disc-Avg.png), 0/255 or 0/1
  CUP_MASKS/**/N-10-R-Cup-Avg.png         --cup-pattern (default {stem}-Cup-Avg.png); the cup must lie
                                          inside the disc (--min-cup-in-disc, default 0.99)

expected input, --style refuge (REFUGE: one mask per image, 0 cup, 128 disc rim, 255 background):
  IMAGES/**/g0001.jpg
  MASKS/**/g0001.bmp                      --mask-pattern (default {stem}.bmp)

Mask folders default to IMAGES and are searched recursively; {stem} is the image name without
extension; names are matched case-insensitively; masks must have the size of their image.

output:
  OUTPUT/images/<stem>.<ext>   the input image, copied unchanged (or hard-linked with --link hardlink)
  OUTPUT/labels/<stem>.png     0 background, 1 optic disc rim, 2 optic cup
  OUTPUT/datalist.json         seeded training / validation / test splits

examples:
  python scripts/convert_fundus.py --images RIM-ONE --output data/fundus_rimone
  python scripts/convert_fundus.py --style refuge --images REFUGE/Training400 \\
      --masks REFUGE/Annotation-Training400/Disc_Cup_Masks --output data/fundus_refuge
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--style", choices=("separate", "refuge"), default="separate", help="mask style (default separate)")
    parser.add_argument("--images", required=True, help="folder with the fundus photographs (searched recursively)")
    parser.add_argument("--output", required=True, help="dataset folder to write (created if needed)")
    parser.add_argument("--disc-masks", help="folder with the disc masks (separate style; default: --images)")
    parser.add_argument("--cup-masks", help="folder with the cup masks (separate style; default: --images)")
    parser.add_argument("--masks", help="folder with the REFUGE-style masks (refuge style; default: --images)")
    parser.add_argument("--image-glob", default="*.jpg", help="file-name pattern of the images (default *.jpg)")
    parser.add_argument("--disc-pattern", default="{stem}-Disc-Avg.png", help="disc mask name (default {stem}-Disc-Avg.png)")
    parser.add_argument("--cup-pattern", default="{stem}-Cup-Avg.png", help="cup mask name (default {stem}-Cup-Avg.png)")
    parser.add_argument("--mask-pattern", default="{stem}.bmp", help="REFUGE mask name (default {stem}.bmp)")
    parser.add_argument("--min-cup-in-disc", type=float, default=0.99,
                        help="least fraction of cup pixels inside the disc (separate style; default 0.99)")
    add_photo_split_arguments(parser)
    args = parser.parse_args(argv)
    try:
        path = convert_fundus_folder(
            args.images, args.output, style=args.style, disc_dir=args.disc_masks, cup_dir=args.cup_masks,
            mask_dir=args.masks, image_glob=args.image_glob, disc_pattern=args.disc_pattern,
            cup_pattern=args.cup_pattern, mask_pattern=args.mask_pattern, min_cup_in_disc=args.min_cup_in_disc,
            fractions=args.fractions, seed=args.seed, link=args.link, overwrite=args.overwrite, progress=True,
        )
    except (OSError, ValueError) as err:
        print(f"convert_fundus: error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

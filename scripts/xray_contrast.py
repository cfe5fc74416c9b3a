"""The heart - lung intensity step of one chest radiograph without masks, from boxes you place on it.

    python scripts/xray_contrast.py RADIOGRAPH.dcm --lung 0.18 0.21 0.33 0.37 --lung 0.59 0.18 0.74 0.33 \\
        --heart 0.55 0.59 0.68 0.70 [--figure boxes.png]

An eps in model units is a fraction of the image range, so what it can do depends on the anatomy's contrast
(docs/attacks.md, "Is it the image contrast?"). ``scripts/attack_sweep.py`` prints that step for a labelled
dataset; this script measures it on a single unlabelled DICOM radiograph. Boxes are ``X0 Y0 X1 Y1`` as fractions
of the image's width and height (0 = left / top); each ``--lung`` box is lung field, the ``--heart`` box lies
inside the cardiac silhouette. The file is loaded by the cxr task's own preprocessing (modality LUT, the file's
VOI window, MONOCHROME1 inverted, resized to ``--model_grid``, mapped to [-1, 1]) and the step is printed both for
that loading and for the image rescaled by its own minimum and maximum. ``--figure`` writes the boxes on the image.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from bundle.config import bundle_config, check_model_grid
from bundle.metrics import heart_lung_contrast

LUNG, HEART = 1, 3  # cxr class values


def check_box(box: Sequence[float], option: str) -> tuple[float, ...]:
    """``box`` as ``(x0, y0, x1, y1)`` fractions with ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(f"Option {option} {' '.join(f'{v:g}' for v in box)} is not a box: give X0 Y0 X1 Y1 as "
                         f"fractions of the width and height with 0 <= X0 < X1 <= 1 and 0 <= Y0 < Y1 <= 1.")
    return tuple(box)


def box_label(shape: tuple[int, int], lungs: Sequence[Sequence[float]], heart: Sequence[float]) -> torch.Tensor:
    """``(1, 1, H, W)`` label map with the lung boxes as 1 and the heart box as 3 (heart drawn last)."""
    label = torch.zeros(1, 1, *shape, dtype=torch.long)
    for value, box in [*((LUNG, b) for b in lungs), (HEART, heart)]:
        x0, y0, x1, y1 = box
        rows = slice(int(y0 * shape[0]), max(int(y0 * shape[0]) + 1, round(y1 * shape[0])))
        cols = slice(int(x0 * shape[1]), max(int(x0 * shape[1]) + 1, round(x1 * shape[1])))
        label[0, 0, rows, cols] = value
    return label


def load_model_image(path: Path, model_grid: Sequence[int]) -> torch.Tensor:
    """The radiograph as the cxr task feeds it to its model: ``(1, 1, H, W)`` in [-1, 1]."""
    data = {"image": str(path)}
    for transform in bundle_config("cxr", model_grid=list(model_grid)).get_parsed_content("load_transforms"):
        data = transform(data)  # one by one, not through Compose, which would hide a bad file's own message
    return torch.as_tensor(data["image"])[None].float()


def save_figure(path: Path, image: torch.Tensor, lungs: Sequence[Sequence[float]], heart: Sequence[float]) -> None:
    """The model-domain image ``(1, 1, H, W)`` in [-1, 1] as a PNG with the lung boxes blue and the heart box red."""
    gray = ((image[0, 0].numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    figure = Image.fromarray(gray).convert("RGB")
    draw = ImageDraw.Draw(figure)
    height, width = gray.shape
    for colour, (x0, y0, x1, y1) in [*(((60, 120, 255), b) for b in lungs), ((255, 40, 40), heart)]:
        draw.rectangle([x0 * width, y0 * height, x1 * width - 1, y1 * height - 1], outline=colour, width=2)
    figure.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("radiograph", type=Path, help="a single-frame grayscale DICOM chest radiograph (PA or AP)")
    parser.add_argument("--lung", nargs=4, type=float, action="append", required=True, metavar=("X0", "Y0", "X1", "Y1"),
                        help="a box inside a lung field, as fractions of width and height (repeat for each lung)")
    parser.add_argument("--heart", nargs=4, type=float, required=True, metavar=("X0", "Y0", "X1", "Y1"),
                        help="a box inside the cardiac silhouette, as fractions of width and height")
    parser.add_argument("--model_grid", nargs=2, type=int, default=[256, 256], metavar=("H", "W"),
                        help="the grid the radiograph is resized to, as the cxr task's model_grid (default 256 256)")
    parser.add_argument("--figure", type=Path, help="write the image with the boxes drawn on it to this PNG")
    args = parser.parse_args(argv)
    if args.figure is not None and not args.figure.parent.is_dir():
        parser.error(f"--figure {args.figure}: folder {args.figure.parent} does not exist; create it or pick another path.")
    try:
        lungs = [check_box(box, "--lung") for box in args.lung]
        heart = check_box(args.heart, "--heart")
        image = load_model_image(args.radiograph, check_model_grid(args.model_grid))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    label = box_label(tuple(image.shape[-2:]), lungs, heart)
    rescaled = 2 * (image - image.min()) / (image.max() - image.min()) - 1
    for name, img in [("as the cxr task loads it (file's VOI window)", image), ("rescaled by its own min / max", rescaled)]:
        heart_median, lung_median = img[label == HEART].median(), img[label == LUNG].median()
        print(f"{name}: heart {heart_median:.3f}, lungs {lung_median:.3f}, heart - lung contrast "
              f"{heart_lung_contrast(img, label).item():.3f} model units of [-1, 1]")
    if args.figure is not None:
        save_figure(args.figure, image, lungs, heart)
        print(f"Wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ISIC 2018 Task 1 (skin lesion boundary segmentation) folders -> label maps and a datalist.

Input layout (as distributed by the ISIC 2018 challenge):

- ``ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg`` ... (other files there, such as ``LICENSE.txt`` or
  ``ATTRIBUTION.txt``, are ignored; only names ``ISIC_<digits>.jpg|jpeg|png`` are images);
- ``ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png``: a gray PNG of the image's size,
  0 background, 255 lesion.

Output (``output_dir``): ``images/ISIC_0000000.jpg``, the input file copied byte for byte (or hard-linked,
``link="hardlink"``) because datalist paths are relative to ``output_dir``; ``labels/ISIC_0000000.png``,
0 background / 1 lesion (the ``dermoscopy`` task's values); ``datalist.json`` with seeded
``training`` / ``validation`` / ``test`` splits. The input folders are only read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.utils import look_up_option
from tqdm import tqdm

from bundle.data._convert import (
    CopyMode,
    OutputLog,
    check_fractions,
    check_outputs_free,
    image_size,
    load_binary_mask,
    place_image,
    write_label_png,
)
from bundle.data.datalist import DATALIST_NAME, split_indices, write_datalist

__all__ = ["ISIC_IMAGE_PATTERN", "find_isic_cases", "isic_label", "convert_isic"]

ISIC_IMAGE_PATTERN = re.compile(r"^(ISIC_\d+)\.(jpe?g|png)$", re.IGNORECASE)
SPLITS = ("training", "validation", "test")


def find_isic_cases(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """``(case, image, mask)`` for every ``ISIC_<id>`` image, sorted by case; checks presence, sizes, decoding.

    Raises:
        FileNotFoundError: a folder, or the ``<case>_segmentation.png`` of an image, is missing.
        ValueError: no ISIC images, an image that does not decode in full (truncated, corrupt), or a mask whose
            size differs from its image (both files and sizes named).
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"Input folder {folder} does not exist.")
    images = {}
    for path in sorted(images_dir.iterdir()):
        match = ISIC_IMAGE_PATTERN.match(path.name)
        if match and path.is_file():
            case = match.group(1)
            if case in images:
                raise ValueError(f"Two images for {case} in {images_dir}: {images[case].name} and {path.name}.")
            images[case] = path
    if not images:
        raise ValueError(f"No ISIC images (ISIC_<digits>.jpg) in {images_dir}.")
    cases = []
    for case, image in images.items():
        mask = masks_dir / f"{case}_segmentation.png"
        if not mask.is_file():
            raise FileNotFoundError(f"Missing ground-truth mask for {image}: {mask} does not exist.")
        image_wh, mask_wh = image_size(image, decode=True), image_size(mask)
        if image_wh != mask_wh:
            raise ValueError(
                f"Mask {mask} is {mask_wh[0]}x{mask_wh[1]} but its image {image} is {image_wh[0]}x{image_wh[1]} (width x height)."
            )
        cases.append((case, image, mask))
    return cases


def isic_label(mask_path: str | os.PathLike) -> np.ndarray:
    """An ISIC ground-truth PNG (0/255) as a ``uint8`` label map with 0 background, 1 lesion.

    Raises:
        ValueError: the mask holds values other than 0 and 255 (or 0 and 1).
    """
    return load_binary_mask(Path(mask_path)).astype(np.uint8)


def convert_isic(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    link: CopyMode | str = CopyMode.COPY,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Convert an ISIC 2018 Task 1 image folder and ground-truth folder into ``output_dir``.

    Args:
        images_dir: e.g. ``ISIC2018_Task1-2_Training_Input``.
        masks_dir: e.g. ``ISIC2018_Task1_Training_GroundTruth``.
        output_dir: created if needed; existing outputs are only replaced with ``overwrite=True``.
        fractions: (training, validation, test) fractions of the cases, summing to 1; cut from a
            permutation seeded with ``seed`` (:func:`bundle.data.datalist.split_indices`).
        link: ``"copy"`` (default) or ``"hardlink"`` (no extra disk, same file system only).
        progress: show a tqdm progress bar over the cases.

    Returns:
        The path of the written ``datalist.json``.

    Raises:
        FileNotFoundError, ValueError: see :func:`find_isic_cases` and :func:`isic_label`.
        FileExistsError: outputs exist and ``overwrite`` is false.

    Presence, sizes and that every image decodes in full are checked before anything is written; mask values
    are checked while writing, and a failure then deletes every file the run wrote.
    """
    fractions = check_fractions(fractions, SPLITS)
    link = look_up_option(link, CopyMode)
    cases = find_isic_cases(images_dir, masks_dir)
    output_dir = Path(output_dir)
    outputs = [
        (output_dir / "images" / f"{case}{image.suffix.lower()}", output_dir / "labels" / f"{case}.png")
        for case, image, _ in cases
    ]
    check_outputs_free([p for pair in outputs for p in pair] + [output_dir / DATALIST_NAME], overwrite)
    parts = split_indices(len(cases), fractions, seed)

    items = []
    with OutputLog() as log:
        for (case, image, mask), (image_out, label_out) in tqdm(
            list(zip(cases, outputs)), desc="ISIC", unit="image", disable=not progress
        ):
            write_label_png(log.add(label_out), isic_label(mask))
            place_image(image, log.add(image_out), link)
            items.append({"image": str(image_out), "label": str(label_out)})
        return write_datalist(output_dir, {k: [items[i] for i in idx] for k, idx in zip(SPLITS, parts)})

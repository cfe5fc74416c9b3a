"""Folders of fundus photographs with optic disc / cup masks -> label maps and a datalist.

Two mask styles are read:

- ``"separate"`` (RIM-ONE style): one binary disc mask and one binary cup mask per image (0/255 or 0/1),
  found by name patterns such as RIM-ONE r3's ``{stem}-Disc-Avg.png`` / ``{stem}-Cup-Avg.png``. The cup
  must lie inside the disc: at least ``min_cup_in_disc`` of its pixels (default 99 %, which tolerates
  a boundary pixel of independently drawn outlines); cup pixels outside the disc are labelled cup.
- ``"refuge"`` (REFUGE challenge): one gray mask of the image's size with 0 = optic cup, 128 = optic disc
  (rim), 255 = everything else (refuge.grand-challenge.org/Details; BMP files named like the image).

Label values (the ``fundus`` task of the bundle): 0 background, 1 optic disc rim, 2 optic cup.

Image and mask folders are searched recursively (REFUGE keeps ``Glaucoma/`` and ``Non-Glaucoma/``
sub-folders; RIM-ONE r3 ``Healthy/`` and ``Glaucoma and suspects/``); names are matched case-insensitively
and must be unique. Output (``output_dir``): ``images/<stem><ext>`` (the input file copied byte for byte,
or hard-linked), ``labels/<stem>.png``, ``datalist.json`` with seeded training / validation / test
splits. The inputs are only read.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import numpy as np
from monai.utils import look_up_option
from tqdm import tqdm

from bundle._files import safe_name
from bundle.data._convert import (
    CopyMode,
    OutputLog,
    check_fractions,
    check_outputs_free,
    image_size,
    load_binary_mask,
    load_gray,
    place_image,
    write_label_png,
)
from bundle.data.datalist import DATALIST_NAME, split_indices, write_datalist

__all__ = [
    "MaskStyle",
    "REFUGE_VALUES",
    "fundus_label_from_masks",
    "fundus_label_from_refuge",
    "find_fundus_cases",
    "convert_fundus_folder",
]

SPLITS = ("training", "validation", "test")
REFUGE_VALUES = {"cup": 0, "disc": 128, "background": 255}
BACKGROUND, RIM, CUP = 0, 1, 2
MASK_NAMES = {"disc": "disc mask", "cup": "cup mask", "mask": "disc/cup mask"}


class MaskStyle(str, Enum):
    SEPARATE = "separate"  # RIM-ONE: binary disc mask + binary cup mask
    REFUGE = "refuge"  # one mask: 0 cup, 128 disc rim, 255 background


def fundus_label_from_masks(
    disc: np.ndarray, cup: np.ndarray, *, min_cup_in_disc: float = 0.99, name: str = "cup mask"
) -> np.ndarray:
    """Label map (0 background, 1 rim, 2 cup) from boolean disc and cup masks of one shape.

    Raises:
        ValueError: fewer than ``min_cup_in_disc`` of the cup pixels lie inside the disc (the message gives
            the fraction), or the shapes differ.
    """
    if disc.shape != cup.shape:
        raise ValueError(f"Disc mask shape {disc.shape} differs from cup mask shape {cup.shape} for {name}.")
    n_cup = int(cup.sum())
    inside = float((cup & disc).sum()) / n_cup if n_cup else 1.0
    if inside < min_cup_in_disc:
        raise ValueError(
            f"Cup not inside disc for {name}: only {inside:.1%} of its {n_cup} pixels lie inside the disc "
            f"(need at least {min_cup_in_disc:.1%})."
        )
    label = np.zeros(disc.shape, dtype=np.uint8)
    label[disc] = RIM
    label[cup] = CUP
    return label


def fundus_label_from_refuge(mask: np.ndarray, *, name: str = "mask") -> np.ndarray:
    """Label map (0 background, 1 rim, 2 cup) from a REFUGE mask (0 cup, 128 disc rim, 255 background).

    Raises:
        ValueError: the mask holds other values (listed in the message).
    """
    values = set(np.unique(mask).tolist())
    if not values <= set(REFUGE_VALUES.values()):
        extra = sorted(values - set(REFUGE_VALUES.values()))
        raise ValueError(
            f"REFUGE mask {name} has values {extra[:10]}{' ...' if len(extra) > 10 else ''} besides "
            "0 (cup), 128 (disc) and 255 (background)."
        )
    label = np.zeros(mask.shape, dtype=np.uint8)
    label[mask == REFUGE_VALUES["disc"]] = RIM
    label[mask == REFUGE_VALUES["cup"]] = CUP
    return label


def _index(folder: Path) -> dict[str, list[Path]]:
    """Lower-cased file name -> paths of every file under ``folder``."""
    index: dict[str, list[Path]] = {}
    for root, _, files in os.walk(folder):
        for name in files:
            index.setdefault(name.lower(), []).append(Path(root) / name)
    return index


def _lookup(index: dict[str, list[Path]], folder: Path, name: str, what: str, image: Path) -> Path:
    hits = index.get(name.lower(), [])
    if not hits:
        raise FileNotFoundError(f"Missing {what} for {image}: no file named {name} under {folder}.")
    if len(hits) > 1:
        raise ValueError(f"Ambiguous {what} for {image}: {', '.join(map(str, sorted(hits)))} all match {name}.")
    return hits[0]


def find_fundus_cases(
    images_dir: str | os.PathLike,
    *,
    style: MaskStyle | str = MaskStyle.SEPARATE,
    disc_dir: str | os.PathLike | None = None,
    cup_dir: str | os.PathLike | None = None,
    mask_dir: str | os.PathLike | None = None,
    image_glob: str = "*.jpg",
    disc_pattern: str = "{stem}-Disc-Avg.png",
    cup_pattern: str = "{stem}-Cup-Avg.png",
    mask_pattern: str = "{stem}.bmp",
) -> list[tuple[str, Path, dict[str, Path]]]:
    """``(stem, image, {"disc", "cup"} or {"mask"} -> path)`` for every image, sorted by stem.

    Images are the files under ``images_dir`` matching ``image_glob`` (case-insensitive), except files
    that match a mask pattern. Mask folders default to ``images_dir``; patterns use ``{stem}``, the image
    file name without extension. Sizes (from file headers) must agree.

    Raises:
        FileNotFoundError: a folder or a mask is missing (the message names what was looked for).
        ValueError: no images, duplicate image names, ambiguous masks, or a size mismatch (files and sizes named).
    """
    style = look_up_option(style, MaskStyle)
    images_dir = Path(images_dir)
    if style is MaskStyle.SEPARATE:
        roles = {"disc": (Path(disc_dir or images_dir), disc_pattern), "cup": (Path(cup_dir or images_dir), cup_pattern)}
    else:
        roles = {"mask": (Path(mask_dir or images_dir), mask_pattern)}
    for folder in [images_dir] + [folder for folder, _ in roles.values()]:
        if not folder.is_dir():
            raise FileNotFoundError(f"Input folder {folder} does not exist.")
    for role, (_, pattern) in roles.items():
        if "{stem}" not in pattern:
            raise ValueError(f"Argument {role}_pattern should contain '{{stem}}', got {pattern!r}.")
    mask_globs = [pattern.replace("{stem}", "*").lower() for _, pattern in roles.values()]

    images: dict[str, Path] = {}
    for root, _, files in os.walk(images_dir):
        for name in sorted(files):
            low = name.lower()
            if not fnmatch.fnmatch(low, image_glob.lower()) or any(fnmatch.fnmatch(low, g) for g in mask_globs):
                continue
            path = Path(root) / name
            stem = path.stem
            if stem in images:
                raise ValueError(f"Two images named {stem}: {images[stem]} and {path}; image names must be unique.")
            images[stem] = path
    if not images:
        raise ValueError(f"No images matching {image_glob!r} under {images_dir}.")

    indexes = {folder: _index(folder) for folder in {folder for folder, _ in roles.values()}}
    cases = []
    for stem in sorted(images):
        image = images[stem]
        masks = {
            role: _lookup(indexes[folder], folder, pattern.format(stem=stem), MASK_NAMES[role], image)
            for role, (folder, pattern) in roles.items()
        }
        image_wh = image_size(image, decode=True)
        for mask in masks.values():
            mask_wh = image_size(mask)
            if mask_wh != image_wh:
                hint = (
                    " (a side-by-side stereo pair? crop the left half first)" if image_wh == (2 * mask_wh[0], mask_wh[1]) else ""
                )
                raise ValueError(
                    f"Mask {mask} is {mask_wh[0]}x{mask_wh[1]} but its image {image} is "
                    f"{image_wh[0]}x{image_wh[1]} (width x height){hint}."
                )
        cases.append((stem, image, masks))
    return cases


def convert_fundus_folder(
    images_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    style: MaskStyle | str = MaskStyle.SEPARATE,
    disc_dir: str | os.PathLike | None = None,
    cup_dir: str | os.PathLike | None = None,
    mask_dir: str | os.PathLike | None = None,
    image_glob: str = "*.jpg",
    disc_pattern: str = "{stem}-Disc-Avg.png",
    cup_pattern: str = "{stem}-Cup-Avg.png",
    mask_pattern: str = "{stem}.bmp",
    min_cup_in_disc: float = 0.99,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    link: CopyMode | str = CopyMode.COPY,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Convert a fundus folder (RIM-ONE or REFUGE style masks) into ``output_dir``.

    Args:
        images_dir, style, disc_dir, cup_dir, mask_dir, image_glob, disc_pattern, cup_pattern, mask_pattern:
            where the images and masks are, see :func:`find_fundus_cases`.
        min_cup_in_disc: in [0, 1]; the least fraction of cup pixels inside the disc (``"separate"`` style).
        fractions: (training, validation, test), summing to 1, cut from a permutation seeded with ``seed``.
        link: ``"copy"`` (default) or ``"hardlink"`` the images into ``output_dir/images``.
        overwrite: replace existing outputs; otherwise they raise ``FileExistsError``.
        progress: show a tqdm progress bar over the cases.

    Returns:
        The path of the written ``datalist.json``.

    Presence, sizes and that every image decodes in full are checked before anything is written; mask values and the
    cup-in-disc fraction are checked while writing, and a failure then deletes every file the run wrote.
    """
    style = look_up_option(style, MaskStyle)
    link = look_up_option(link, CopyMode)
    fractions = check_fractions(fractions, SPLITS)
    if not 0.0 <= min_cup_in_disc <= 1.0:
        raise ValueError(f"Argument min_cup_in_disc should be a float in [0, 1], got {min_cup_in_disc}.")
    cases = find_fundus_cases(
        images_dir, style=style, disc_dir=disc_dir, cup_dir=cup_dir, mask_dir=mask_dir, image_glob=image_glob,
        disc_pattern=disc_pattern, cup_pattern=cup_pattern, mask_pattern=mask_pattern,
    )
    output_dir = Path(output_dir)
    outputs = [
        (output_dir / "images" / f"{safe_name(stem)}{image.suffix.lower()}", output_dir / "labels" / f"{safe_name(stem)}.png")
        for stem, image, _ in cases
    ]
    if len({label for _, label in outputs}) != len(outputs):
        raise ValueError(f"Image names under {images_dir} collide after sanitising; rename them to unique names.")
    check_outputs_free([p for pair in outputs for p in pair] + [output_dir / DATALIST_NAME], overwrite)
    parts = split_indices(len(cases), fractions, seed)

    items = []
    with OutputLog() as log:
        for (stem, image, masks), (image_out, label_out) in tqdm(
            list(zip(cases, outputs)), desc="fundus", unit="image", disable=not progress
        ):
            if style is MaskStyle.SEPARATE:
                label = fundus_label_from_masks(
                    load_binary_mask(masks["disc"]), load_binary_mask(masks["cup"]),
                    min_cup_in_disc=min_cup_in_disc, name=f"{masks['cup']} (disc {masks['disc']})",
                )
            else:
                label = fundus_label_from_refuge(load_gray(masks["mask"]), name=str(masks["mask"]))
            write_label_png(log.add(label_out), label)
            place_image(image, log.add(image_out), link)
            items.append({"image": str(image_out), "label": str(label_out)})
        return write_datalist(output_dir, {k: [items[i] for i in idx] for k, idx in zip(SPLITS, parts)})

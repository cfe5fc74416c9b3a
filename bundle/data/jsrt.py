"""JSRT chest radiographs (raw ``.IMG``) with SCR anatomy masks -> DICOM DX, label maps and a datalist.

Input facts this converter relies on:

- **JSRT** (db.jsrt.or.jp/eng.php; SCR data page www.isi.uu.nl/Research/Databases/SCR/data.php):
  247 PA chest films digitised to a 2048 x 2048 matrix, 0.175 mm pixels, 12-bit gray levels, stored as
  raw big-endian 16-bit words without header; so a valid file is exactly 2048 * 2048 * 2 bytes.
- **Polarity**: the raw values behave like film density, higher = darker (the lungs have high values).
  Public JSRT loaders display them inverted (``1 - v / 4096``). This converter therefore stores
  ``4095 - raw`` as MONOCHROME2, so the DICOM looks like a normal radiograph in any viewer and
  ``raw == 4095 - dicom_pixels`` exactly (:func:`jsrt_to_monochrome2`).
- **SCR** (van Ginneken et al., Med. Image Anal. 2006): one binary mask per structure and image, in the
  folders ``heart``, ``left clavicle``, ``left lung``, ``right clavicle``, ``right lung``, named like the
  image (``JPCLN001.gif``), at 1024 x 1024 (half the image resolution). "Right" is the patient's right,
  on the left of the image. The masks are upsampled to 2048 x 2048 by pixel replication (nearest
  neighbour with an integer factor), so the label map matches the DICOM pixel grid.

Label values (the ``cxr`` task of the bundle): 0 background, 1 right lung, 2 left lung, 3 heart,
4 right clavicle, 5 left clavicle, painted in that order, so clavicle wins over heart and heart over lung.

Splits follow Bortsova et al. 2021 ("Adversarial heart attack"): a test set, and a pool from which the
target network's ``training`` / ``validation`` and the surrogate network's ``training_surrogate`` /
``validation_surrogate`` are drawn (see :func:`jsrt_splits`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid
from tqdm import tqdm

from bundle._files import safe_name
from bundle.data._convert import OutputLog, check_outputs_free, image_size, load_binary_mask, write_label_png
from bundle.data.datalist import DATALIST_NAME, write_datalist

__all__ = [
    "JSRT_SHAPE",
    "JSRT_PIXEL_SPACING",
    "SCR_STRUCTURES",
    "PAPER_VAL_FRACTION",
    "read_jsrt_img",
    "jsrt_to_monochrome2",
    "find_scr_masks",
    "scr_label_map",
    "jsrt_splits",
    "convert_jsrt",
]

JSRT_SHAPE = (2048, 2048)
JSRT_BYTES = JSRT_SHAPE[0] * JSRT_SHAPE[1] * 2
JSRT_MAX = 4095  # 12-bit
JSRT_PIXEL_SPACING = (0.175, 0.175)  # mm, row and column
# SCR folder names in label order (label = position + 1); painting in this order makes clavicle > heart > lung
SCR_STRUCTURES = ("right lung", "left lung", "heart", "right clavicle", "left clavicle")
# Bortsova et al.: 100 training + 23 validation images per network, drawn from one pool of 123
PAPER_VAL_FRACTION = 23 / 123


def _check_file_size(path: Path) -> None:
    size = path.stat().st_size
    if size != JSRT_BYTES:
        raise ValueError(
            f"{path} has {size} bytes; a JSRT .IMG file holds {JSRT_SHAPE[0]}x{JSRT_SHAPE[1]} big-endian "
            f"16-bit words without header, {JSRT_BYTES} bytes."
        )


def read_jsrt_img(path: str | os.PathLike) -> np.ndarray:
    """Read a JSRT ``.IMG`` file: 2048 x 2048 big-endian 16-bit words holding 12-bit values, no header.

    Returns:
        ``uint16`` array of shape (2048, 2048), the raw values (higher = darker, see module docstring).

    Raises:
        ValueError: the file is not 2048 * 2048 * 2 bytes, or holds values above 4095 (not 12-bit,
            for example a little-endian copy).
    """
    path = Path(path)
    _check_file_size(path)
    raw = np.fromfile(path, dtype=">u2").reshape(JSRT_SHAPE)
    peak = int(raw.max())
    if peak > JSRT_MAX:
        raise ValueError(
            f"{path} has values up to {peak}; JSRT pixels are 12-bit (0..{JSRT_MAX}). "
            "Is it byte-swapped or not a JSRT image?"
        )
    return raw.astype(np.uint16)


def jsrt_to_monochrome2(raw: np.ndarray) -> np.ndarray:
    """Raw JSRT values (higher = darker) to MONOCHROME2 stored values (higher = brighter): ``4095 - raw``."""
    return (JSRT_MAX - raw.astype(np.int32)).astype(np.uint16)


def find_scr_masks(masks_dirs: Sequence[str | os.PathLike], case: str) -> dict[str, Path]:
    """The five SCR mask files of ``case``: ``<dir>/<structure>/<case>.gif`` in the first dir that has it.

    Raises:
        FileNotFoundError: naming the missing mask path (in the first folder searched).
    """
    dirs = [Path(d) for d in masks_dirs]
    found = {}
    for structure in SCR_STRUCTURES:
        candidates = [d / structure / f"{case}{ext}" for d in dirs for ext in (".gif", ".GIF")]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            others = f" (nor in {len(dirs) - 1} other mask folder(s))" if len(dirs) > 1 else ""
            raise FileNotFoundError(f"Missing SCR {structure} mask for {case}: {candidates[0]} does not exist{others}.")
        found[structure] = hit
    return found


def _upsampling_factor(case: str, mask_sizes: Mapping[Path, tuple[int, int]], shape: tuple[int, int]) -> int:
    """Integer factor from the masks' (common) size to the image ``shape`` (rows, cols); ``ValueError`` otherwise."""
    sizes = set(mask_sizes.values())
    if len(sizes) != 1:
        listed = ", ".join(f"{p} {w}x{h}" for p, (w, h) in mask_sizes.items())
        raise ValueError(f"SCR masks of {case} differ in size: {listed}.")
    (width, height), = sizes
    rows, cols = shape
    factor = rows // height if height else 0
    if factor < 1 or height * factor != rows or width * factor != cols:
        raise ValueError(
            f"Label map size {width}x{height} of {case} does not match its image size {cols}x{rows}: masks must "
            "have the image size or an integer fraction of it (same factor on both axes)."
        )
    return factor


def scr_label_map(mask_paths: Mapping[str, Path], shape: tuple[int, int] = JSRT_SHAPE, case: str = "") -> np.ndarray:
    """Paint the SCR masks into one label map of ``shape`` (rows, cols) at the image's resolution.

    Args:
        mask_paths: structure name (:data:`SCR_STRUCTURES`) -> binary mask file (0/255 or 0/1).
        shape: the image's (rows, cols); the masks must be that size or an integer fraction of it and are
            upsampled by pixel replication (nearest neighbour).
        case: the case name used in error messages.

    Returns:
        ``uint8`` array of ``shape``: 0 background, 1 right lung, 2 left lung, 3 heart, 4 right clavicle,
        5 left clavicle; later structures overwrite earlier ones.
    """
    masks = {s: load_binary_mask(mask_paths[s]) for s in SCR_STRUCTURES}
    factor = _upsampling_factor(case, {mask_paths[s]: m.shape[::-1] for s, m in masks.items()}, shape)
    label = np.zeros(shape, dtype=np.uint8)
    for value, structure in enumerate(SCR_STRUCTURES, start=1):
        mask = masks[structure]
        if factor > 1:
            mask = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
        label[mask] = value
    return label


def jsrt_splits(
    n: int, *, test_fraction: float = 0.5, val_fraction: float = PAPER_VAL_FRACTION, seed: int = 0
) -> dict[str, list[int]]:
    """Case indices for the target and surrogate networks, as in Bortsova et al. 2021.

    A seeded permutation of ``range(n)`` gives ``round(test_fraction * n)`` test cases; the rest is the
    pool. Two disjoint validation sets of ``round(val_fraction * pool)`` cases (at least 1) are cut from
    the pool: ``validation`` (target) and ``validation_surrogate``. Each network trains on the pool minus
    its own validation set, so the union of training and validation is the pool for both networks, and
    the two training sets share ``pool - 2 * n_val`` cases (77 of 100 with the paper's pool of 123).

    Returns:
        ``{"training", "validation", "test", "training_surrogate", "validation_surrogate"}`` -> sorted indices.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"Argument n should be an integer >= 2, got {n}.")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"Argument test_fraction should be a float in [0, 1), got {test_fraction}.")
    if not 0.0 < val_fraction <= 0.5:
        raise ValueError(f"Argument val_fraction should be a float in (0, 0.5], got {val_fraction}.")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(np.floor(test_fraction * n + 0.5))
    test, pool = order[:n_test], order[n_test:]
    n_val = max(1, int(np.floor(val_fraction * len(pool) + 0.5)))
    if len(pool) < 2 * n_val:
        raise ValueError(
            f"{n} cases leave a pool of {len(pool)} after the test split: too few for two disjoint validation "
            f"sets of {n_val}. Lower test_fraction or val_fraction."
        )
    val_target, val_surrogate = pool[:n_val], pool[n_val : 2 * n_val]
    return {
        "training": sorted(set(pool.tolist()) - set(val_target.tolist())),
        "validation": sorted(val_target.tolist()),
        "test": sorted(test.tolist()),
        "training_surrogate": sorted(set(pool.tolist()) - set(val_surrogate.tolist())),
        "validation_surrogate": sorted(val_surrogate.tolist()),
    }


def _uid(case: str, what: str) -> str:
    """A UID derived from the case name, so converting again gives identical files."""
    return generate_uid(entropy_srcs=["bundle.data.jsrt", case, what])


def convert_jsrt(
    images_dir: str | os.PathLike,
    masks_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    test_fraction: float = 0.5,
    val_fraction: float = PAPER_VAL_FRACTION,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Convert JSRT ``.IMG`` images and SCR masks into ``output_dir``.

    Writes ``images/<case>.dcm`` (DICOM DX, MONOCHROME2 = ``4095 - raw``, 0.175 mm pixel spacing),
    ``labels/<case>.png`` (8-bit label map at 2048 x 2048, see module docstring) and ``datalist.json``
    with the splits of :func:`jsrt_splits`. Every image in ``images_dir`` must have its five masks.

    Args:
        images_dir: folder with the JSRT ``*.IMG`` files (e.g. ``All247images``); other files are ignored.
        masks_dirs: one folder, or several searched in order, each holding the SCR structure folders
            (``heart``, ``left clavicle``, ``left lung``, ``right clavicle``, ``right lung``).
        output_dir: created if needed; existing outputs are only replaced with ``overwrite=True``.
        test_fraction, val_fraction, seed: see :func:`jsrt_splits`.
        progress: show a tqdm progress bar over the images.

    Returns:
        The path of the written ``datalist.json``.

    Raises:
        FileNotFoundError: a folder or a mask is missing (the message names the path).
        ValueError: an ``.IMG`` file of the wrong size or not 12-bit, a non-binary mask, masks whose size
            does not match the image.
        FileExistsError: outputs exist and ``overwrite`` is false.

    Sizes and the presence of every mask are checked before anything is written; a failure while writing
    (pixel-level checks) deletes every file the run wrote, so a failed run leaves no output behind.
    """
    from bundle.data.dicom_writer import write_dx  # imported here: the DICOM writer pulls in highdicom/pydicom

    images_dir = Path(images_dir)
    masks_dirs = [masks_dirs] if isinstance(masks_dirs, (str, os.PathLike)) else list(masks_dirs)
    masks_dirs = [Path(d) for d in masks_dirs]
    for folder in [images_dir, *masks_dirs]:
        if not folder.is_dir():
            raise FileNotFoundError(f"Input folder {folder} does not exist.")
    image_files = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() == ".img")
    if not image_files:
        raise ValueError(f"No .IMG files in {images_dir}; expected the JSRT raw images (JPCLN001.IMG, ...).")

    # 1. check everything that does not need the pixels
    cases = []
    for path in image_files:
        _check_file_size(path)
        masks = find_scr_masks(masks_dirs, path.stem)
        _upsampling_factor(path.stem, {p: image_size(p) for p in masks.values()}, JSRT_SHAPE)
        cases.append((path.stem, path, masks))
    splits = jsrt_splits(len(cases), test_fraction=test_fraction, val_fraction=val_fraction, seed=seed)

    output_dir = Path(output_dir)
    outputs = [
        (output_dir / "images" / f"{safe_name(c)}.dcm", output_dir / "labels" / f"{safe_name(c)}.png") for c, _, _ in cases
    ]
    if len({img for img, _ in outputs}) != len(outputs):
        raise ValueError(f"Case names in {images_dir} collide after sanitising; rename the files to unique names.")
    check_outputs_free([p for pair in outputs for p in pair] + [output_dir / DATALIST_NAME], overwrite)

    # 2. write, undoing everything on failure
    items = []
    with OutputLog() as log:
        for (case, path, masks), (image_out, label_out) in tqdm(
            list(zip(cases, outputs)), desc="JSRT", unit="image", disable=not progress
        ):
            raw = read_jsrt_img(path)
            label = scr_label_map(masks, raw.shape, case=case)
            write_dx(
                log.add(image_out),
                jsrt_to_monochrome2(raw),
                photometric="MONOCHROME2",
                pixel_spacing=JSRT_PIXEL_SPACING,
                patient_id=case,
                patient_name=f"JSRT^{case}",
                study_instance_uid=_uid(case, "study"),
                series_instance_uid=_uid(case, "series"),
                sop_instance_uid=_uid(case, "instance"),
                study_description="JSRT chest radiograph",
                series_description="PA chest, JSRT database (SCR labels)",
                manufacturer_model_name="JSRT digitised film",
                detector_type="FILM",
            )
            write_label_png(log.add(label_out), label)
            items.append({"image": str(image_out), "label": str(label_out)})
        return write_datalist(output_dir, {k: [items[i] for i in idx] for k, idx in splits.items()})

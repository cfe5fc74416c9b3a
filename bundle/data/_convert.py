"""Plumbing shared by the real-dataset converters (:mod:`.jsrt`, :mod:`.isic`, :mod:`.fundus_folder`).

Every converter follows the same discipline:

1. find and check every input before writing anything (files present, sizes; photographs that are copied
   unchanged are decoded in full, since a truncated file has an intact header);
2. write each output atomically (:func:`bundle._files.atomic_path`) while recording it in an
   :class:`OutputLog`; a check that needs the pixels (mask values, 12-bit range) fails inside the log's
   ``with`` block, which then deletes every file the run wrote, so a failed run leaves nothing behind;
3. write ``datalist.json`` last.

Inputs are only ever opened for reading.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType

import numpy as np
from monai.utils import look_up_option
from PIL import Image

from bundle._files import atomic_path
from bundle.transforms import EXIF_ORIENTATION

__all__ = [
    "CopyMode",
    "add_photo_split_arguments",
    "OutputLog",
    "check_outputs_free",
    "check_fractions",
    "image_size",
    "load_gray",
    "load_binary_mask",
    "place_image",
    "write_label_png",
]


class CopyMode(str, Enum):
    """How an input photograph gets into the output folder (the datalist holds paths inside it)."""

    COPY = "copy"  # byte-for-byte copy: safe everywhere, doubles the disk use
    HARDLINK = "hardlink"  # same file, no extra space; same file system only; editing one edits both


class OutputLog:
    """Record the files a conversion writes; on an exception inside ``with``, delete them all.

    Files that existed before the run and were overwritten (``overwrite=True``) are deleted too:
    after a failed run the output folder holds no file the run touched.
    """

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def add(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        self.paths.append(path)
        return path

    def __enter__(self) -> OutputLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            for path in reversed(self.paths):
                path.unlink(missing_ok=True)


def check_outputs_free(paths: Iterable[Path], overwrite: bool) -> None:
    """Raise ``FileExistsError`` naming the first outputs that already exist, unless ``overwrite``."""
    if overwrite:
        return
    taken = [p for p in paths if p.exists()]
    if taken:
        shown = ", ".join(str(p) for p in taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise FileExistsError(f"Output files already exist: {shown}. Choose another output folder or pass overwrite=True.")


def check_fractions(fractions: Sequence[float], names: Sequence[str]) -> tuple[float, ...]:
    """Validate split fractions: one per name, each in [0, 1], summing to 1."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(names):
        raise ValueError(f"Argument fractions should have {len(names)} values ({', '.join(names)}), got {fractions}.")
    if any(not 0.0 <= f <= 1.0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"Argument fractions should be values in [0, 1] that sum to 1, got {fractions}.")
    return fractions


def image_size(path: Path, *, decode: bool = False) -> tuple[int, int]:
    """(width, height) of an image; ``ValueError`` naming the file if PIL cannot read it or an EXIF orientation
    turns it (which pixels its mask was drawn on cannot be told).

    Only the header is read unless ``decode``: then every pixel is decoded, so a truncated or corrupt file
    (whose header is intact) is found before it is copied into a dataset.
    """
    try:
        with Image.open(path) as img:
            if decode:
                img.load()
            orientation = img.getexif().get(EXIF_ORIENTATION, 1)
            size = img.size
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot read image {path}: {err}. The file may be truncated or corrupt: download it "
                         f"again or remove it from the input folder.") from err
    if orientation != 1:
        raise ValueError(f"{path} has EXIF orientation {orientation}: viewers, and the bundle, show it turned or "
                         f"mirrored, so its mask may be drawn on either the stored or the shown pixels, and which "
                         f"cannot be told. Save the image upright (e.g. python -c \"from PIL import Image, "
                         f"ImageOps; ImageOps.exif_transpose(Image.open('{path.name}')).save('upright.png')\"), "
                         f"draw or check its mask on that, and convert again.")
    return size


def load_gray(path: Path) -> np.ndarray:
    """A mask file as a 2-D ``uint8`` array of its gray values.

    Accepts 8-bit gray (``L``), palette (``P``, mapped through its palette, as GIF masks are) and
    bilevel (``1``, read as 0/255) images, and RGB(A) images whose three colour channels are equal
    (masks saved as colour files); anything else raises ``ValueError`` naming the file.
    """
    with Image.open(path) as img:
        mode = img.mode
        if mode in ("1", "P"):
            img = img.convert("L")
        elif mode == "LA":
            img = img.getchannel("L")
        arr = np.asarray(img)
    if mode in ("RGB", "RGBA"):
        rgb = arr[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ValueError(f"Mask {path} is a colour image ({mode}) with differing channels; expected a gray mask.")
        arr = rgb[..., 0]
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise ValueError(f"Mask {path} has mode {mode!r}; expected an 8-bit gray, palette or bilevel image.")
    return arr


def load_binary_mask(path: Path) -> np.ndarray:
    """A binary mask file (values 0/255 or 0/1) as a boolean array; ``ValueError`` listing other values."""
    arr = load_gray(path)
    values = np.unique(arr)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = values[:10].tolist()
        raise ValueError(
            f"Mask {path} is not binary: it has the values {shown}{' ...' if values.size > 10 else ''}; "
            "expected only 0 and 255 (or 0 and 1)."
        )
    return arr > 0


def write_label_png(path: Path, label: np.ndarray) -> Path:
    """Write an integer label map as an 8-bit gray PNG, atomically."""
    if label.ndim != 2 or label.min(initial=0) < 0 or label.max(initial=0) > 255:
        raise ValueError(f"Label map for {path} should be 2-D with values in [0, 255], got shape {label.shape}.")
    with atomic_path(path) as tmp:
        Image.fromarray(label.astype(np.uint8), mode="L").save(tmp)
    return path


def place_image(src: Path, dst: Path, mode: CopyMode | str = CopyMode.COPY) -> Path:
    """Put the unchanged input file ``src`` at ``dst`` (copy or hard link), atomically; ``src`` is only read."""
    mode = look_up_option(mode, CopyMode)
    with atomic_path(dst) as tmp:
        if mode is CopyMode.COPY:
            shutil.copyfile(src, tmp)
        else:
            tmp.unlink()
            os.link(src, tmp)
    return dst


def add_photo_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options the photograph converters share: split fractions, seed, copy mode, overwrite."""
    parser.add_argument(
        "--fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"),
        help="split fractions, summing to 1 (default 0.7 0.1 0.2)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split permutation (default 0)")
    parser.add_argument("--link", choices=("copy", "hardlink"), default="copy",
                        help="copy the images (default) or hard-link them (same file system, no extra space)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")

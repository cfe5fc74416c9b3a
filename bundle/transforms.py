"""MONAI dictionary transforms the task configs compose: reading DICOM X-rays, photographs and label maps.

Each loader returns a channel-first ``MetaTensor`` whose meta keeps the source file and its native size, so
later layers can map results back to the file. Errors name the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from PIL import Image, UnidentifiedImageError

__all__ = ["read_xray_dicom", "read_photo", "read_label_map", "LoadXrayDicomd", "LoadPhotod", "LoadLabelMapd",
           "SUPPORTED_PHOTOMETRIC"]

SUPPORTED_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")


def _require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file {path} does not exist; check the datalist or the path you passed.")
    return path


def read_xray_dicom(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a single-frame grayscale DICOM radiograph as display intensities in ``[0, 1]``.

    Applies the modality LUT (rescale slope / intercept), the linear VOI window (first WindowCenter /
    WindowWidth, else the full stored range) and inverts MONOCHROME1 so that bone is bright.
    Compressed transfer syntaxes are decoded by the pylibjpeg plugins.

    Returns:
        ``(image, meta)``: float32 ``(H, W)`` in ``[0, 1]`` and the header facts later layers need.
    """
    path = _require_file(path)
    try:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
    except Exception as e:  # pydicom raises many types for damaged files
        raise ValueError(f"{path} is not a readable DICOM image ({type(e).__name__}: {e}); "
                         f"the file may be truncated or corrupt.") from e
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in SUPPORTED_PHOTOMETRIC:
        raise ValueError(f"{path} has PhotometricInterpretation {photometric!r}; only grayscale "
                         f"{' or '.join(SUPPORTED_PHOTOMETRIC)} radiographs are supported.")
    if stored.ndim != 2:
        raise ValueError(f"{path} holds pixel data of shape {stored.shape}; a single-frame 2-D radiograph is expected.")
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    values = stored.astype(np.float64) * slope + intercept
    bits = int(ds.BitsStored)
    lo_stored, hi_stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
    center, width = _first_window(ds)
    if center is None:
        lo, hi = lo_stored * slope + intercept, hi_stored * slope + intercept
    else:
        # DICOM PS3.3 C.11.2.1.2.1 linear VOI function, mapped onto [0, 1]
        lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    image = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    meta = {
        "filename_or_obj": str(path),
        "spatial_shape": np.asarray(stored.shape),
        "photometric": photometric,
        "rescale": (slope, intercept),
        "voi_range": (lo, hi),
        "bits_stored": bits,
        "pixel_spacing": [float(v) for v in ds.get("PixelSpacing", ds.get("ImagerPixelSpacing", [1.0, 1.0]))],
    }
    return image.astype(np.float32), meta


def _first_window(ds: pydicom.Dataset) -> tuple[float | None, float | None]:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None, None
    center, width = ds.WindowCenter, ds.WindowWidth
    center = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
    width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    return (center, width) if width >= 1 else (None, None)


def read_photo(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read an RGB photograph (PNG / JPEG) as float32 ``(H, W, 3)`` in ``[0, 1]``; grayscale is replicated."""
    path = _require_file(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not a readable image ({e}); the file may be truncated or corrupt.") from e
    return rgb, {"filename_or_obj": str(path), "spatial_shape": np.asarray(rgb.shape[:2])}


def read_label_map(path: str | Path, num_classes: int) -> np.ndarray:
    """Read a PNG label map ``(H, W)`` of integers in ``[0, num_classes)``."""
    path = _require_file(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise ValueError(f"{path} is a {im.mode} image; a single-channel label map is expected.")
            label = np.asarray(im).astype(np.int64)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not a readable label map ({e}); the file may be truncated or corrupt.") from e
    bad = np.unique(label[(label < 0) | (label >= num_classes)])
    if bad.size:
        raise ValueError(f"{path} contains label values {bad[:10].tolist()} outside 0..{num_classes - 1}; "
                         f"convert it to the task's label values first.")
    return label


class LoadXrayDicomd(MapTransform):
    """Load DICOM radiographs into ``(1, H, W)`` ``MetaTensor`` display intensities in ``[0, 1]``."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image, meta = read_xray_dicom(d[key])
            d[key] = MetaTensor(torch.from_numpy(image)[None], meta=meta)
        return d


class LoadPhotod(MapTransform):
    """Load photographs into ``(3, H, W)`` ``MetaTensor`` RGB intensities in ``[0, 1]``."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image, meta = read_photo(d[key])
            d[key] = MetaTensor(torch.from_numpy(image).permute(2, 0, 1).contiguous(), meta=meta)
        return d


class LoadLabelMapd(MapTransform):
    """Load label maps into ``(1, H, W)`` int64 ``MetaTensor``; the size must equal that of ``image_key``'s image.

    Args:
        keys: label keys.
        num_classes: label values must lie in ``[0, num_classes)``.
        image_key: key of the already loaded image the label belongs to; ``None`` skips the size check (an
            attack target taken from another case, resized to the model grid afterwards).
    """

    def __init__(self, keys: KeysCollection, num_classes: int, image_key: str | None = "image",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.num_classes = int(num_classes)
        self.image_key = image_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image = d[self.image_key] if self.image_key is not None else None
        for key in self.key_iterator(d):
            path = d[key]
            label = read_label_map(path, self.num_classes)
            image_shape = label.shape if image is None else tuple(int(s) for s in image.meta["spatial_shape"])
            if label.shape != image_shape:
                raise ValueError(f"Label map {path} is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
                                 f"{image.meta['filename_or_obj']} is {image_shape[1]}x{image_shape[0]}; "
                                 f"they must have the same size.")
            d[key] = MetaTensor(torch.from_numpy(label)[None], meta={"filename_or_obj": str(path),
                                                                     "spatial_shape": np.asarray(label.shape)})
        return d

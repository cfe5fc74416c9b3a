"""MONAI dictionary transforms the task configs compose: reading DICOM X-rays, photographs and label maps.

Each loader returns a channel-first ``MetaTensor`` whose meta keeps the source file and its native size, so
later layers can map results back to the file. Errors name the file and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from PIL import Image, ImageOps, UnidentifiedImageError

from bundle.inputs import is_dicom

__all__ = ["read_xray_dicom", "read_photo", "read_label_map", "LoadXrayDicomd", "LoadPhotod", "LoadLabelMapd",
           "SUPPORTED_PHOTOMETRIC", "photo_size", "spacing_pair", "voi_range", "pixel_spacing", "XRAY_MODALITIES", "CHEST_BODY_PARTS",
           "MIN_IMAGE_SIDE", "EXIF_ORIENTATION"]

SUPPORTED_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
XRAY_MODALITIES = ("CR", "DX", "RG")  # computed / digital radiography, radiographic imaging; absent is accepted
CHEST_BODY_PARTS = ("CHEST", "THORAX")  # a word of Body Part Examined; absent or empty is accepted
MIN_IMAGE_SIDE = 64  # pixels: smaller images hold too little anatomy to segment
EXIF_ORIENTATION = 0x0112  # EXIF tag: 1 stored as shown; 2-8 mirrored and / or turned; 5-8 swap rows and columns
_MODALITY_NAMES = {"CT": "computed tomography", "MR": "magnetic resonance", "NM": "nuclear medicine",
                   "OT": "other", "US": "ultrasound", "PT": "PET", "MG": "mammography", "XA": "X-ray angiography",
                   "RF": "radiofluoroscopy", "SEG": "segmentation", "RTDOSE": "radiotherapy dose", "SC": "secondary capture",
                   "IO": "intra-oral radiography", "PX": "panoramic X-ray", "ES": "endoscopy", "XC": "photograph"}


def _require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file {path} does not exist; check the datalist or the path you passed.")
    return path


def _check_size(path: Path, height: int, width: int) -> None:
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ValueError(f"{path} is {width}x{height} pixels (WxH); images smaller than {MIN_IMAGE_SIDE} pixels on a "
                         f"side hold too little to segment. Use the full-resolution image.")


def _check_finite(path: Path, image: np.ndarray, cause: str) -> None:
    if not np.isfinite(image).all():
        bad = int(np.size(image) - np.isfinite(image).sum())
        raise ValueError(f"{path} gives {bad} NaN or infinite pixel values ({cause}); fix or re-export the image.")


def _header_float(path: Path, ds: pydicom.Dataset, keyword: str, default: float) -> float:
    """A numeric header value, first of several; ``ValueError`` naming the file for anything not a finite number."""
    value = ds.get(keyword, default)
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else default
    try:
        number = float(value if value not in ("", None) else default)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        raise ValueError(f"{path} has {keyword} {value!r}, not a finite number; fix the header (or remove the "
                         f"attribute) before reading the image.")
    return number


def _check_radiograph(path: Path, ds: pydicom.Dataset, force: bool) -> None:
    """Refuse what is not a grayscale single-frame chest radiograph with integer pixels (see read_xray_dicom)."""
    for keyword in ("FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            raise ValueError(f"{path} stores its pixels as {keyword} (floating point, as parametric maps do); a "
                             f"radiograph stores integer Pixel Data. Export the radiograph itself from the "
                             f"modality or PACS.")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality and modality not in XRAY_MODALITIES:
        name = _MODALITY_NAMES.get(modality)
        raise ValueError(f"{path} has Modality {modality}{f' ({name})' if name else ''}; the cxr model is for chest "
                         f"radiographs (Modality {', '.join(XRAY_MODALITIES)}) and would label any image as lungs, "
                         f"heart and clavicles. Give it a chest radiograph.")
    body = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if body and not set(re.split(r"[^A-Z]+", body)) & set(CHEST_BODY_PARTS) and not force:
        raise ValueError(f"{path} has BodyPartExamined {body!r}; the cxr model is for chest radiographs "
                         f"({' or '.join(CHEST_BODY_PARTS)}) and would label any image as lungs, heart and "
                         f"clavicles. If it is a chest image all the same, pass force=True (the bundle option "
                         f"force: true).")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in SUPPORTED_PHOTOMETRIC or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise ValueError(f"{path} has PhotometricInterpretation {photometric!r}; only grayscale "
                         f"{' or '.join(SUPPORTED_PHOTOMETRIC)} radiographs are supported.")
    frames = ds.get("NumberOfFrames", 1)
    if int(frames or 1) != 1:
        raise ValueError(f"{path} holds {frames} frames; a single-frame 2-D radiograph is expected. Export one "
                         f"frame as its own file.")
    for keyword in ("Rows", "Columns", "BitsStored", "PixelRepresentation"):
        if ds.get(keyword) is None:
            raise ValueError(f"{path} has no {keyword}; the header of an image needs it. Re-export the file from "
                             f"its source.")
    _check_size(path, int(ds.Rows), int(ds.Columns))


def _image_format(path: Path) -> str | None:
    """The format name (``PNG``, ``JPEG``...) of an image file that Pillow recognises, else ``None``."""
    try:
        with Image.open(path) as im:
            return im.format
    except Exception:  # noqa: BLE001 - not an image Pillow knows
        return None


def read_xray_dicom(path: str | Path, force: bool = False, *,
                    dataset: pydicom.Dataset | None = None) -> tuple[np.ndarray, dict]:
    """Read a single-frame grayscale DICOM chest radiograph as display intensities in ``[0, 1]``.

    Applies the modality LUT (rescale slope / intercept), the linear VOI window (first WindowCenter /
    WindowWidth, else the full stored range) and inverts MONOCHROME1 so that bone is bright.
    Compressed transfer syntaxes are decoded by the pylibjpeg plugins.

    Refused with a ``ValueError`` naming the file: a Modality other than CR, DX, RG (absent is fine); a Body Part
    Examined without the word CHEST or THORAX (absent or empty is fine) unless ``force``; float pixel data; colour
    or several frames; fewer than ``MIN_IMAGE_SIDE`` pixels on a side; a rescale slope of 0 or any header number
    or resulting pixel value that is not finite.

    Args:
        path: the DICOM file; only read.
        force: read an image whose Body Part Examined is not a chest (the user vouches that it is one).
        dataset: ``path`` already read with ``pydicom.dcmread``; its pixel data is decoded once and kept by pydicom,
            so callers that need the file several times (the DICOM export) decode a compressed file only once.

    Returns:
        ``(image, meta)``: float32 ``(H, W)`` in ``[0, 1]`` and the header facts later layers need.
    """
    path = _require_file(path)
    ds = dataset
    if ds is None:
        try:
            ds = pydicom.dcmread(path)
        except Exception as e:  # pydicom raises many types for damaged files
            kind = _image_format(path)
            if kind is not None:
                raise ValueError(f"{path} is a {kind} image, not DICOM: the cxr task reads chest radiographs as DICOM "
                                 f"files (CR or DX, one grayscale frame). Export the radiograph as DICOM from where it "
                                 f"came from; for a photograph choose the task fundus or dermoscopy.") from e
            raise ValueError(f"{path} is not a readable DICOM image ({type(e).__name__}: {e}); "
                             f"the file may be truncated or corrupt.") from e
    _check_radiograph(path, ds, force)
    slope = _header_float(path, ds, "RescaleSlope", 1.0)
    intercept = _header_float(path, ds, "RescaleIntercept", 0.0)
    if slope == 0:
        raise ValueError(f"{path} has RescaleSlope 0, which maps every pixel to one value; fix the header "
                         f"(RescaleSlope is 1 when stored values are the image values).")
    try:
        stored = ds.pixel_array
    except Exception as e:  # decoder errors of every plugin
        raise ValueError(f"{path} is not a readable DICOM image ({type(e).__name__}: {e}); "
                         f"the file may be truncated or corrupt.") from e
    if stored.ndim != 2:
        raise ValueError(f"{path} holds pixel data of shape {stored.shape}; a single-frame 2-D radiograph is expected.")
    bits = int(ds.BitsStored)
    lo_stored, hi_stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
    center, width = _first_window(path, ds)
    if center is None:
        lo, hi = lo_stored * slope + intercept, hi_stored * slope + intercept
    else:
        lo, hi = voi_range(center, width)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to infinity is refused just below
        image = (stored.astype(np.float64) * slope + intercept - lo) / (hi - lo)
    _check_finite(path, image, f"RescaleSlope {slope:g}, RescaleIntercept {intercept:g}, VOI range {lo:g}..{hi:g}")
    image = np.clip(image, 0.0, 1.0)
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    meta = {
        "filename_or_obj": str(path),
        "spatial_shape": np.asarray(stored.shape),
        "photometric": photometric,
        "rescale": (slope, intercept),
        "voi_range": (lo, hi),
        "bits_stored": bits,
        "pixel_spacing": pixel_spacing(ds),
    }
    return image.astype(np.float32), meta


def voi_range(center: float, width: float) -> tuple[float, float]:
    """The values a linear VOI window maps onto display 0 and 1 (DICOM PS3.3 C.11.2.1.2.1)."""
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


def spacing_pair(value: object) -> list[float] | None:
    """A spacing attribute's value as ``[row, column]`` in mm, or ``None`` unless it is two positive finite numbers
    (real files carry ``0\\0``: such a value counts as absent)."""
    try:
        pair = [float(v) for v in value] if value is not None else []
    except (TypeError, ValueError):
        return None
    return pair if len(pair) == 2 and all(np.isfinite(v) and v > 0 for v in pair) else None


def pixel_spacing(ds: pydicom.Dataset) -> list[float]:
    """Row and column spacing in mm: Pixel Spacing, else Imager Pixel Spacing, else 1 mm (cornerstone3D's default
    too), each only if :func:`spacing_pair` accepts it."""
    pairs = (spacing_pair(ds.get(keyword)) for keyword in ("PixelSpacing", "ImagerPixelSpacing"))
    return next((pair for pair in pairs if pair is not None), [1.0, 1.0])


def _first_window(path: Path, ds: pydicom.Dataset) -> tuple[float | None, float | None]:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None, None
    center, width = _header_float(path, ds, "WindowCenter", 0.0), _header_float(path, ds, "WindowWidth", 0.0)
    return (center, width) if width >= 1 else (None, None)


# Pillow modes read_photo accepts: 8 bits per sample (converted to RGB by Pillow), 16-bit gray, 32-bit float
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_photo(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a photograph (PNG / JPEG / TIFF ...) as float32 RGB ``(H, W, 3)`` in ``[0, 1]``; gray is replicated.

    How each Pillow mode maps to ``[0, 1]``:

    * 8 bits per sample (``1 L LA P PA RGB RGBA RGBX CMYK YCbCr``): Pillow's conversion to RGB (alpha
      dropped, palette looked up, bilevel as 0 / 255), then ``value / 255``. Pillow reads a 16-bit RGB(A) or
      gray+alpha PNG in these modes with the high byte of each sample, so it maps as ``(v >> 8) / 255``.
    * 16-bit gray (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``; ``I`` from a PNG): ``value / (2**bits - 1)`` with
      ``bits`` the TIFF BitsPerSample when the file says (12 -> 4095), else 16 (65535). ``I`` of more than 16 bits
      is refused.
    * 32-bit float (``F``, float TIFF): taken as it is when every value lies in ``[0, 1]``; NaN, infinity or
      values outside ``[0, 1]`` are refused (convert the image to 8- or 16-bit first).

    The photograph is read as viewers show it: an EXIF orientation (a phone's portrait photograph) is applied,
    and of a multi-picture JPEG (MPO: a phone's HDR gain map or depth map, a stereo camera's second view) the
    primary image is read. Any other mode, several frames of another format (multi-page TIFF, animated PNG or
    GIF), fewer than ``MIN_IMAGE_SIDE`` pixels on a side or a damaged file raise a ``ValueError`` naming the
    file. The file is only read.
    """
    path = _require_file(path)
    try:
        with Image.open(path) as opened:
            im = _as_shown(path, opened)
            mode = im.mode
            _check_size(path, im.height, im.width)
            if mode in _EIGHT_BIT_MODES:
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            elif mode in _SIXTEEN_BIT_MODES:
                gray = _sixteen_bit_gray(path, im, getattr(opened, "tag_v2", None))
                rgb = np.repeat(gray[..., None], 3, axis=2)
            elif mode == "F":
                gray = _float_gray(path, np.asarray(im, dtype=np.float32))
                rgb = np.repeat(gray[..., None], 3, axis=2)
            else:
                raise ValueError(f"{path} is a {mode} image; supported are 8-bit gray, palette and colour, 16-bit "
                                 f"gray and float in [0, 1]. Convert it to an 8-bit RGB or 16-bit gray PNG.")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        if is_dicom(path):
            raise ValueError(f"{path} is a DICOM file: the photograph tasks (fundus, dermoscopy) read PNG, JPEG or TIFF "
                             f"photographs, and DICOM is read by the cxr task (chest radiographs). Export the "
                             f"photograph as PNG or JPEG.") from e
        raise ValueError(f"{path} is not a readable image ({e}); the file may be truncated or corrupt.") from e
    return rgb, {"filename_or_obj": str(path), "spatial_shape": np.asarray(rgb.shape[:2])}


def _as_shown(path: Path, im: Image.Image) -> Image.Image:
    """The decoded picture a viewer shows of the open file ``im``: its primary image, EXIF orientation applied."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":
        raise ValueError(f"{path} holds {frames} frames (pages); a single photograph is expected. Save the "
                         f"one you mean as its own file.")
    im.load()  # the first frame: an MPO's primary image
    return ImageOps.exif_transpose(im) if im.getexif().get(EXIF_ORIENTATION, 1) != 1 else im


def photo_size(path: str | Path) -> tuple[int, int]:
    """``(rows, columns)`` of a photograph as :func:`read_photo` reads it (EXIF orientation applied), from its
    header."""
    with Image.open(path) as im:
        turned = im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # transposed or turned by 90 degrees
        return (im.width, im.height) if turned else (im.height, im.width)


def _sixteen_bit_gray(path: Path, im: Image.Image, tags: Mapping | None) -> np.ndarray:
    """``im``'s 16-bit gray values over the peak of their bit depth; ``tags``: the file's TIFF tags, if any."""
    declared = tags.get(258) if tags is not None else None  # TIFF BitsPerSample
    bits = int(declared[0] if isinstance(declared, tuple) else declared) if declared else 16
    if (im.mode == "I" and im.format != "PNG" and not declared) or bits > 16:
        raise ValueError(f"{path} is a {bits if declared else 32}-bit integer image; 8- and 16-bit photographs "
                         f"are supported. Convert it to a 16-bit gray PNG.")
    gray = np.asarray(im).astype(np.float32)
    peak = 2**bits - 1
    if gray.min() < 0 or gray.max() > peak:
        raise ValueError(f"{path} holds values {gray.min():g}..{gray.max():g} outside its {bits}-bit range "
                         f"0..{peak}; fix the file's BitsPerSample or convert it to a 16-bit gray PNG.")
    return gray / peak


def _float_gray(path: Path, gray: np.ndarray) -> np.ndarray:
    _check_finite(path, gray, "a float image")
    lo, hi = float(gray.min()), float(gray.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{path} is a float image with values {lo:g}..{hi:g}; float photographs must already lie "
                         f"in [0, 1]. Scale it to [0, 1] or convert it to an 8- or 16-bit PNG.")
    return gray


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
    """Load DICOM chest radiographs into ``(1, H, W)`` ``MetaTensor`` display intensities in ``[0, 1]``.

    Args:
        keys: image keys.
        force: read images whose Body Part Examined is not a chest (see :func:`read_xray_dicom`).
    """

    def __init__(self, keys: KeysCollection, force: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not isinstance(force, bool):
            raise TypeError(f"Option force should be True or False, got {force!r}.")
        self.force = force

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image, meta = read_xray_dicom(d[key], force=self.force)
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

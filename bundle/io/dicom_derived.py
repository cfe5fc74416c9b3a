"""The adversarial image as a DICOM instance derived from its source (same study, same patient, new series).

The derived instance keeps the source's SOP Class (e.g. DX For Presentation) and every attribute of
the source except those that describe a different instance or no longer hold, and adds what PS3.3
asks of a derived image (General Image module, C.7.6.1): Image Type ``DERIVED\\SECONDARY``, a
Derivation Description, a Derivation Code Sequence and a Source Image Sequence pointing to the source.

Codes (PS3.16):
* Derivation Code Sequence: (113042, DCM, "Pixel by pixel addition") from CID 7203 Image Derivation.
  The adversarial image is the source plus a perturbation image, added pixel by pixel; no other
  CID 7203 concept describes that operation (113062 is "Pixel by pixel subtraction").
* Purpose of Reference of the source: (121322, DCM, "Source image for image processing operation")
  from CID 7202 Source Image Purpose of Reference (121320 "Uncompressed predecessor" would claim the
  pixel data are the same).
* Contributing Equipment Sequence: this bundle as (109103, DCM, "Modifying Equipment"), CID 7005.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

from bundle.io import _dicom
from bundle.io.deidentify import deidentify as _deidentify
from bundle.io.deidentify import resolve_uid_map
from bundle.transforms import spacing_pair

__all__ = ["write_derived_dicom", "ADVERSARIAL_SERIES_DESCRIPTION", "DERIVED_SERIES_NUMBER",
           "DERIVATION_CODE"]

ADVERSARIAL_SERIES_DESCRIPTION = _dicom.research_description("Adversarial image")
DERIVED_SERIES_NUMBER = 900
DERIVATION_CODE = ("113042", "DCM", "Pixel by pixel addition")  # CID 7203
# transfer syntaxes that are always lossy, with the Lossy Image Compression Method they imply
_LOSSY = {JPEGBaseline8Bit: "ISO_10918_1", JPEGExtended12Bit: "ISO_10918_1", JPEGLSNearLossless: "ISO_14495_1"}
# attributes that describe the source instance's pixel data or identity and must not be copied
_DROP = ("IconImageSequence", "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
         "LargestPixelValueInSeries", "PixelDataProviderURL", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
         "DigitalSignaturesSequence", "MACParametersSequence", "EncryptedAttributesSequence",
         "SourceImageSequence", "DerivationCodeSequence", "DerivationDescription", "NumberOfFrames",
         "FloatPixelData", "DoubleFloatPixelData")


def _check_pixels(stored_pixels: object, ds) -> np.ndarray:
    arr = np.asarray(stored_pixels)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if arr.shape != (rows, cols):
        raise ValueError(f"Argument stored_pixels should have the source's shape (Rows, Columns) = "
                         f"{(rows, cols)}, got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise ValueError(f"Argument stored_pixels should hold integers, got dtype {arr.dtype} with "
                             f"fractional or non-finite values.")
    bits, signed, allocated = int(ds.BitsStored), int(ds.PixelRepresentation), int(ds.BitsAllocated)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"Argument stored_pixels should lie in {lo}..{hi} (Bits Stored {bits}, "
                         f"{'signed' if signed else 'unsigned'}), got {arr.min()}..{arr.max()}.")
    if allocated not in (8, 16):
        raise ValueError(f"The source has Bits Allocated {allocated}; only 8 and 16 are supported.")
    dtype = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16}[(allocated, signed)]
    return np.ascontiguousarray(arr.astype(dtype))  # a new array: the caller's stays untouched


LOSSLESS_SYNTAXES = {RLELossless: "RLE Lossless", JPEGLSLossless: "JPEG-LS Lossless",
                     JPEG2000Lossless: "JPEG 2000 Lossless"}


def write_derived_dicom(
    source_path: str | os.PathLike,
    stored_pixels: object,
    out_path: str | os.PathLike,
    *,
    derivation_description: str,
    series_instance_uid: str,
    sop_instance_uid: str | None = None,
    series_description: str = ADVERSARIAL_SERIES_DESCRIPTION,
    series_number: int = DERIVED_SERIES_NUMBER,
    instance_number: int = 1,
    deidentify: bool | Callable[[str], str] = False,
    transfer_syntax: str | None = None,
) -> Path:
    """Write ``stored_pixels`` as a DICOM image derived from ``source_path``, atomically.

    The result is a copy of the source dataset with: a new SOP Instance UID and the given Series
    Instance UID (Study Instance UID and patient unchanged), Image Type ``DERIVED\\SECONDARY`` (values 3+
    of the source kept), Derivation Description, Derivation Code Sequence (113042), Source Image
    Sequence (source SOP Class / Instance, purpose 121322, spatial locations preserved), Contributing
    Equipment (this bundle, 109103), new series / content / instance creation dates and times, and the
    pixel data at the source's size, Bits Allocated / Stored, Pixel Representation and Photometric
    Interpretation, written uncompressed (Explicit VR Little Endian) whatever the source's transfer
    syntax. A Pixel Spacing or Imager Pixel Spacing that is not two positive numbers is dropped. Window, rescale,
    VOI LUT and Presentation LUT attributes are kept, so the image displays like the source, except a VOI LUT
    Function of ``LINEAR``, which is the standard's default when absent and which some viewers misread; Lossy
    Image Compression is kept (set to ``01`` when the source's transfer syntax was lossy and the source did not
    say so). The source file and ``stored_pixels`` are only read.

    Args:
        source_path: single-frame grayscale (MONOCHROME1 / MONOCHROME2) DICOM image, any transfer
            syntax pydicom can decode.
        stored_pixels: ``(Rows, Columns)`` integer array of stored values inside the range of the
            source's Bits Stored / Pixel Representation, in the source's photometric sense (as returned
            by :func:`bundle.io.perturbation_to_stored`).
        out_path: destination file; written atomically, its folder created. Never derived from tag values.
        derivation_description: what was done, e.g. ``"PGD eps=0.04 steps=100 loss=iou target=heart_small"``
            (at most 1024 characters).
        series_instance_uid: UID of the new series (one per case and attack, shared with nothing else).
        sop_instance_uid: UID of the new instance; generated when ``None``.
        series_description: at most 64 characters; by default marks the series as an adversarial
            research image.
        series_number, instance_number: Series Number and Instance Number of the new instance.
        deidentify: ``False``; ``True`` (process-wide random key) or a :class:`bundle.io.UIDMap` to
            apply :func:`bundle.io.deidentify` to the copied source attributes first (study UID,
            patient and source reference replaced consistently with the other objects of the case).
        transfer_syntax: ``None`` writes uncompressed; or one of the lossless syntaxes RLE Lossless,
            JPEG-LS Lossless, JPEG 2000 Lossless (UIDs) to compress the pixels without changing them.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: bad arguments, a source that is not a single-frame grayscale image, pixels of the
            wrong shape or outside the stored range.
    """
    _dicom.check_text("derivation_description", derivation_description, 1024)
    _dicom.check_text("series_description", series_description, 64)
    _dicom.check_uid("series_instance_uid", series_instance_uid)
    _dicom.check_uid("sop_instance_uid", sop_instance_uid, optional=True)
    _dicom.check_series_number(series_number)
    if transfer_syntax is not None and transfer_syntax not in LOSSLESS_SYNTAXES:
        raise ValueError(f"Argument transfer_syntax should be None or a lossless syntax {sorted(LOSSLESS_SYNTAXES)} "
                         f"(a lossy one would change the adversarial pixels), got {transfer_syntax!r}.")
    uid_map = resolve_uid_map(deidentify)

    ds = _dicom.read_dataset(source_path)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ValueError(f"{source_path} has Photometric Interpretation {photometric!r}; a grayscale "
                         f"MONOCHROME1 / MONOCHROME2 image is expected.")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise ValueError(f"{source_path} has {ds.NumberOfFrames} frames; a single-frame image is expected.")
    pixels = _check_pixels(stored_pixels, ds)
    source_ts = ds.file_meta.get("TransferSyntaxUID")
    if str(ds.get("LossyImageCompression", "")) != "01" and source_ts in _LOSSY:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = _LOSSY[source_ts]
    elif "LossyImageCompression" not in ds:
        ds.LossyImageCompression = "00"

    if uid_map is not None:
        _deidentify(ds, uid_map)
    source_ref = _dicom.source_image_item(ds)  # after de-identification: points at the mapped source UID
    for keyword in _DROP:
        if keyword in ds:
            del ds[keyword]
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):  # real files carry 0\0: absent is valid, zero is not
        if keyword in ds and spacing_pair(ds[keyword].value) is None:
            del ds[keyword]
    if str(ds.get("VOILUTFunction", "")).strip().upper() == "LINEAR":
        del ds.VOILUTFunction  # the default when absent; OHIF 3.13 read the value as "L" and showed a blank image

    when = _dicom.now()
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    image_type = list(ds.get("ImageType", []))
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    ds.DerivationDescription = derivation_description
    ds.DerivationCodeSequence = [_dicom.code_item(*DERIVATION_CODE)]
    ds.SourceImageSequence = [source_ref]
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.InstanceNumber = int(instance_number)
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    equipment = list(ds.get("ContributingEquipmentSequence", []))
    equipment.append(_dicom.contributing_equipment_item("adversarial perturbation added", when))
    ds.ContributingEquipmentSequence = equipment
    _dicom.ensure_charset(ds, derivation_description, series_description)

    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # decoded pixels are written native
    ds.set_pixel_data(pixels, photometric, int(ds.BitsStored), generate_instance_uid=False)
    if transfer_syntax is not None:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    return _dicom.save_dataset(ds, out_path, keep_transfer_syntax=transfer_syntax is not None)

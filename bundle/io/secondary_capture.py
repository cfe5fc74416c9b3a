"""Overlay pictures as DICOM Secondary Capture images (highdicom ``SCImage``) in the source's study.

The picture (RGB, 8 bit) is a rendering made by this bundle from the source image, so it is written
as Image Type ``DERIVED\\SECONDARY``, Conversion Type ``WSD`` (workstation), with a Source Image
Sequence pointing to the source (purpose 121322, "Source image for image processing operation",
CID 7202), the source's Patient Orientation (every panel of the figure shows the source the way round it is
stored) and Body Part Examined, Series Date / Time of writing, and no Pixel Spacing: the figure's pixels are no
fixed size in the patient, so viewers draw them square and keep the figure's aspect ratio (a spacing copied
from the source stretched a 1200 x 440 figure 2.7 times in OHIF and Orthanc's Web Viewer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bundle.io import _dicom
from bundle.io.deidentify import copy_deidentification_marks, resolve_uid_map
from bundle.io.deidentify import deidentify as _deidentify

__all__ = ["write_secondary_capture", "SC_SERIES_NUMBER"]

SC_SERIES_NUMBER = 920


def write_secondary_capture(
    source_path: str | os.PathLike,
    rgb: object,
    out_path: str | os.PathLike,
    *,
    series_instance_uid: str,
    series_description: str,
    sop_instance_uid: str | None = None,
    series_number: int = SC_SERIES_NUMBER,
    instance_number: int = 1,
    derivation_description: str = "segmentation overlay rendered on the source image",
    burned_in_annotation: bool = False,
    deidentify: bool | Callable[[str], str] = False,
) -> Path:
    """Write an RGB picture as a DICOM Secondary Capture image in the study of ``source_path``, atomically.

    Args:
        source_path: the DICOM image the picture was made from; its patient and study are copied and
            it is referenced in Source Image Sequence. Only read.
        rgb: ``(H, W, 3)`` uint8 array (any size; a rendered figure has no pixel spacing, so none is written and
            viewers keep its aspect ratio). Not modified.
        out_path: destination file; written atomically. Never derived from tag values.
        series_instance_uid: UID of the overlay series.
        series_description: at most 64 characters.
        sop_instance_uid: generated when ``None``.
        series_number, instance_number: as named.
        derivation_description: at most 1024 characters.
        burned_in_annotation: set ``True`` when the picture contains text (legend, case name).
        deidentify: ``False``; ``True`` or a :class:`bundle.io.UIDMap` (see :func:`bundle.io.deidentify`).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.dtype != np.uint8:
        raise ValueError(f"Argument rgb should be a (H, W, 3) uint8 array, got shape {arr.shape} and "
                         f"dtype {arr.dtype}.")
    _dicom.check_uid("series_instance_uid", series_instance_uid)
    _dicom.check_uid("sop_instance_uid", sop_instance_uid, optional=True)
    _dicom.check_text("series_description", series_description, 64)
    _dicom.check_text("derivation_description", derivation_description, 1024)
    _dicom.check_series_number(series_number)
    uid_map = resolve_uid_map(deidentify)

    source = _dicom.read_dataset(source_path)
    if uid_map is not None:
        _deidentify(source, uid_map)
    person_names = _dicom.single_valued_names(source)
    orientation = source.get("PatientOrientation")
    orientation = tuple(str(v) for v in orientation) if orientation is not None and len(orientation) == 2 else None
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=np.ascontiguousarray(arr), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT" if orientation else None,
        series_instance_uid=series_instance_uid, series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(), instance_number=int(instance_number),
        manufacturer=_dicom.MANUFACTURER, patient_orientation=orientation, pixel_spacing=None,
        transfer_syntax_uid=ExplicitVRLittleEndian, series_description=series_description,
        manufacturer_model_name=_dicom.MANUFACTURER, software_versions=_dicom.bundle_version())
    sc.ConversionType = "WSD"  # rendered by a workstation (this bundle), not digitised
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = derivation_description
    sc.SourceImageSequence = [_dicom.source_image_item(source, spatial_locations_preserved=None)]
    sc.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    if "BodyPartExamined" in source:
        sc.BodyPartExamined = source.BodyPartExamined
    elif str(source.get("ImageLaterality", source.get("Laterality", ""))) in ("R", "L"):
        sc.Laterality = str(source.get("ImageLaterality", source.get("Laterality")))
    _dicom.set_series_date_time(sc, _dicom.now())
    _dicom.restore_names(sc, person_names)
    _dicom.ensure_charset(sc, derivation_description, series_description)
    if uid_map is not None:
        copy_deidentification_marks(source, sc)
    return _dicom.save_dataset(sc, out_path, keep_transfer_syntax=True)

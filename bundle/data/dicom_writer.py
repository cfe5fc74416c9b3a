"""Write a 12-bit chest radiograph as a DICOM Digital X-Ray Image (DX, For Presentation).

The file follows the DX IOD of PS3.3 (A.26): Patient, General Study, General Series, DX Series,
General Equipment, General Image, Image Pixel, DX Anatomy Imaged, DX Image, DX Detector,
VOI LUT, Acquisition Context and SOP Common modules; explicit VR little endian, uncompressed.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bundle._files import atomic_path

__all__ = ["write_dx", "default_window", "DX_SOP_CLASS_UID", "PHOTOMETRICS", "BITS_STORED"]

DX_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
PHOTOMETRICS = ("MONOCHROME2", "MONOCHROME1")
BITS_STORED = 12
_MAX = (1 << BITS_STORED) - 1
_MANUFACTURER = "adversarial-segmentation-bundle"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _ds_str(value: float) -> str:
    """A decimal string of at most 16 characters."""
    return f"{float(value):.6g}"


def default_window(pixels: np.ndarray) -> tuple[float, float]:
    """``(center, width)`` of the VOI window :func:`write_dx` writes when given none: the 0.5-99.5 percentiles."""
    p_lo, p_hi = np.percentile(pixels, [0.5, 99.5])
    return (p_lo + p_hi) / 2.0, max(float(p_hi - p_lo), 1.0)


def write_dx(
    path: str | os.PathLike,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    pixel_spacing: Sequence[float] = (0.175, 0.175),
    patient_id: str,
    patient_name: str,
    patient_sex: str = "O",
    patient_birth_date: str = "",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    study_description: str = "",
    series_description: str = "",
    accession_number: str = "",
    window: tuple[float, float] | None = None,
    manufacturer_model_name: str = "procedural phantom",
    detector_type: str = "SCINTILLATOR",
) -> Path:
    """Write ``pixels`` as a DX "For Presentation" DICOM file, atomically.

    Args:
        path: destination file; its folder is created. Nothing is left behind if writing fails.
        pixels: (rows, columns) integer array with values in 0..4095, MONOCHROME2 sense (bright =
            more attenuation). Always given this way, whatever ``photometric`` says.
        photometric: ``"MONOCHROME2"`` stores ``pixels``; ``"MONOCHROME1"`` stores ``4095 - pixels``
            with Presentation LUT Shape ``INVERSE`` so the displayed image is identical.
        pixel_spacing: (row spacing, column spacing) in mm, written as Pixel Spacing and Imager
            Pixel Spacing.
        patient_id, patient_name, patient_sex (``"M"``, ``"F"`` or ``"O"``), patient_birth_date
            (``YYYYMMDD`` or empty): Patient module.
        study_instance_uid, series_instance_uid, sop_instance_uid: generated when ``None``.
        instance_number, study_description, series_description, accession_number: as named.
        window: (center, width) of the VOI window in stored-value units of MONOCHROME2 data
            (mirrored for MONOCHROME1); by default the 0.5-99.5 percentile range of ``pixels``.
        manufacturer_model_name, detector_type: General Equipment / DX Detector facts (``detector_type``
            one of DIRECT, SCINTILLATOR, STORAGE, FILM); the defaults describe the phantoms.

    Returns:
        The path written.

    Raises:
        ValueError: unknown ``photometric``, pixels not 2-D or outside 0..4095, bad spacing or sex.
    """
    if photometric not in PHOTOMETRICS:
        raise ValueError(f"Argument photometric should be one of {PHOTOMETRICS}, got {photometric!r}.")
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"Argument pixels should be a non-empty 2-D array, got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise ValueError(f"Argument pixels should hold integers, got dtype {arr.dtype} with fractional values.")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > _MAX:
        raise ValueError(f"Argument pixels should lie in 0..{_MAX}, got range {lo}..{hi}.")
    if len(pixel_spacing) != 2 or not all(float(v) > 0 for v in pixel_spacing):
        raise ValueError(f"Argument pixel_spacing should be two positive floats (mm), got {tuple(pixel_spacing)}.")
    if patient_sex not in ("M", "F", "O", ""):
        raise ValueError(f"Argument patient_sex should be one of ('M', 'F', 'O', ''), got {patient_sex!r}.")
    stored = arr.astype(np.uint16)
    if photometric == "MONOCHROME1":
        stored = (_MAX - stored).astype(np.uint16)

    if window is None:
        center, width = default_window(arr)
    else:
        center, width = float(window[0]), float(window[1])
        if not width >= 1.0:
            raise ValueError(f"Argument window should be (center, width) with width >= 1, got {window}.")
    if photometric == "MONOCHROME1":
        # the DICOM linear VOI function maps x to (x - (c - 0.5)) / (w - 1) + 0.5; the window that shows
        # _MAX - x exactly as the original shows x has c' = _MAX + 1 - c
        center = _MAX + 1 - center

    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sop_uid = sop_instance_uid or generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_SOP_CLASS_UID
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    texts = (patient_id, patient_name, study_description, series_description, accession_number)
    if not all(str(t).isascii() for t in texts):
        ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common
    ds.SOPClassUID = DX_SOP_CLASS_UID
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Patient
    ds.PatientName = str(patient_name)
    ds.PatientID = str(patient_id)
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = patient_sex
    # General Study
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.StudyDate, ds.StudyTime = date, time
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = accession_number
    if study_description:
        ds.StudyDescription = study_description
    # General Series + DX Series
    ds.Modality = "DX"
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = date, time
    if series_description:
        ds.SeriesDescription = series_description
    ds.BodyPartExamined = "CHEST"
    ds.PresentationIntentType = "FOR PRESENTATION"
    # General Equipment
    ds.Manufacturer = _MANUFACTURER
    ds.ManufacturerModelName = manufacturer_model_name
    ds.SoftwareVersions = "1"
    # General Image + DX Image
    ds.InstanceNumber = int(instance_number)
    ds.PatientOrientation = ["L", "F"]  # PA: rows run to the patient's left, columns to the feet
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDate, ds.AcquisitionTime = date, time
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelIntensityRelationship = "LIN"
    # -1: higher stored values mean less X-ray intensity (bright bone); inverted data flips the sign
    ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME2" else 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
    ds.WindowCenter = _ds_str(center)
    ds.WindowWidth = _ds_str(width)  # no VOI LUT Function: LINEAR is its default, and OHIF 3.13 misread the value
    # DX Anatomy Imaged + DX Positioning
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = DicomSequence([_code("51185008", "SCT", "Chest")])
    ds.ViewPosition = "PA"
    ds.PositionerType = ""  # type 2: unknown (no positioner data for a phantom)
    ds.ViewCodeSequence = DicomSequence([_code("399348003", "SCT", "postero-anterior")])
    # DX Detector
    ds.DetectorType = detector_type  # DIRECT, SCINTILLATOR, STORAGE or FILM
    spacing = [_ds_str(v) for v in pixel_spacing]
    ds.ImagerPixelSpacing = spacing
    ds.PixelSpacing = spacing
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "equal to imager pixel spacing (no magnification)"
    # Acquisition Context
    ds.AcquisitionContextSequence = DicomSequence([])
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()

    path = Path(path)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path

"""Helpers shared by the DICOM writers: reading a source, code items, references, equipment, atomic saving."""

from __future__ import annotations

import datetime as _dt
import os
from importlib import metadata
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from bundle._files import atomic_path

MANUFACTURER = "adversarial-segmentation-bundle"
# CID 7202 Source Image Purpose of Reference: the source was the input of an image processing operation
SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
# CID 7005 Contributing Equipment Purpose of Reference
MODIFYING_EQUIPMENT = ("109103", "DCM", "Modifying Equipment")
# what every series written for an attack says of itself, in its Series Description (LO, at most 64 characters)
RESEARCH_MARK = "ADVERSARIAL RESEARCH, NOT FOR DIAGNOSIS"


def bundle_version() -> str:
    try:
        return metadata.version("adversarial-segmentation-bundle")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


def now() -> _dt.datetime:
    return _dt.datetime.now().replace(microsecond=0)


def research_description(kind: str) -> str:
    """``"<kind> - ADVERSARIAL RESEARCH, NOT FOR DIAGNOSIS"``, the Series Description of an attack's series.

    Raises:
        ValueError: the result would exceed the 64 characters of a Series Description (``kind`` over 22).
    """
    text = f"{kind} - {RESEARCH_MARK}"
    if not kind or len(text) > 64 or "\\" in text:
        raise ValueError(f"Argument kind should be 1-{64 - len(RESEARCH_MARK) - 3} characters without backslashes, "
                         f"got {kind!r}.")
    return text


def set_series_date_time(ds: Dataset, when: _dt.datetime) -> None:
    """Series Date and Time of a new series: when it was written (viewers sort and label series by them)."""
    ds.SeriesDate, ds.SeriesTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def read_dataset(path: str | os.PathLike) -> Dataset:
    """Read a DICOM file (never written to); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Source DICOM {path} does not exist.")
    try:
        return pydicom.dcmread(path)
    except Exception as e:  # pydicom raises many types for damaged files
        raise ValueError(f"{path} is not a readable DICOM file ({type(e).__name__}: {e}).") from e


# person names highdicom copies from a source and checks; it accepts one value only (PN has VM 1)
_COPIED_PERSON_NAMES = ("PatientName", "ReferringPhysicianName")


def single_valued_names(source: Dataset) -> dict[str, object]:
    """Give each multi-valued person name of ``source`` (in memory) its first value, for highdicom; return the
    original values, which :func:`restore_names` puts on the new object so that it names the patient exactly as
    its source does (a name with a backslash is several values to pydicom)."""
    originals = {}
    for keyword in _COPIED_PERSON_NAMES:
        value = source.get(keyword)
        if isinstance(value, pydicom.multival.MultiValue):
            originals[keyword] = value
            setattr(source, keyword, value[0] if len(value) else "")
    return originals


def restore_names(ds: Dataset, originals: dict[str, object]) -> None:
    """Put back the values :func:`single_valued_names` took from the source, on the object made from it."""
    for keyword, value in originals.items():
        setattr(ds, keyword, value)


def source_image_item(source: Dataset, *, spatial_locations_preserved: str | None = "YES") -> Dataset:
    """An item of Source Image Sequence pointing at ``source`` (purpose 121322)."""
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if spatial_locations_preserved is not None:
        item.SpatialLocationsPreserved = spatial_locations_preserved
    item.PurposeOfReferenceCodeSequence = [code_item(*SOURCE_PURPOSE)]
    return item


def contributing_equipment_item(description: str, when: _dt.datetime) -> Dataset:
    """An item of Contributing Equipment Sequence naming this bundle as the modifying equipment."""
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = [code_item(*MODIFYING_EQUIPMENT)]
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = MANUFACTURER
    item.SoftwareVersions = bundle_version()
    item.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")
    item.ContributionDescription = description[:64]
    return item


def ensure_charset(ds: Dataset, *texts: str) -> None:
    """Declare UTF-8 when a text we add is not ASCII and the dataset declares no character set."""
    if "SpecificCharacterSet" not in ds and not all(str(t).isascii() for t in texts):
        ds.SpecificCharacterSet = "ISO_IR 192"


def check_text(name: str, value: object, max_len: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"Argument {name} should be a str, got {type(value).__name__}.")
    if (not value and not allow_empty) or len(value) > max_len or "\\" in value:
        raise ValueError(f"Argument {name} should be a {'' if allow_empty else 'non-empty '}string of at most "
                         f"{max_len} characters without backslashes, got {value!r}.")
    return value


def check_series_number(series_number: object) -> int:
    if isinstance(series_number, bool) or not isinstance(series_number, int) or not 0 <= series_number < 2**31:
        raise ValueError(f"Argument series_number should be a non-negative int, got {series_number!r}.")
    return series_number


def check_uid(name: str, uid: object, *, optional: bool = False) -> str | None:
    if uid is None and optional:
        return None
    if not isinstance(uid, str) or not pydicom.uid.UID(uid).is_valid:
        raise ValueError(f"Argument {name} should be a valid DICOM UID string, got {uid!r}.")
    return uid


def save_dataset(ds: Dataset, out_path: str | os.PathLike, *, keep_transfer_syntax: bool = False) -> Path:
    """Write ``ds`` as a DICOM Part 10 file, atomically, with a fresh File Meta Information.

    The transfer syntax is Explicit VR Little Endian (the pixel data must then be native), or the one
    of ``ds.file_meta`` when ``keep_transfer_syntax``.
    """
    old_meta = getattr(ds, "file_meta", None)
    ts = old_meta.TransferSyntaxUID if keep_transfer_syntax and old_meta is not None else ExplicitVRLittleEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
    ds.file_meta = meta
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return out_path

"""Label maps as DICOM Segmentation instances (highdicom, BINARY), one segment per non-background class.

Segment codes (PS3.16 CID 7150 Segmentation Property Categories, CID 7151 Segmentation Property Types,
laterality from CID 244 as Segmented Property Type Modifier; SNOMED CT values as listed in pydicom's
``pydicom.sr.codedict``):

=================  =============================  ==================================  ==============
class name         category                       type                                modifier
=================  =============================  ==================================  ==============
right_lung         91723000 Anatomical Structure  39607008 Lung                       24028007 Right
left_lung          91723000 Anatomical Structure  39607008 Lung                       7771000 Left
heart              91723000 Anatomical Structure  80891009 Heart
right_clavicle     91723000 Anatomical Structure  51299004 Clavicle                   24028007 Right
left_clavicle      91723000 Anatomical Structure  51299004 Clavicle                   7771000 Left
optic_disc         91723000 Anatomical Structure  81016008 Optic disc structure
disc_rim           91723000 Anatomical Structure  81016008 Optic disc structure       (described as rim)
lesion             49755003 Morphologically       52988006 Lesion
                   Abnormal Structure
anything else      91723000 Anatomical Structure  91723000 Anatomical Structure       (label = name)
=================  =============================  ==================================  ==============

The optic cup has no concept in pydicom's SNOMED CT tables, so ``cup`` / ``optic_cup`` take the generic
row with the segment label and description naming it. A laterality modifier rather than the
pre-coordinated "right lung" concept follows the DICOM convention for paired structures in CID 7151.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bundle.io import _dicom
from bundle.io.deidentify import copy_deidentification_marks, resolve_uid_map
from bundle.io.deidentify import deidentify as _deidentify
from bundle.transforms import pixel_spacing

__all__ = ["write_seg", "segment_codes", "segment_colour", "SEG_SERIES_NUMBER", "SEGMENT_COLOURS"]

SEG_SERIES_NUMBER = 910
# Recommended Display CIELab Value of segment n: SEGMENT_COLOURS[(n - 1) % 7] (sRGB), the colour the overlay pictures
# of bundle.visualize draw class n in (tests/test_io_dicom.py checks that the two palettes stay one)
SEGMENT_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
_ANATOMY = codes.SCT.AnatomicalStructure
_RIGHT, _LEFT = codes.SCT.Right, codes.SCT.Left
_OPTIC_DISC = hd.sr.CodedConcept("81016008", "SCT", "Optic disc structure")
# normalised class name -> (category, type, laterality modifier, segment description)
_SEGMENT_CODES = {
    "right_lung": (_ANATOMY, codes.SCT.Lung, _RIGHT, "right lung"),
    "left_lung": (_ANATOMY, codes.SCT.Lung, _LEFT, "left lung"),
    "lung": (_ANATOMY, codes.SCT.Lung, None, "lung"),
    "heart": (_ANATOMY, codes.SCT.Heart, None, "heart"),
    "right_clavicle": (_ANATOMY, codes.SCT.Clavicle, _RIGHT, "right clavicle"),
    "left_clavicle": (_ANATOMY, codes.SCT.Clavicle, _LEFT, "left clavicle"),
    "clavicle": (_ANATOMY, codes.SCT.Clavicle, None, "clavicle"),
    "optic_disc": (_ANATOMY, _OPTIC_DISC, None, "optic disc"),
    "disc": (_ANATOMY, _OPTIC_DISC, None, "optic disc"),
    "disc_rim": (_ANATOMY, _OPTIC_DISC, None, "optic disc without the cup (neuroretinal rim)"),
    "cup": (_ANATOMY, _ANATOMY, None, "optic cup"),
    "optic_cup": (_ANATOMY, _ANATOMY, None, "optic cup"),
    "lesion": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion, None, "lesion"),
    "skin_lesion": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion, None, "skin lesion"),
}


def segment_codes(class_name: str) -> tuple:
    """``(category, type, laterality modifier or None, description)`` used for a class name (see module table)."""
    key = re.sub(r"[\s-]+", "_", class_name.strip().lower())
    return _SEGMENT_CODES.get(key, (_ANATOMY, _ANATOMY, None, class_name))


def segment_colour(segment_number: int) -> hd.color.CIELabColor:
    """The display colour of a segment (class index ``segment_number`` >= 1), as highdicom's CIELab value."""
    return hd.color.CIELabColor.from_string(SEGMENT_COLOURS[(segment_number - 1) % len(SEGMENT_COLOURS)])


def _place_on_projection(seg: Dataset, source: Dataset) -> None:
    """Give the SEG of an image without a Frame of Reference (DX, CR) the plane that viewers put that image in.

    OHIF 3.13 (cornerstone3D) draws a SEG only with a Pixel Measures item in the shared functional groups and an
    Image Orientation (Patient) in the SEG's plane; an image without one (a radiograph) sits for cornerstone3D in the
    plane ``1\\0\\0\\0\\1\\0`` at the origin, and a SEG in any other plane is refused ("orthogonal to the
    acquisition plane"). So the SEG gets its own Frame of Reference (one per source image, nothing else refers to
    it), that plane and position for every frame, and the source's pixel spacing with a nominal Slice Thickness of
    1 mm (a projection has none; highdicom reads Pixel Measures back only with one). It keeps the source's Patient
    Orientation, which says how the image really lies.
    """
    shared = seg.SharedFunctionalGroupsSequence[0]
    measures = Dataset()
    measures.PixelSpacing = pixel_spacing(source)
    measures.SliceThickness = 1
    shared.PixelMeasuresSequence = [measures]
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [orientation]
    for item in seg.PerFrameFunctionalGroupsSequence:
        position = Dataset()
        position.ImagePositionPatient = [0, 0, 0]
        item.PlanePositionSequence = [position]
    seg.FrameOfReferenceUID = generate_uid(entropy_srcs=[str(source.SOPInstanceUID), "projection plane"])
    seg.PositionReferenceIndicator = ""
    seg.PatientOrientation = source.get("PatientOrientation", "")


def _check_label_map(label_map: object, rows: int, cols: int, num_classes: int) -> np.ndarray:
    t = label_map
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    arr = np.asarray(t)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (rows, cols):
        raise ValueError(f"Argument label_map should have the source's native shape (Rows, Columns) = "
                         f"{(rows, cols)}, got {arr.shape}; resize model-grid labels with "
                         f"bundle.io.label_to_native first.")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise ValueError(f"Argument label_map should hold integer class indices, got dtype {arr.dtype}.")
    bad = np.unique(arr[(arr < 0) | (arr >= num_classes)])
    if bad.size:
        raise ValueError(f"Argument label_map holds values {bad[:10].tolist()} outside 0..{num_classes - 1} "
                         f"(the indices of class_names).")
    return arr.astype(np.uint8 if num_classes <= 256 else np.uint16)  # a copy: the caller's stays untouched


def _check_label_writer(class_names: Sequence[str], algorithm_name: str, algorithm_version: str,
                        series_description: str, series_instance_uid: str | None, sop_instance_uid: str | None,
                        series_number: int) -> list[str]:
    """The arguments every writer of a label map (SEG, SR) takes, checked; returns ``class_names`` as a list."""
    names = list(class_names) if not isinstance(class_names, str) else None
    if not names or len(names) < 2 or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"Argument class_names should list at least two non-empty names, background first, "
                         f"got {class_names!r}.")
    _dicom.check_text("algorithm_name", algorithm_name, 64)
    _dicom.check_text("algorithm_version", algorithm_version, 64)
    _dicom.check_text("series_description", series_description, 64)
    _dicom.check_uid("series_instance_uid", series_instance_uid, optional=True)
    _dicom.check_uid("sop_instance_uid", sop_instance_uid, optional=True)
    _dicom.check_series_number(series_number)
    return names


def _read_labelled_source(source_path: str | os.PathLike, label_map: object, num_classes: int,
                          uid_map: Callable[[str], str] | None) -> tuple[Dataset, np.ndarray, dict]:
    """The source dataset (de-identified with ``uid_map`` when given), the checked label map at its size, and its
    person names as :func:`bundle.io._dicom.restore_names` takes them."""
    source = _dicom.read_dataset(source_path)
    labels = _check_label_map(label_map, int(source.Rows), int(source.Columns), num_classes)
    if uid_map is not None:
        _deidentify(source, uid_map)
    return source, labels, _dicom.single_valued_names(source)


def _finish_derived(dataset: Dataset, source: Dataset, person_names: dict, uid_map: Callable[[str], str] | None,
                    out_path: str | os.PathLike, **save) -> Path:
    """Series Date / Time of writing, the source's person names, its de-identification marks; saved atomically."""
    _dicom.set_series_date_time(dataset, _dicom.now())
    _dicom.restore_names(dataset, person_names)
    if uid_map is not None:
        copy_deidentification_marks(source, dataset)
    return _dicom.save_dataset(dataset, out_path, **save)


def write_seg(
    source_path: str | os.PathLike,
    label_map: object,
    out_path: str | os.PathLike,
    *,
    class_names: Sequence[str],
    algorithm_name: str,
    algorithm_version: str,
    series_description: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = SEG_SERIES_NUMBER,
    content_label: str = "SEGMENTATION",
    content_description: str | None = None,
    deidentify: bool | Callable[[str], str] = False,
) -> Path:
    """Write a label map as a BINARY DICOM Segmentation of ``source_path``, atomically.

    One segment per class of ``class_names`` except index 0 (background); segment number = label
    value, so the three SEGs of a case (clean prediction, adversarial prediction, target) share one
    numbering and one colour per class (Recommended Display CIELab Value, :data:`SEGMENT_COLOURS`, the colours of
    the overlay pictures). Series Date / Time are the time of writing. Empty segments are kept (an all-zero frame). Each segment carries its SNOMED CT codes
    (module table), algorithm type AUTOMATIC and the algorithm identification (family 123110
    "Artificial Intelligence", CID 7162). The SEG joins the source's study and patient and references
    the source instance. The source file and ``label_map`` are only read.

    For a source without a Frame of Reference (DX, CR) the SEG carries Patient Orientation from the
    source and the plane geometry OHIF needs to draw it (see ``_place_on_projection``; docs/export.md).

    Args:
        source_path: the DICOM image segmented (the source radiograph, or the derived adversarial image).
        label_map: ``(Rows, Columns)`` (or ``(1, Rows, Columns)``) integer class indices in
            ``[0, len(class_names))`` at the source's native resolution.
        out_path: destination file; written atomically. Never derived from tag values.
        class_names: the task's class names, background first (e.g. ``configs/cxr.yaml``'s ``class_names``).
        algorithm_name, algorithm_version: the model that produced the labels (or the target generator).
        series_description: at most 64 characters, e.g. ``"ADVERSARIAL PREDICTION - RESEARCH"``.
        series_instance_uid, sop_instance_uid: generated when ``None``.
        series_number: Series Number of the SEG series.
        content_label: Content Label, at most 16 characters of ``A-Z 0-9 _ space``.
        content_description: at most 64 characters; ``series_description`` when ``None``.
        deidentify: ``False``; ``True`` or a :class:`bundle.io.UIDMap` to de-identify the source
            attributes copied into the SEG (see :func:`bundle.io.deidentify`).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    names = _check_label_writer(class_names, algorithm_name, algorithm_version, series_description,
                                series_instance_uid, sop_instance_uid, series_number)
    content_description = _dicom.check_text("content_description", content_description or series_description, 64)
    if not isinstance(content_label, str) or not re.fullmatch(r"[A-Z0-9_ ]{1,16}", content_label):
        raise ValueError(f"Argument content_label should be 1-16 characters of A-Z, 0-9, '_' or space, "
                         f"got {content_label!r}.")
    uid_map = resolve_uid_map(deidentify)
    source, labels, person_names = _read_labelled_source(source_path, label_map, len(names), uid_map)

    algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name, family=codes.cid7162.ArtificialIntelligence,
                                                   version=algorithm_version)
    descriptions, extras = [], []
    for number, name in enumerate(names[1:], start=1):
        category, prop_type, modifier, text = segment_codes(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=category,
            segmented_property_type=prop_type, algorithm_type="AUTOMATIC", algorithm_identification=algorithm,
            display_color=segment_colour(number)))
        extras.append((modifier, text))
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=labels, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number, sop_instance_uid=sop_instance_uid or generate_uid(), instance_number=1,
        manufacturer=_dicom.MANUFACTURER, manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version, device_serial_number=_dicom.bundle_version(),
        content_label=content_label, content_description=content_description, series_description=series_description,
        transfer_syntax_uid=ExplicitVRLittleEndian, omit_empty_frames=False)
    for item, (modifier, text) in zip(seg.SegmentSequence, extras):
        item.SegmentDescription = text[:64]
        if modifier is not None:
            mod = Dataset()
            mod.CodeValue, mod.CodingSchemeDesignator, mod.CodeMeaning = modifier.value, "SCT", modifier.meaning
            item.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [mod]
    if "FrameOfReferenceUID" not in seg:
        _place_on_projection(seg, source)
    return _finish_derived(seg, source, person_names, uid_map, out_path, keep_transfer_syntax=True)

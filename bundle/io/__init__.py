"""Writers (layer 8): adversarial DICOM derived from the source, DICOM SEG, DICOM SR of outlines, Secondary Capture
overlays, NIfTI / NRRD / PNG, the pixel mappings from the model grid back to the files, and de-identification.

Every writer writes atomically (nothing is left behind when it fails), only reads its inputs, takes
its output path from the caller (never from tag values) and, with ``deidentify=True`` or a
:class:`UIDMap`, applies the PS3.15 Basic Profile consistently across the objects of a case.
"""

from bundle.io._dicom import RESEARCH_MARK, research_description
from bundle.io.deidentify import UIDMap, deidentify, deidentify_file, is_deidentified
from bundle.io.dicom_derived import (
    ADVERSARIAL_SERIES_DESCRIPTION,
    DERIVATION_CODE,
    DERIVED_SERIES_NUMBER,
    write_derived_dicom,
)
from bundle.io.dicom_sr import SR_SERIES_NUMBER, label_outlines, write_contour_sr
from bundle.io.dicom_seg import SEG_SERIES_NUMBER, SEGMENT_COLOURS, segment_codes, segment_colour, write_seg
from bundle.io.pixels import (
    BEYOND_WINDOW,
    grid_blockiness,
    LabelToNatived,
    label_to_native,
    perturbation_to_stored,
    photo_perturbation_to_uint8,
    photo_to_uint8,
    stored_units_per_model_unit,
)
from bundle.io.png import write_png
from bundle.io.secondary_capture import SC_SERIES_NUMBER, write_secondary_capture
from bundle.io.volumes import orientation_matrix_lps, write_nifti, write_nrrd

__all__ = [
    "perturbation_to_stored", "BEYOND_WINDOW", "stored_units_per_model_unit", "photo_to_uint8",
    "photo_perturbation_to_uint8", "label_to_native", "LabelToNatived", "grid_blockiness",
    "write_derived_dicom", "write_seg", "write_contour_sr", "label_outlines", "write_secondary_capture", "write_nifti",
    "write_nrrd", "write_png", "SR_SERIES_NUMBER",
    "deidentify", "deidentify_file", "is_deidentified", "UIDMap", "segment_codes", "orientation_matrix_lps",
    "ADVERSARIAL_SERIES_DESCRIPTION", "DERIVATION_CODE", "DERIVED_SERIES_NUMBER", "SEG_SERIES_NUMBER",
    "SC_SERIES_NUMBER", "SEGMENT_COLOURS", "segment_colour", "research_description", "RESEARCH_MARK",
]

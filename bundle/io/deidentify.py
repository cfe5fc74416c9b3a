"""De-identification of the DICOM datasets this bundle writes (PS3.15 Annex E, Basic Profile).

:func:`deidentify` applies the Basic Application Level Confidentiality Profile (PS3.15 Table E.1-1)
to the attributes that radiographs, segmentations and secondary captures carry: patient identity,
physicians, institution, device identity, dates and times, free-text descriptions, request and
procedure-step references, private attributes, overlays and curves are removed or emptied, and
every instance UID is replaced through a deterministic :class:`UIDMap`, so that the derived image,
the segmentations and the overlay of one case (and the de-identified copy of its source) still sit
in one study and one patient after de-identification.

Descriptors the bundle itself adds *after* de-identification (series description, derivation
description of the attack) are new content, not patient information, and are kept.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID, generate_uid

from bundle.io import _dicom

__all__ = ["UIDMap", "deidentify", "deidentify_file", "is_deidentified", "resolve_uid_map",
           "copy_deidentification_marks", "BASIC_PROFILE_CODE", "RETAIN_UIDS_CODE"]

BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")  # CID 7050
RETAIN_UIDS_CODE = ("113110", "DCM", "Retain UIDs Option")  # CID 7050
_METHOD_TEXT = "PS3.15 E.1 Basic Profile; UIDs and patient ID replaced"  # LO: at most 64 characters

# PS3.15 Table E.1-1, Basic Profile column, restricted to attributes that projection radiographs,
# SEG and SC objects carry. "Z": zero length (Type 2 attributes); "X": remove. Patient Name and
# Patient ID ("Z" in the profile) get a keyed pseudonym instead (a permitted dummy value) so that all
# objects of a case stay with one patient (Patient Name: family name ANON, given name the pseudonym).
# Every UI attribute that is not a well-known DICOM UID is replaced ("U") by the UID map.
_EMPTY = (
    "PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID",
    "StudyDate", "StudyTime", "ContentDate", "ContentTime", "ContentCreatorName",
    "AcquisitionContextSequence",  # "X" in the profile but Type 2 in DX / CR: emptied to stay conformant
)
_REMOVE = (
    # patient
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientBirthTime", "PatientAge", "PatientSize", "PatientWeight",
    "PatientAddress", "PatientTelephoneNumbers", "MilitaryRank", "BranchOfService", "MedicalRecordLocator",
    "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments", "PatientReligiousPreference",
    "PatientSexNeutered", "PregnancyStatus", "SmokingStatus", "MedicalAlerts", "Allergies", "LastMenstrualDate",
    "CountryOfResidence", "RegionOfResidence", "PatientInsurancePlanCodeSequence", "ResponsiblePerson",
    "ResponsibleOrganization", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "PatientState",
    "ReferencedPatientSequence", "ReferencedPatientPhotoSequence",
    # visit, request, procedure step
    "IssuerOfAccessionNumberSequence", "AdmissionID", "ServiceEpisodeID", "AdmittingDiagnosesDescription",
    "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence", "RequestAttributesSequence",
    "RequestedProcedureID", "RequestedProcedureDescription", "ScheduledProcedureStepID",
    "ScheduledProcedureStepDescription", "ScheduledPerformingPhysicianName", "ScheduledStationName",
    "ScheduledProcedureStepLocation", "PerformedProcedureStepID", "PerformedProcedureStepDescription",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime", "PerformedStationName", "PerformedLocation",
    "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest", "ReasonForStudy",
    "ReasonForTheRequestedProcedure", "RequestingPhysician", "RequestingService", "RequestedContrastAgent",
    # physicians, operators, institution
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
    "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence", "PerformingPhysicianName",
    "PerformingPhysicianIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "ConsultingPhysicianName", "OperatorsName",
    "OperatorIdentificationSequence", "ReviewerName", "VerifyingObserverName", "VerifyingOrganization",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    # device identity
    "StationName", "DeviceSerialNumber", "DetectorID", "PlateID", "CassetteID", "GantryID",
    # dates and times that are not Type 1/2 in these IODs
    "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "InstanceCreationDate", "InstanceCreationTime", "DateOfLastCalibration", "TimeOfLastCalibration",
    "DateOfSecondaryCapture", "TimeOfSecondaryCapture", "ContributionDateTime", "ReviewDate", "ReviewTime",
    # free text and descriptors
    "StudyDescription", "SeriesDescription", "DerivationDescription", "ImageComments", "FrameComments",
    "ProtocolName", "AcquisitionComments", "TextComments",
    # history and signatures
    "OriginalAttributesSequence", "ModifiedAttributesSequence", "DigitalSignaturesSequence",
    "IconImageSequence",
)
_KEEP_UIDS = (
    "SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
    "ImplementationClassUID", "SOPClassesInStudy", "ReferencedSOPClassUIDInFile", "CodingSchemeUID",
    "ContextUID", "MappingResourceUID", "ContextGroupExtensionCreatorUID",
)


def _tags(keywords: tuple[str, ...]) -> frozenset[int]:
    tags = {tag_for_keyword(k) for k in keywords}
    if None in tags:  # a typo would silently leave an attribute in place
        raise RuntimeError(f"Unknown DICOM keywords in the de-identification table: "
                           f"{[k for k in keywords if tag_for_keyword(k) is None]}")
    return frozenset(tags)


_EMPTY_TAGS, _REMOVE_TAGS, _KEEP_UID_TAGS = _tags(_EMPTY), _tags(_REMOVE), _tags(_KEEP_UIDS)


class UIDMap:
    """Deterministic replacement of UIDs and identifiers, keyed by a secret.

    ``uid_map(old_uid)`` returns ``pydicom.uid.generate_uid(entropy_srcs=[secret, old_uid])``: the
    same old UID always gets the same new UID under the same secret (so the study, series and source
    references of every object written for a case agree), and without the secret the mapping cannot
    be inverted or recomputed.

    Args:
        secret: the key. ``None`` draws a random one (consistent within this object only); pass a fixed
            secret (kept out of the outputs) to get the same pseudonyms across runs and processes.
    """

    def __init__(self, secret: str | bytes | None = None) -> None:
        if secret is None:
            secret = secrets.token_hex(32)
        if isinstance(secret, bytes):
            secret = secret.hex()
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"Argument secret should be a non-empty str or bytes, got {type(secret).__name__}.")
        self._secret = secret

    def __call__(self, uid: str) -> str:
        return str(generate_uid(entropy_srcs=[self._secret, str(uid)]))

    def __repr__(self) -> str:  # never show the secret
        return "UIDMap(secret=<hidden>)"


_DEFAULT_MAP: UIDMap | None = None


def resolve_uid_map(deidentify: bool | Callable[[str], str]) -> Callable[[str], str] | None:
    """The UID map a writer's ``deidentify`` argument asks for.

    ``False`` gives ``None`` (no de-identification); a :class:`UIDMap` (or any deterministic callable
    ``str -> str``) is used as is; ``True`` gives one process-wide :class:`UIDMap` with a random
    secret, so all objects written by this process agree but a later run gets new pseudonyms.
    """
    global _DEFAULT_MAP
    if deidentify is False or deidentify is None:
        return None
    if deidentify is True:
        if _DEFAULT_MAP is None:
            _DEFAULT_MAP = UIDMap()
        return _DEFAULT_MAP
    if callable(deidentify):
        return deidentify
    raise TypeError(f"Argument deidentify should be a bool or a UIDMap, got {type(deidentify).__name__}.")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def is_deidentified(ds: Dataset) -> bool:
    """True when ``ds`` was de-identified with the Basic Profile and its UIDs were replaced.

    Such a dataset (for example a derived image this bundle wrote with ``deidentify=True``) is used as
    a source without replacing its UIDs and pseudonyms a second time, which keeps objects derived
    from it in the same de-identified study.
    """
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        return False
    codes = {str(item.get("CodeValue", "")) for item in ds.get("DeidentificationMethodCodeSequence", [])}
    return BASIC_PROFILE_CODE[0] in codes and RETAIN_UIDS_CODE[0] not in codes


def _pseudonym(uid_map: Callable[[str], str], kind: str, value: str) -> str:
    digest = hashlib.sha256(uid_map(f"{kind}:{value}").encode("ascii")).hexdigest()
    return f"ANON-{digest[:16].upper()}"


def _is_overlay_or_curve(tag: int) -> bool:
    group = tag >> 16
    return (0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF) and group % 2 == 0


def _clean(ds: Dataset, uid_map: Callable[[str], str] | None) -> None:
    """Apply the removal / emptying table (and the UID map when given) to ``ds`` and its sequences."""
    for elem in list(ds):
        tag = int(elem.tag)
        if _is_overlay_or_curve(tag) or tag in _REMOVE_TAGS:
            del ds[elem.tag]
        elif tag in _EMPTY_TAGS:
            ds[elem.tag].value = [] if elem.VR == "SQ" else ""
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, uid_map)
        elif elem.VR == "UI" and uid_map is not None and tag not in _KEEP_UID_TAGS and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            # keep well-known DICOM UIDs (SOP classes, transfer syntaxes, coding schemes)
            new = [v if UID(v).name != str(v) else uid_map(str(v)) for v in values]
            elem.value = new if elem.VM > 1 else new[0]


def deidentify(ds: Dataset, uid_map: Callable[[str], str]) -> Dataset:
    """De-identify ``ds`` in place following the PS3.15 Basic Application Level Confidentiality Profile.

    Removes or empties the attributes of the profile (patient, physicians, institution, device
    identity, dates, descriptions, requests, private attributes, overlays, curves), replaces Patient
    ID and Patient Name by a keyed pseudonym and every instance UID (Study, Series, SOP Instance,
    Frame of Reference, referenced instances, ...) by ``uid_map(uid)``, and records what was done:
    Patient Identity Removed ``YES``, De-identification Method and its code sequence (113100, Basic
    Application Confidentiality Profile), Longitudinal Temporal Information Modified ``REMOVED``.

    A dataset already de-identified this way (:func:`is_deidentified`) keeps its UIDs and pseudonyms.

    Args:
        ds: the dataset to change (pass a copy to keep the original).
        uid_map: deterministic ``str -> str`` map, normally a :class:`UIDMap`; the same map must be
            used for every object of a case.

    Returns:
        ``ds`` itself.

    Raises:
        ValueError: ``ds`` declares Burned In Annotation ``YES``; the Basic Profile then requires the
            Clean Pixel Data Option, which this bundle does not implement.
    """
    if not callable(uid_map):
        raise TypeError(f"Argument uid_map should be callable (a UIDMap), got {type(uid_map).__name__}.")
    if str(ds.get("BurnedInAnnotation", "NO")).upper() == "YES":
        raise ValueError("The source declares BurnedInAnnotation YES; its pixels may show patient identity, "
                         "which the Basic Profile requires to be cleaned. Refusing to write a de-identified copy.")
    already = is_deidentified(ds)
    if not already:
        pid = str(ds.get("PatientID", ""))
        ds.PatientID = _pseudonym(uid_map, "PatientID", pid)
        ds.PatientName = f"ANON^{ds.PatientID[5:]}"
    ds.remove_private_tags()
    _clean(ds, None if already else uid_map)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _METHOD_TEXT
    ds.DeidentificationMethodCodeSequence = [_code(*BASIC_PROFILE_CODE)]
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return ds


def copy_deidentification_marks(source: Dataset, target: Dataset) -> None:
    """Copy Patient Identity Removed and the de-identification method attributes of ``source`` to ``target``."""
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                    "LongitudinalTemporalInformationModified"):
        if keyword in source:
            target[keyword] = source[keyword]


def deidentify_file(source_path: str | os.PathLike, out_path: str | os.PathLike,
                    uid_map: Callable[[str], str]) -> Path:
    """Write a de-identified copy of the DICOM file ``source_path`` to ``out_path``, atomically.

    Pixel data and transfer syntax are kept as they are; with the same ``uid_map`` the copy lands in
    the same de-identified study as the objects the writers produce with ``deidentify=uid_map``, so a
    PACS shows the de-identified source next to its adversarial version. The source file is only read.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    ds = _dicom.read_dataset(source_path)
    deidentify(ds, uid_map)
    return _dicom.save_dataset(ds, out_path, keep_transfer_syntax=True)


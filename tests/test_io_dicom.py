"""DICOM writers of bundle.io: derived adversarial image, SEG, Secondary Capture, de-identification.

Every DICOM written here goes through dciodvfy (dicom3tools) and must produce no "Error" line.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Resize
from matplotlib.path import Path as MplPath
from PIL import Image
from scipy import ndimage
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless, generate_uid

import bundle.io as bio
from bundle.data.cxr import CXR_CLASSES
from bundle.data.dicom_writer import write_dx
from bundle.transforms import read_xray_dicom
from bundle.visualize import COLOURS

ROWS, COLS = 64, 80          # native grid of the test radiographs
MODEL = (32, 32)             # model grid: factors 2 (rows) and 2.5 (columns), integer and not
PHOTOMETRICS = ("MONOCHROME2", "MONOCHROME1")
PHI = {"PatientName": "Doe^Jane", "PatientID": "../../x", "PatientBirthDate": "19700101",
       "AccessionNumber": "ACC-31337", "InstitutionName": "Saint Nowhere Hospital",
       "ReferringPhysicianName": "Smith^Referrer", "OperatorsName": "Operator^Olga"}
SECRET = "test-secret"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _source_pixels(seed: int = 0) -> np.ndarray:
    """A smooth 12-bit image inside 500..3500 (well inside the full-range window used below)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    base = 2000 + 800 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    return np.clip(base + rng.normal(0, 40, (ROWS, COLS)), 500, 3500).round().astype(np.uint16)


def _write_source(path: Path, photometric: str) -> Path:
    write_dx(path, _source_pixels(), photometric=photometric, patient_id=PHI["PatientID"],
             patient_name=PHI["PatientName"], patient_birth_date=PHI["PatientBirthDate"],
             accession_number=PHI["AccessionNumber"], window=(2048.0, 4096.0), pixel_spacing=(0.2, 0.25))
    ds = pydicom.dcmread(path)  # identifying attributes write_dx does not write, and a private tag
    ds.InstitutionName = PHI["InstitutionName"]
    ds.ReferringPhysicianName = PHI["ReferringPhysicianName"]
    ds.OperatorsName = PHI["OperatorsName"]
    block = ds.private_block(0x0011, "TEST PRIVATE", create=True)
    block.add_new(0x01, "LO", PHI["PatientName"])
    ds.save_as(path, enforce_file_format=True)
    return path


def _jpeg_baseline_copy(source: Path, out: Path) -> Path:
    """An 8-bit, JPEG baseline (lossy) version of ``source``."""
    ds = pydicom.dcmread(source)
    pixels = (ds.pixel_array >> 4).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=95)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.WindowCenter, ds.WindowWidth = "128", "256"
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(out, enforce_file_format=True)
    return out


def _compressed_copy(source: Path, out: Path, syntax) -> Path:
    ds = pydicom.dcmread(source)
    ds.compress(syntax, generate_instance_uid=False)
    ds.save_as(out, enforce_file_format=True)
    return out


def _to_model(path: Path, bounds: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """The CXR preprocessing of the configs: read_xray_dicom, Resized(mode="area"), display [0, 1] -> ``bounds``."""
    image, _ = read_xray_dicom(path)
    low, high = bounds
    return low + (high - low) * Resize(MODEL, mode="area")(torch.from_numpy(image)[None])


def _labels(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = np.zeros((ROWS, COLS), np.int64)
    label[8:40, 6:34], label[8:40, 46:74], label[30:52, 30:55] = 1, 2, 3
    label[4:8, 10:30], label[4:8, 50:70] = 4, 5
    label[rng.random((ROWS, COLS)) < 0.02] = 0
    return label


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sources")
    out = {p: _write_source(root / f"{p}.dcm", p) for p in PHOTOMETRICS}
    out["rle"] = _compressed_copy(out["MONOCHROME2"], root / "rle.dcm", RLELossless)
    out["j2k"] = _compressed_copy(out["MONOCHROME1"], root / "j2k.dcm", JPEG2000Lossless)
    out["jpegls"] = _compressed_copy(out["MONOCHROME2"], root / "jpegls.dcm", JPEGLSLossless)
    out["jpeg"] = _jpeg_baseline_copy(out["MONOCHROME2"], root / "jpeg.dcm")
    return out


@pytest.fixture(scope="module")
def written(sources, tmp_path_factory) -> dict:
    """Everything a CXR case exports, plain and de-identified, with the input hashes before and after."""
    out_dir = tmp_path_factory.mktemp("out") / "case"
    hashes = {k: _sha(p) for k, p in sources.items()}
    uid_map = bio.UIDMap(SECRET)
    files, arrays = {}, {}
    for key, src in sources.items():
        clean = _to_model(src)
        adv = clean + 0.03 * torch.sign(torch.randn(clean.shape, generator=torch.Generator().manual_seed(1)))
        adv = adv.clamp(-1, 1)
        stored = bio.perturbation_to_stored(src, clean, adv)
        arrays[key] = (clean.clone(), adv.clone(), stored.copy())
        for deid in (False, True):
            tag = f"{key}{'_deid' if deid else ''}"
            flag = uid_map if deid else False
            files[f"adv_{tag}"] = bio.write_derived_dicom(
                src, stored, out_dir / f"adv_{tag}.dcm", derivation_description="PGD eps=0.03 steps=1 (test)",
                series_instance_uid=generate_uid(), deidentify=flag)
            if key not in PHOTOMETRICS:
                continue
            for i, name in enumerate(("clean", "adv", "target")):
                seg_src = files[f"adv_{tag}"] if name == "adv" else src  # adversarial prediction: of the adv image
                files[f"seg_{name}_{tag}"] = bio.write_seg(
                    seg_src, _labels(i), out_dir / f"seg_{name}_{tag}.dcm", class_names=CXR_CLASSES,
                    algorithm_name="cxr-unet", algorithm_version="0.1", series_description=f"{name.upper()} LABELS",
                    content_label=name.upper(), deidentify=flag)
                files[f"sr_{name}_{tag}"] = bio.write_contour_sr(
                    seg_src, _labels(i), out_dir / f"sr_{name}_{tag}.dcm", class_names=CXR_CLASSES,
                    algorithm_name="cxr-unet", algorithm_version="0.1", series_description=f"{name.upper()} OUTLINES",
                    deidentify=flag)
            rgb = np.random.default_rng(3).integers(0, 256, (32, 40, 3), dtype=np.uint8)
            files[f"sc_{tag}"] = bio.write_secondary_capture(
                src, rgb, out_dir / f"sc_{tag}.dcm", series_instance_uid=generate_uid(),
                series_description="OVERLAY - RESEARCH", deidentify=flag)
        if key in PHOTOMETRICS:
            files[f"copy_{key}_deid"] = bio.deidentify_file(src, out_dir / f"copy_{key}_deid.dcm", uid_map)
    return {"files": files, "arrays": arrays, "hashes_before": hashes,
            "hashes_after": {k: _sha(p) for k, p in sources.items()}, "out_dir": out_dir}


DICOM_KEYS = ([f"adv_{k}{d}" for k in (*PHOTOMETRICS, "rle", "j2k", "jpegls", "jpeg") for d in ("", "_deid")]
              + [f"{kind}_{p}{d}" for p in PHOTOMETRICS for d in ("", "_deid")
                 for kind in ("seg_clean", "seg_adv", "seg_target", "sr_clean", "sr_adv", "sr_target", "sc")]
              + [f"copy_{p}_deid" for p in PHOTOMETRICS])


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian package dicom3tools) is not installed")
@pytest.mark.parametrize("key", DICOM_KEYS)
def test_dciodvfy_reports_no_error(written, key):
    assert _dciodvfy_errors(written["files"][key]) == []


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian package dicom3tools) is not installed")
@pytest.mark.parametrize("key", [k for k in DICOM_KEYS if k.startswith("sr_")])
def test_sr_reports_give_dciodvfy_no_warning_either(written, key):
    """None at all; de-identified, only the three that every de-identified object gets (PS3.15 empties Study Date,
    Time and ID, which a DICOMDIR would index)."""
    run = subprocess.run(["dciodvfy", str(written["files"][key])], capture_output=True, text=True, timeout=60)
    found = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith(("Error", "Warning"))]
    expected = [f"Warning - Missing attribute or value that would be needed to build DICOMDIR - Study {what}"
                for what in ("Date", "Time", "ID")] if key.endswith("_deid") else []
    assert found == expected


def test_every_expected_object_written_and_nothing_else(written):
    files = {p.name for p in written["out_dir"].rglob("*")}
    assert files == {f"{k}.dcm" for k in DICOM_KEYS}  # no partial files, no path from PatientID "../../x"
    assert not any(p.name == "x" for p in written["out_dir"].parents[1].rglob("*"))


def test_inputs_are_not_modified(written, sources):
    assert written["hashes_before"] == written["hashes_after"]


@pytest.mark.parametrize("key", ["MONOCHROME2", "MONOCHROME1", "rle", "j2k", "jpegls", "jpeg"])
def test_zero_perturbation_gives_the_source_pixels_back(sources, key):
    clean = _to_model(sources[key])
    stored = bio.perturbation_to_stored(sources[key], clean, clean.clone())
    source = pydicom.dcmread(sources[key]).pixel_array
    assert stored.dtype == source.dtype
    np.testing.assert_array_equal(stored, source)


@pytest.mark.parametrize("key", ["MONOCHROME2", "MONOCHROME1", "rle", "j2k", "jpegls"])
def test_perturbation_survives_the_file_within_rounding(written, key):
    """Read back through the bundle's preprocessing, the written image carries the model-domain perturbation."""
    clean, adv, _ = written["arrays"][key]
    back = _to_model(written["files"][f"adv_{key}"])
    _, meta = read_xray_dicom(written["files"][f"adv_{key}"])
    two_stored_units = 2.0 / abs(bio.stored_units_per_model_unit(meta))
    assert float((back - clean).abs().max()) > 0.02  # the perturbation is there ...
    assert float((back - adv).abs().max()) < two_stored_units  # ... and equal to the in-memory one


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_perturbation_in_a_narrower_model_domain_survives_the_file(sources, tmp_path, photometric):
    """A run with --intensity_bounds "[-0.25, 0.25]" sees a quarter of the contrast: the same model-unit perturbation
    is four times as many stored units, and reads back as itself through that run's preprocessing."""
    bounds = (-0.25, 0.25)
    clean = _to_model(sources[photometric], bounds)
    adv = clean + 0.01 * torch.sign(torch.randn(clean.shape, generator=torch.Generator().manual_seed(2)))
    stored = bio.perturbation_to_stored(sources[photometric], clean, adv, bounds=bounds)
    path = bio.write_derived_dicom(sources[photometric], stored, tmp_path / "a.dcm", derivation_description="narrow",
                                   series_instance_uid=generate_uid())
    _, meta = read_xray_dicom(path)
    factor = bio.stored_units_per_model_unit(meta, bounds)
    assert factor == pytest.approx(4 * bio.stored_units_per_model_unit(meta))
    assert float((_to_model(path, bounds) - adv).abs().max()) < 2.0 / abs(factor)
    with pytest.raises(ValueError, match=r"Argument bounds should be \(low, high\) of the model domain with low < high"):
        bio.perturbation_to_stored(sources[photometric], clean, adv, bounds=(0.25, -0.25))


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_perturbation_survives_where_the_window_clips_the_source(tmp_path, photometric):
    """A window narrower than the image (real CRs and a fifth of the CXR phantoms have one) shows the pixels beyond
    it at its edges, and the attack perturbs them from there: the file has to carry that too. Writing the source
    value plus the perturbation lost it there (on such pixels the mean error was 0.016 of a 0.03 perturbation, and
    4 of 20 CXR test phantoms lost up to a tenth of the heart symbol's IoU through the file)."""
    src = tmp_path / "narrow.dcm"
    write_dx(src, _source_pixels(), photometric=photometric, patient_id="P1", patient_name="Window^Narrow",
             window=(2000.0, 800.0))
    clean = _to_model(src)
    at_edge = clean.abs() > 0.999
    assert 0.2 < float(at_edge.float().mean()) < 0.4  # the window clips about a quarter of the model pixels
    np.testing.assert_array_equal(bio.perturbation_to_stored(src, clean, clean.clone()), pydicom.dcmread(src).pixel_array)
    adv = (clean + 0.03 * torch.sign(torch.randn(clean.shape, generator=torch.Generator().manual_seed(1)))).clamp(-1, 1)
    path = bio.write_derived_dicom(src, bio.perturbation_to_stored(src, clean, adv), tmp_path / "adv.dcm",
                                   derivation_description="narrow window", series_instance_uid=generate_uid())
    error = (_to_model(path) - adv).abs()
    assert float(error[at_edge].mean()) < 0.004  # measured 0.0022; what is left sits where a bin is only partly clipped
    assert float(error.mean()) < 0.003  # measured 0.0017 (0.0062 before)
    # "keep": every pixel starts from its stored value, so the image stays natural under any window
    source = pydicom.dcmread(src).pixel_array.astype(np.float64)
    kept = bio.perturbation_to_stored(src, clean, adv, beyond_window="keep")
    edged = bio.perturbation_to_stored(src, clean, adv)
    assert np.abs(kept - source).max() < np.abs(edged - source).max() / 2
    display, _ = read_xray_dicom(src)
    inside = (display > 0) & (display < 1)  # the pixels the window does not clip are written the same either way
    np.testing.assert_array_equal(kept[inside], edged[inside])
    with pytest.raises(ValueError, match=r"Argument beyond_window should be one of edge, keep, got 'clip'"):
        bio.perturbation_to_stored(src, clean, adv, beyond_window="clip")


def test_bilinear_mode_reproduces_a_smooth_perturbation(sources, tmp_path):
    src = sources["MONOCHROME2"]
    clean = _to_model(src)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, MODEL[0]), torch.linspace(0, 1, MODEL[1]), indexing="ij")
    adv = clean + 0.05 * torch.sin(3.0 * yy + 2.0 * xx)[None]
    stored = bio.perturbation_to_stored(src, clean, adv, upsample="bilinear")
    path = bio.write_derived_dicom(src, stored, tmp_path / "a.dcm", derivation_description="smooth",
                                   series_instance_uid=generate_uid())
    _, meta = read_xray_dicom(path)
    two_stored_units = 2.0 / abs(bio.stored_units_per_model_unit(meta))
    assert float((_to_model(path) - adv)[..., 1:-1, 1:-1].abs().max()) < two_stored_units


def test_written_perturbation_shows_no_blocks_of_the_model_grid(tmp_path):
    """1024 -> 256 in small: a factor-4 native grid. Pixel replication (the old writer, ``area_inverse``) leaves the
    perturbation constant inside 4x4 blocks; the default writes it smooth across the block borders, with most of its
    energy below the model grid's Nyquist frequency, and the file still reads back as the attacked model input."""
    src = write_dx(tmp_path / "src.dcm", np.full((128, 128), 2000, np.uint16), window=(2048.0, 4096.0),
                   patient_id="BLOCKS", patient_name="Phantom^Blocks")
    model = Resize((32, 32), mode="area")(torch.from_numpy(read_xray_dicom(src)[0])[None]) * 2.0 - 1.0
    adv = model + 0.03 * torch.sign(torch.randn(model.shape, generator=torch.Generator().manual_seed(4)))
    source = pydicom.dcmread(src).pixel_array.astype(np.float64)
    blocks = {mode: bio.grid_blockiness(bio.perturbation_to_stored(src, model, adv, upsample=mode) - source, (32, 32))
              for mode in ("smooth", "area_inverse")}
    assert blocks["area_inverse"]["within"] == 0 and blocks["area_inverse"]["high_frequency"] > 0.3
    assert blocks["smooth"]["ratio"] < 2.5 and blocks["smooth"]["high_frequency"] < 0.2
    stored = bio.perturbation_to_stored(src, model, adv)
    assert bio.grid_blockiness(stored - source, (32, 32)) == blocks["smooth"]  # the default
    back = Resize((32, 32), mode="area")(torch.from_numpy(read_xray_dicom(
        bio.write_derived_dicom(src, stored, tmp_path / "adv.dcm", derivation_description="smooth",
                                series_instance_uid=generate_uid()))[0])[None]) * 2.0 - 1.0
    assert float((back - adv).abs().max()) < 2.0 / 2047.5  # within two stored units of the in-memory input


def test_monochrome1_perturbation_has_the_opposite_sign_in_stored_values(sources):
    deltas = {}
    for photometric in PHOTOMETRICS:
        clean = _to_model(sources[photometric])
        stored = bio.perturbation_to_stored(sources[photometric], clean, clean + 0.02)  # brighter everywhere
        deltas[photometric] = stored.astype(np.int64) - pydicom.dcmread(sources[photometric]).pixel_array
    assert (deltas["MONOCHROME2"] > 0).all() and (deltas["MONOCHROME1"] < 0).all()
    np.testing.assert_array_equal(deltas["MONOCHROME2"], -deltas["MONOCHROME1"])


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_derived_image_attributes(written, sources, photometric):
    src = pydicom.dcmread(sources[photometric])
    ds = pydicom.dcmread(written["files"][f"adv_{photometric}"])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == src.SOPClassUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert (ds.PatientID, str(ds.PatientName)) == (src.PatientID, str(src.PatientName))
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.SeriesDescription == bio.ADVERSARIAL_SERIES_DESCRIPTION
    assert ds.DerivationDescription.startswith("PGD eps=0.03")
    code = ds.DerivationCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113042", "DCM")
    ref = ds.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    for keyword in ("PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept",
                    "PresentationLUTShape", "PixelSpacing", "LossyImageCompression", "InstitutionName"):
        assert ds[keyword].value == src[keyword].value, keyword
    np.testing.assert_array_equal(ds.pixel_array, written["arrays"][photometric][2])


@pytest.mark.parametrize("key,syntax,lossy", [("rle", RLELossless, "00"), ("j2k", JPEG2000Lossless, "00"),
                                              ("jpegls", JPEGLSLossless, "00"), ("jpeg", JPEGBaseline8Bit, "01")])
def test_compressed_sources_are_decoded_and_derived_copies_are_uncompressed(written, sources, key, syntax, lossy):
    src = pydicom.dcmread(sources[key])
    assert src.file_meta.TransferSyntaxUID == syntax
    if key != "jpeg":  # lossless: the decoded pixels are the original ones
        original = "MONOCHROME1" if key == "j2k" else "MONOCHROME2"
        np.testing.assert_array_equal(src.pixel_array, pydicom.dcmread(sources[original]).pixel_array)
    ds = pydicom.dcmread(written["files"][f"adv_{key}"])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert not ds["PixelData"].is_undefined_length
    assert ds.LossyImageCompression == lossy
    assert (ds.BitsStored, ds.PhotometricInterpretation) == (src.BitsStored, src.PhotometricInterpretation)
    np.testing.assert_array_equal(ds.pixel_array, written["arrays"][key][2])


def test_the_export_decodes_a_compressed_source_once(sources, tmp_path, monkeypatch):
    """A compressed CR is slow to decode (pydicom-data's JPEG 2000 RG1_J2KR: 0.4 s on an idle 2-core machine, 1.2 s on
    a busy one, against 2.6 s for the attack); the export of one case decoded its source four times. Same files."""
    from pydicom.pixels.decoders.base import Decoder

    from bundle.handlers.clinical_export import ClinicalExporter

    clean = _to_model(sources["j2k"])
    adv = (clean + 0.03 * torch.sign(torch.randn(clean.shape, generator=torch.Generator().manual_seed(4)))).clamp(-1, 1)
    label = torch.from_numpy(_labels(0))[None]
    small = Resize(MODEL, mode="nearest")(label).long()
    out = {"image": clean[None], "adv": adv[None], "label": small[None], "clean_pred": small[None],
           "adv_pred": small[None], "target": small[None]}
    decoded = []
    as_array = Decoder.as_array
    monkeypatch.setattr(Decoder, "as_array", lambda self, *a, **k: decoded.append(self.UID) or as_array(self, *a, **k))
    exporter = ClinicalExporter(tmp_path, CXR_CLASSES, "test_attack", (-1.0, 1.0), preprocessing=None)
    (tmp_path / "case").mkdir()
    adv_path, delta, _ = exporter._export_dicom(out, 0, "case", sources["j2k"], tmp_path / "case")
    assert decoded.count(JPEG2000Lossless) == 1
    expected = bio.perturbation_to_stored(sources["j2k"], clean, adv)
    np.testing.assert_array_equal(pydicom.dcmread(adv_path).pixel_array, expected)
    np.testing.assert_array_equal(delta, expected - pydicom.dcmread(sources["j2k"]).pixel_array.astype(np.float64))


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_seg_reads_back_with_highdicom_equal_to_the_label_maps(written, sources, photometric):
    src = pydicom.dcmread(sources[photometric])
    for i, name in enumerate(("clean", "adv", "target")):
        seg = hd.seg.segread(written["files"][f"seg_{name}_{photometric}"])
        ref = pydicom.dcmread(written["files"][f"adv_{photometric}"]) if name == "adv" else src
        assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientID == src.PatientID
        assert seg.get_segment_numbers() == [1, 2, 3, 4, 5]
        labels = [seg.get_segment_description(n).SegmentLabel for n in range(1, 6)]
        assert labels == list(CXR_CLASSES[1:])
        lung = seg.get_segment_description(1)
        lung_type = lung.SegmentedPropertyTypeCodeSequence[0]
        assert lung_type.CodeValue == "39607008"  # lung
        assert lung_type.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"  # right
        assert lung.SegmentAlgorithmType == "AUTOMATIC" and lung.SegmentAlgorithmName == "cxr-unet"
        pixels = seg.get_pixels_by_source_instance([ref.SOPInstanceUID], combine_segments=True)
        np.testing.assert_array_equal(pixels[0], _labels(i))


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_new_series_have_colours_dates_and_no_misread_attributes(written, sources, photometric):
    """One CIELab colour per class, the same in the three SEGs of a case and in the overlay pictures; a Series Date
    and Time on every object written (viewers sort and label series by them; Orthanc Explorer files them under ?)."""
    assert bio.SEGMENT_COLOURS == COLOURS
    for name in ("clean", "adv", "target"):
        seg = pydicom.dcmread(written["files"][f"seg_{name}_{photometric}"])
        colours = [tuple(item.RecommendedDisplayCIELabValue) for item in seg.SegmentSequence]
        assert colours == [hd.color.CIELabColor.from_string(COLOURS[n]).value for n in range(5)]
        # what OHIF 3.13 needs to draw a SEG over a radiograph: shared pixel measures, the plane cornerstone3D puts
        # an image without patient geometry in, a position per frame (docs/export.md, "Viewers")
        shared = seg.SharedFunctionalGroupsSequence[0]
        assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.2, 0.25]
        assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert {tuple(float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient)
                for f in seg.PerFrameFunctionalGroupsSequence} == {(0.0, 0.0, 0.0)}
        assert "FrameOfReferenceUID" in seg and "FrameOfReferenceUID" not in pydicom.dcmread(sources[photometric])
    for kind in ("adv", "seg_clean", "seg_adv", "seg_target", "sr_clean", "sr_adv", "sr_target", "sc"):
        for deid in ("", "_deid"):
            ds = pydicom.dcmread(written["files"][f"{kind}_{photometric}{deid}"])
            assert len(ds.SeriesDate) == 8 and len(ds.SeriesTime) >= 6, kind
    assert "VOILUTFunction" not in pydicom.dcmread(sources[photometric])  # LINEAR is the default: not written


def _pieces(mask: np.ndarray) -> list[np.ndarray]:
    """The 4-connected pieces of a mask, their holes filled, largest first (the background 8-connected: a pixel
    that touches the outside at a corner is no hole)."""
    pieces, n = ndimage.label(mask)
    filled = [ndimage.binary_fill_holes(pieces == k, structure=np.ones((3, 3))) for k in range(1, n + 1)]
    return sorted(filled, key=lambda piece: -int(piece.sum()))


def _inside(outline: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Pixels whose centre lies inside a closed outline in DICOM pixel coordinates."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    return MplPath(outline).contains_points(centres).reshape(rows, cols)


def test_label_outlines_trace_the_pixel_edges_of_each_piece():
    """Outer outlines only (a hole is no outline), diagonal neighbours are two pieces, the vertices are pixel corners
    of the boundary, and without simplification the outline encloses exactly the piece with its holes."""
    mask = np.zeros((12, 14), bool)
    mask[1:7, 1:7] = True
    mask[3:5, 3:5] = False          # a hole
    mask[8, 9] = mask[9, 10] = True  # touching at a corner only
    mask[2:5, 9:13] = True
    mask[4, 9:11] = False            # a notch: an L shape
    outlines = bio.label_outlines(mask, tolerance=0.0)
    assert [len(o) for o in outlines] == [5, 7, 5, 5]
    np.testing.assert_array_equal(outlines[0], [[1, 1], [7, 1], [7, 7], [1, 7], [1, 1]])
    pieces = _pieces(mask)
    for outline, piece in zip(outlines, pieces):
        np.testing.assert_array_equal(_inside(outline, *mask.shape), piece)
    assert bio.label_outlines(np.zeros((4, 4))) == []
    assert [len(o) for o in bio.label_outlines(mask, tolerance=0.0, min_pixels=2)] == [5, 7]
    rng = np.random.default_rng(0)
    blob = ndimage.binary_opening(ndimage.gaussian_filter(rng.random((60, 70)), 4) > 0.5)
    for tolerance, iou in ((0.0, 1.0), (0.5, 0.95)):
        for outline, piece in zip(bio.label_outlines(blob, tolerance=tolerance), _pieces(blob)):
            assert np.all(outline == outline.round()) and np.all(outline[0] == outline[-1])
            drawn = _inside(outline, *blob.shape)
            assert (drawn & piece).sum() / (drawn | piece).sum() >= iou


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_sr_reads_back_with_highdicom_as_the_outlines_of_the_label_maps(written, sources, photometric):
    """One TID 1410 group per outline: a closed POLYLINE on the segmented image, the class's codes as finding type
    and site (laterality as the site's modifier), the area in mm2 of the piece with its holes, an identifier."""
    src = pydicom.dcmread(sources[photometric])
    for i, name in enumerate(("clean", "adv", "target")):
        sr = hd.sr.srread(written["files"][f"sr_{name}_{photometric}"])
        ref = pydicom.dcmread(written["files"][f"adv_{photometric}"]) if name == "adv" else src
        assert sr.StudyInstanceUID == src.StudyInstanceUID and sr.PatientID == src.PatientID
        assert sr.SeriesDescription == f"{name.upper()} OUTLINES" and sr.SeriesNumber == bio.SR_SERIES_NUMBER
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        groups = sr.content.get_planar_roi_measurement_groups()
        expected = []
        for number, class_name in enumerate(CXR_CLASSES[1:], start=1):
            mask = _labels(i) == number
            pieces = _pieces(mask)
            assert len(bio.label_outlines(mask)) == len(pieces)
            expected += [(class_name, k, outline, piece) for k, (outline, piece)
                         in enumerate(zip(bio.label_outlines(mask), pieces), start=1)]
        assert len(groups) == len(expected)
        for group, (class_name, k, outline, piece) in zip(groups, expected):
            _, prop_type, modifier, _ = bio.segment_codes(class_name)
            assert group.tracking_identifier == f"{class_name} {k}"
            assert group.finding_type.value == prop_type.value
            site = group.finding_sites[0]
            assert site.value.value == prop_type.value
            assert (site.laterality.value if site.laterality else None) == (modifier.value if modifier else None)
            region = group.roi
            assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
            np.testing.assert_allclose(region.value, outline)
            assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ref.SOPInstanceUID
            area = group.get_measurements()[0]
            assert area.name.value == "42798000" and area.unit.value == "mm2"
            assert area.value == pytest.approx(piece.sum() * 0.2 * 0.25)


def test_a_linear_voi_lut_function_is_not_copied_other_values_are(sources, tmp_path):
    """OHIF 3.13 read VOI LUT Function "LINEAR" as "L" and showed the DX blank; absent means the same."""
    for function, kept in (("LINEAR", False), ("SIGMOID", True)):
        src = pydicom.dcmread(sources["MONOCHROME2"])
        src.VOILUTFunction = function
        src.save_as(tmp_path / "src.dcm", enforce_file_format=True)
        path = bio.write_derived_dicom(tmp_path / "src.dcm", src.pixel_array, tmp_path / f"{function}.dcm",
                                       derivation_description="copy", series_instance_uid=generate_uid())
        assert ("VOILUTFunction" in pydicom.dcmread(path)) == kept


def test_series_descriptions_say_adversarial_research_not_for_diagnosis():
    assert bio.ADVERSARIAL_SERIES_DESCRIPTION == "Adversarial image - ADVERSARIAL RESEARCH, NOT FOR DIAGNOSIS"
    assert bio.research_description("Adversarial pred. SEG") == (
        "Adversarial pred. SEG - ADVERSARIAL RESEARCH, NOT FOR DIAGNOSIS")
    with pytest.raises(ValueError, match="Argument kind should be 1-22 characters without backslashes"):
        bio.research_description("Adversarial prediction SEG")


def test_secondary_capture_joins_the_source_study(written, sources):
    src = pydicom.dcmread(sources["MONOCHROME1"])
    sc = pydicom.dcmread(written["files"]["sc_MONOCHROME1"])
    assert (sc.StudyInstanceUID, sc.PatientID) == (src.StudyInstanceUID, src.PatientID)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert (sc.PhotometricInterpretation, sc.SamplesPerPixel, sc.Rows, sc.Columns) == ("RGB", 3, 32, 40)
    expected = np.random.default_rng(3).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(sc.pixel_array, expected)


def test_deidentified_objects_hold_no_identity_and_share_one_new_study(written, sources):
    deid = {k: p for k, p in written["files"].items() if k.endswith("_deid")}
    originals = [v.encode() for v in PHI.values()] + [b"Smith", b"TEST PRIVATE"]
    for key, path in deid.items():
        raw = path.read_bytes()
        assert not [v for v in originals if v in raw], key
    for photometric in PHOTOMETRICS:
        src = pydicom.dcmread(sources[photometric])
        objects = {k: pydicom.dcmread(p) for k, p in deid.items() if photometric in k}
        assert len(objects) == 9  # derived, three SEGs, three SRs, SC, copy of the source
        studies = {ds.StudyInstanceUID for ds in objects.values()}
        patients = {(ds.PatientID, str(ds.PatientName)) for ds in objects.values()}
        assert len(studies) == 1 and studies != {src.StudyInstanceUID}
        assert len(patients) == 1 and next(iter(patients))[0].startswith("ANON-")
        for ds in objects.values():
            assert ds.PatientIdentityRemoved == "YES" and bio.is_deidentified(ds)
            assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
            assert ds.get("PatientBirthDate", "") == "" and "InstitutionName" not in ds
        copy = objects[f"copy_{photometric}_deid"]
        adv = objects[f"adv_{photometric}_deid"]
        assert adv.SourceImageSequence[0].ReferencedSOPInstanceUID == copy.SOPInstanceUID
        assert copy.SeriesInstanceUID != src.SeriesInstanceUID
        np.testing.assert_array_equal(copy.pixel_array, src.pixel_array)
        seg = hd.seg.segread(deid[f"seg_adv_{photometric}_deid"])  # SEG of the de-identified adv image
        assert seg.get_pixels_by_source_instance([adv.SOPInstanceUID], combine_segments=True).shape == (1, ROWS, COLS)
        sr = hd.sr.srread(deid[f"sr_adv_{photometric}_deid"])  # SR outlines on the de-identified adv image
        region = sr.content.get_planar_roi_measurement_groups()[0].roi
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == adv.SOPInstanceUID


def test_uid_map_is_deterministic_and_keyed():
    uid = "1.2.3.4.5"
    assert bio.UIDMap("a")(uid) == bio.UIDMap("a")(uid) != bio.UIDMap("b")(uid)
    assert pydicom.uid.UID(bio.UIDMap("a")(uid)).is_valid
    assert "secret-value" not in repr(bio.UIDMap("secret-value"))


def test_failure_while_writing_leaves_no_file(sources, tmp_path, monkeypatch):
    def broken_save_as(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"DICM partial")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", broken_save_as)
    src = sources["MONOCHROME2"]
    stored = pydicom.dcmread(src).pixel_array
    calls = [
        lambda: bio.write_derived_dicom(src, stored, tmp_path / "a.dcm", derivation_description="x",
                                        series_instance_uid=generate_uid()),
        lambda: bio.write_seg(src, _labels(0), tmp_path / "s.dcm", class_names=CXR_CLASSES, algorithm_name="a",
                              algorithm_version="1", series_description="x"),
        lambda: bio.write_secondary_capture(src, np.zeros((8, 8, 3), np.uint8), tmp_path / "c.dcm",
                                            series_instance_uid=generate_uid(), series_description="x"),
        lambda: bio.deidentify_file(src, tmp_path / "d.dcm", bio.UIDMap(SECRET)),
        lambda: bio.write_contour_sr(src, _labels(0), tmp_path / "r.dcm", class_names=CXR_CLASSES, algorithm_name="a",
                                     algorithm_version="1", series_description="x"),
    ]
    for call in calls:
        with pytest.raises(OSError, match="disk full"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_raise_clear_errors(sources, tmp_path):
    src = sources["MONOCHROME2"]
    stored = pydicom.dcmread(src).pixel_array
    uid = generate_uid()
    with pytest.raises(ValueError, match=r"stored_pixels should have the source's shape"):
        bio.write_derived_dicom(src, stored[:10], tmp_path / "a.dcm", derivation_description="x",
                                series_instance_uid=uid)
    with pytest.raises(ValueError, match=r"stored_pixels should lie in 0\.\.4095"):
        bio.write_derived_dicom(src, stored.astype(np.int32) + 5000, tmp_path / "a.dcm", derivation_description="x",
                                series_instance_uid=uid)
    with pytest.raises(ValueError, match="series_instance_uid should be a valid DICOM UID"):
        bio.write_derived_dicom(src, stored, tmp_path / "a.dcm", derivation_description="x",
                                series_instance_uid="not a uid")
    with pytest.raises(ValueError, match=r"label_map holds values \[6\] outside 0\.\.5"):
        bio.write_seg(src, np.full((ROWS, COLS), 6), tmp_path / "s.dcm", class_names=CXR_CLASSES,
                      algorithm_name="a", algorithm_version="1", series_description="x")
    with pytest.raises(ValueError, match="label_map should have the source's native shape"):
        bio.write_seg(src, np.zeros(MODEL, int), tmp_path / "s.dcm", class_names=CXR_CLASSES,
                      algorithm_name="a", algorithm_version="1", series_description="x")
    with pytest.raises(ValueError, match=r"rgb should be a \(H, W, 3\) uint8 array"):
        bio.write_secondary_capture(src, np.zeros((8, 8, 3)), tmp_path / "c.dcm", series_instance_uid=uid,
                                    series_description="x")
    with pytest.raises(ValueError, match="clean and adv should have the same shape"):
        bio.perturbation_to_stored(src, torch.zeros(1, 8, 8), torch.zeros(1, 8, 9))
    with pytest.raises(TypeError, match="deidentify should be a bool or a UIDMap"):
        bio.write_derived_dicom(src, stored, tmp_path / "a.dcm", derivation_description="x",
                                series_instance_uid=uid, deidentify="yes")
    sr_args = dict(class_names=CXR_CLASSES, algorithm_name="a", algorithm_version="1", series_description="x")
    with pytest.raises(ValueError, match="label_map should have the source's native shape"):
        bio.write_contour_sr(src, np.zeros(MODEL, int), tmp_path / "r.dcm", **sr_args)
    with pytest.raises(ValueError, match=r"label_map holds values \[6\] outside 0\.\.5"):
        bio.write_contour_sr(src, np.full((ROWS, COLS), 6), tmp_path / "r.dcm", **sr_args)
    with pytest.raises(ValueError, match=r"min_fraction should be a float in \[0, 1\), got 1\.5"):
        bio.write_contour_sr(src, _labels(0), tmp_path / "r.dcm", min_fraction=1.5, **sr_args)
    with pytest.raises(ValueError, match="tolerance should be a non-negative float, got -1"):
        bio.write_contour_sr(src, _labels(0), tmp_path / "r.dcm", tolerance=-1, **sr_args)
    with pytest.raises(ValueError, match="mask should be a 2-D array, got shape"):
        bio.label_outlines(np.zeros((2, 4, 4), bool))
    assert list(tmp_path.iterdir()) == []


def test_burned_in_annotation_blocks_deidentification(sources, tmp_path):
    ds = pydicom.dcmread(sources["MONOCHROME2"])
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(ValueError, match="BurnedInAnnotation YES"):
        bio.deidentify(ds, bio.UIDMap(SECRET))


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_derived_copy_compressed_on_request_keeps_its_pixels(sources, tmp_path, syntax):
    src = sources["MONOCHROME2"]
    stored = pydicom.dcmread(src).pixel_array.copy()
    stored[::7, ::5] = np.clip(stored[::7, ::5].astype(int) + 9, 0, 4095)
    path = bio.write_derived_dicom(src, stored, tmp_path / "adv.dcm", derivation_description="test",
                                   series_instance_uid=generate_uid(), transfer_syntax=syntax)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(ds.pixel_array, stored)
    if shutil.which("dciodvfy"):
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        assert [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")] == []


def test_lossy_transfer_syntax_is_refused(sources, tmp_path):
    stored = pydicom.dcmread(sources["MONOCHROME2"]).pixel_array
    with pytest.raises(ValueError, match="Argument transfer_syntax should be None or a lossless syntax"):
        bio.write_derived_dicom(sources["MONOCHROME2"], stored, tmp_path / "adv.dcm", derivation_description="t",
                                series_instance_uid=generate_uid(), transfer_syntax=JPEGBaseline8Bit)
    assert not (tmp_path / "adv.dcm").exists()


def test_sr_of_a_real_cr_without_imager_pixel_spacing(tmp_path):
    """pydicom-data's chest CR has a Pixel Spacing of 0\\0 and no Imager Pixel Spacing: the SR is written (the
    optional TID 1600 image library, which highdicom builds from Imager Pixel Spacing for a CR, is left out) and
    reads back with its outline."""
    from pydicom.data import get_testdata_file

    source = get_testdata_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    assert "ImagerPixelSpacing" not in ds
    labels = np.zeros((ds.Rows, ds.Columns), dtype=np.uint8)
    labels[400:900, 300:800] = CXR_CLASSES.index("heart")
    out = bio.write_contour_sr(source, labels, tmp_path / "sr.dcm", class_names=CXR_CLASSES,
                               algorithm_name="test", algorithm_version="1", series_description="test SR")
    report = hd.sr.srread(out)
    groups = report.content.get_planar_roi_measurement_groups()
    assert len(groups) == 1
    outline = groups[0].roi.value
    assert outline.min(0).tolist() == [300.0, 400.0] and outline.max(0).tolist() == [800.0, 900.0]

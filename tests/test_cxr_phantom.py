"""The chest X-ray phantom (bundle.data.cxr) and the DICOM DX writer (bundle.data.dicom_writer)."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from bundle.data.cxr import generate_cxr
from bundle.data.dicom_writer import DX_SOP_CLASS_UID, write_dx

SIZE = 256  # small and fast; geometry is resolution independent


@pytest.fixture(scope="module")
def cases():
    return [generate_cxr(np.random.default_rng(seed), size=SIZE) for seed in range(4)]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_deterministic_by_seed():
    p1, l1, i1 = generate_cxr(np.random.default_rng(7), size=SIZE)
    p2, l2, i2 = generate_cxr(np.random.default_rng(7), size=SIZE)
    p3, _, _ = generate_cxr(np.random.default_rng(8), size=SIZE)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(l1, l2)
    assert i1 == i2
    assert not np.array_equal(p1, p3)


def test_anterior_ribs_range_is_checked_and_changes_only_the_ribs():
    with pytest.raises(ValueError, match="anterior_ribs"):
        generate_cxr(np.random.default_rng(7), size=SIZE, anterior_ribs=(0.6, 0.2))
    with pytest.raises(ValueError, match="anterior_ribs"):
        generate_cxr(np.random.default_rng(7), size=SIZE, anterior_ribs=1.5)
    p1, l1, i1 = generate_cxr(np.random.default_rng(7), size=SIZE)
    p2, l2, i2 = generate_cxr(np.random.default_rng(7), size=SIZE, anterior_ribs=(1.5, 1.5))
    np.testing.assert_array_equal(l1, l2)
    i1.pop("window"), i2.pop("window")  # taken from the pixels' percentiles
    assert i1 == i2  # the same case: one draw either way
    assert not np.array_equal(p1, p2)


def test_zoom_range_is_checked_and_frames_the_same_patient():
    with pytest.raises(ValueError, match="zoom"):
        generate_cxr(np.random.default_rng(7), size=SIZE, zoom=(0.0, 1.0))
    _, l1, i1 = generate_cxr(np.random.default_rng(7), size=SIZE)
    _, l2, i2 = generate_cxr(np.random.default_rng(7), size=SIZE, zoom=(0.6, 0.6))
    assert i2["zoom"] == 0.6 and i1["zoom"] > 0.9
    assert i1["sex"] == i2["sex"] and i1["heart_size"] == i2["heart_size"]  # the same anatomy, framed otherwise
    for cls in (1, 2, 3):  # smaller in the field by about the zoom's ratio squared
        assert 0.7 < (l2 == cls).sum() / (l1 == cls).sum() / (0.6 / i1["zoom"]) ** 2 < 1.3


def test_types_ranges_and_labels(cases):
    for pixels, label, info in cases:
        assert pixels.dtype == np.uint16 and pixels.shape == (SIZE, SIZE)
        assert label.dtype == np.uint8 and label.shape == (SIZE, SIZE)
        assert pixels.max() <= 4095
        assert set(np.unique(label)) == {0, 1, 2, 3, 4, 5}
        assert info["sex"] in ("M", "F") and 0.9 <= info["heart_size"] <= 1.6


def test_anatomy_sides(cases):
    """Patient's right on the image left: right lung/clavicle left of the left ones, heart mostly image right."""
    cols = np.arange(SIZE)[None, :]
    for _, label, _ in cases:
        centre = {v: (cols * (label == v)).sum() / (label == v).sum() for v in range(1, 6)}
        assert centre[1] < SIZE / 2 < centre[2]
        assert centre[4] < SIZE / 2 < centre[5]
        lungs = np.isin(label, (1, 2))
        midline = (cols * lungs).sum() / lungs.sum()
        heart = label == 3
        assert (heart & (cols > midline)).sum() > 0.6 * heart.sum()


def test_cardiac_silhouette_as_in_radiographs():
    """Cardiothoracic ratio in the clinical range, a fifth to a half of the heart right of the
    midline (the right atrium), the widest part low (the ventricle) and the top at or below the hila."""
    cases = [generate_cxr(np.random.default_rng([5, k]), size=SIZE)[1] for k in range(12)]
    for label in cases:
        heart, lungs = label == 3, np.isin(label, (1, 2))
        hcols, lcols = np.flatnonzero(heart.any(0)), np.flatnonzero(lungs.any(0))
        ratio = (np.ptp(hcols) + 1) / (np.ptp(lcols) + 1)
        assert 0.3 < ratio < 0.65
        midline = (lcols.min() + lcols.max()) / 2
        assert 0.15 < (midline - hcols.min()) / (np.ptp(hcols) + 1) < 0.5
        rows = np.flatnonzero(heart.any(1))
        widest = rows[np.argmax(heart[rows].sum(1))]
        assert widest > rows.min() + 0.4 * (np.ptp(rows) + 1)
        lung_rows = np.flatnonzero(lungs.any(1))
        assert rows.min() > lung_rows.min() + 0.3 * np.ptp(lung_rows)


def _between(mask: np.ndarray, axis: int) -> np.ndarray:
    """Pixels with ``mask`` pixels on both sides along ``axis`` (0: above and below, 1: left and right)."""
    acc = np.logical_or.accumulate
    m = np.moveaxis(mask, axis, 0)
    return np.moveaxis(acc(m, axis=0) & acc(m[::-1], axis=0)[::-1], 0, axis)


def test_painting_order(cases):
    """Clavicles are painted over the lungs, the heart over the left lung: both cut into the lung fields."""
    for _, label, _ in cases:
        for lung, clav in ((1, 4), (2, 5)):
            # lung above and below the clavicle in the same column: it crosses the lung field
            inside = _between(label == lung, 0) & (label == clav)
            assert inside.sum() > 20, "the clavicle should cross the lung field below the apex"
        # left-lung pixels above the heart and lateral to it in the same row
        heart_in = _between(np.isin(label, (2, 3)), 1) & np.logical_or.accumulate(label == 2, axis=0) & (label == 3)
        assert heart_in.sum() > 20


def test_intensity_threshold_does_not_segment(cases):
    """No single threshold (either polarity) gives the lungs, the heart or the clavicles."""
    for pixels, label, _ in cases:
        thresholds = np.unique(np.quantile(pixels, np.linspace(0.01, 0.99, 99)))
        for mask, limit in (((label == 1) | (label == 2), 0.8), (label == 3, 0.5), (label >= 4, 0.3)):
            best = max(max(_dice(pixels <= t, mask), _dice(pixels > t, mask)) for t in thresholds)
            assert best < limit


def test_structures_visible(cases):
    """Lungs are darker than the heart, clavicles brighter than the lung under them."""
    for pixels, label, _ in cases:
        lung = np.median(pixels[np.isin(label, (1, 2))])
        assert np.median(pixels[label == 3]) > lung + 500
        assert np.median(pixels[label >= 4]) > lung + 300


def _write_both(tmp_path, pixels):
    paths = {}
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        paths[photometric] = write_dx(
            tmp_path / f"{photometric}.dcm", pixels, photometric=photometric, patient_id="PHANTOM0001",
            patient_name="Phantom^Case", patient_sex="F", patient_birth_date="19700101",
            study_description="Phantom chest", series_description="PA chest", accession_number="A1",
        )
    return paths


def test_write_dx_round_trip(tmp_path, cases):
    pixels = cases[0][0]
    paths = _write_both(tmp_path, pixels)
    m2 = pydicom.dcmread(paths["MONOCHROME2"])
    m1 = pydicom.dcmread(paths["MONOCHROME1"])
    for ds in (m1, m2):
        assert ds.SOPClassUID == DX_SOP_CLASS_UID and ds.Modality == "DX"
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert ds.ViewPosition == "PA" and ds.BodyPartExamined == "CHEST"
        assert [float(v) for v in ds.PixelSpacing] == [0.175, 0.175] == [float(v) for v in ds.ImagerPixelSpacing]
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
    np.testing.assert_array_equal(m2.pixel_array, pixels)
    np.testing.assert_array_equal(m1.pixel_array, 4095 - pixels.astype(np.int32))
    assert (m2.PresentationLUTShape, m1.PresentationLUTShape) == ("IDENTITY", "INVERSE")
    # the window is mirrored with the data (DICOM linear VOI: c' = 4096 - c), so both display the same image
    assert float(m1.WindowCenter) == pytest.approx(4096 - float(m2.WindowCenter), abs=1e-3)
    assert float(m1.WindowWidth) == pytest.approx(float(m2.WindowWidth))
    assert m1.SOPInstanceUID != m2.SOPInstanceUID


def test_write_dx_passes_dciodvfy(tmp_path, cases):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not on PATH; install the Debian package dicom3tools to run this check")
    for photometric, path in _write_both(tmp_path, cases[1][0]).items():
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{photometric}: {errors}"


def test_write_dx_bad_photometric_leaves_no_file(tmp_path, cases):
    path = tmp_path / "bad.dcm"
    with pytest.raises(ValueError, match=r"Argument photometric should be one of .*MONOCHROME2.*got 'RGB'"):
        write_dx(path, cases[0][0], photometric="RGB", patient_id="P", patient_name="P")
    assert list(tmp_path.iterdir()) == []


def test_write_dx_rejects_out_of_range_pixels(tmp_path):
    with pytest.raises(ValueError, match=r"Argument pixels should lie in 0\.\.4095, got range 0\.\.5000"):
        write_dx(tmp_path / "x.dcm", np.array([[0, 5000]], np.uint16), patient_id="P", patient_name="P")
    assert list(tmp_path.iterdir()) == []

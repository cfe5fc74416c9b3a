"""A real PACS accepts what the bundle writes: Orthanc + DICOMweb (STOW-RS, WADO-RS, QIDO-RS) on loopback.

For a MONOCHROME2 and a MONOCHROME1 source radiograph (DX), the adversarial copy derived from it and a
DICOM SEG of it are stored in a private Orthanc through STOW-RS, then read back: WADO-RS returns the
pixel data byte for byte, QIDO-RS shows the adversarial and SEG series inside the source's study, and
Orthanc's own renderings (``/preview``: min-max stretch; ``/rendered``: the DICOM VOI window) show the
stored image, MONOCHROME1 displayed the right way round. Skipped when Orthanc or its DICOMweb plugin
is not installed (``bash scripts/setup.sh`` installs both).
"""

from __future__ import annotations

import io
import json
import urllib.request

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Resize
from PIL import Image
from pydicom.uid import generate_uid

import bundle.io as bio
from bundle.data.cxr import CXR_CLASSES
from bundle.data.dicom_writer import write_dx
from bundle.transforms import read_xray_dicom
from orthanc import running_orthanc

dicomweb_api = pytest.importorskip("dicomweb_client.api", reason="dicomweb-client is not installed "
                                   "(pip install -e '.[test]')")

ROWS, COLS = 256, 256
MODEL = (64, 64)                        # factor 4: written with upsample="area_inverse", 4x4 blocks
EPS = 0.02                              # model-domain perturbation (units of the [-1, 1] scale)
WINDOW = (2048.0, 4096.0)               # full 12-bit window: no pixel is clipped by the VOI window
PHOTOMETRICS = ("MONOCHROME2", "MONOCHROME1")
KINDS = ("source", "adv", "seg")


def _source_pixels() -> np.ndarray:
    """A smooth 12-bit chest-like picture inside 500..3500, MONOCHROME2 sense."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    lungs = np.exp(-(((yy - 120) / 70.0) ** 2 + ((np.abs(xx - 128) - 60) / 35.0) ** 2))
    base = 2600 - 1400 * lungs + 300 * np.sin(yy / 17.0) * np.cos(xx / 29.0)
    return np.clip(base + rng.normal(0, 25, (ROWS, COLS)), 500, 3500).round().astype(np.uint16)


def _perturbation() -> torch.Tensor:
    """+-EPS in 8x8 model-pixel squares (a checkerboard): small, known, visible after rendering."""
    yy, xx = np.mgrid[0:MODEL[0], 0:MODEL[1]]
    sign = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 1.0, -1.0)
    return torch.from_numpy(EPS * sign).float()[None]


def _to_model(path) -> torch.Tensor:
    """The CXR preprocessing of the configs: read_xray_dicom, Resized(mode="area"), 2 * x - 1."""
    image, _ = read_xray_dicom(path)
    return Resize(MODEL, mode="area")(torch.from_numpy(image)[None]) * 2.0 - 1.0


def _labels() -> np.ndarray:
    label = np.zeros((ROWS, COLS), np.int64)
    label[50:200, 40:110], label[50:200, 146:216], label[120:210, 100:170] = 1, 2, 3
    label[30:40, 40:110], label[30:40, 146:216] = 4, 5
    return label


def _lookup(base: str, sop_instance_uid: str) -> str:
    """Orthanc's own id of an instance, from its SOP Instance UID (POST /tools/lookup)."""
    request = urllib.request.Request(f"{base}/tools/lookup", data=sop_instance_uid.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        hits = [h for h in json.loads(response.read()) if h["Type"] == "Instance"]
    assert len(hits) == 1, f"/tools/lookup found {hits} for {sop_instance_uid}"
    return hits[0]["ID"]


def _png(base: str, route: str) -> Image.Image:
    request = urllib.request.Request(f"{base}{route}", headers={"Accept": "image/png"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers.get_content_type() == "image/png"
        image = Image.open(io.BytesIO(response.read()))
        image.load()
    return image


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> str:
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as base:
        yield base


@pytest.fixture(scope="module")
def client(orthanc):
    return dicomweb_api.DICOMwebClient(url=orthanc + "/dicom-web")


@pytest.fixture(scope="module")
def cases(tmp_path_factory, client) -> dict:
    """Per photometric: the three files written, their STOW-RS response and the model-domain tensors."""
    root = tmp_path_factory.mktemp("pacs")
    out = {}
    for i, photometric in enumerate(PHOTOMETRICS):
        folder = root / photometric
        source = write_dx(folder / "source.dcm", _source_pixels(), photometric=photometric,
                          patient_id=f"PACS-TEST-{i}", patient_name=f"Phantom^Pacs{i}", window=WINDOW,
                          study_description="PACS round trip", series_description="PA chest phantom")
        clean = _to_model(source)
        adv = (clean + _perturbation()).clamp(-1.0, 1.0)
        stored = bio.perturbation_to_stored(source, clean, adv, upsample="area_inverse")  # known block values
        adv_path = bio.write_derived_dicom(source, stored, folder / "adv.dcm",
                                           derivation_description=f"checkerboard eps={EPS} (PACS test)",
                                           series_instance_uid=generate_uid())
        seg_path = bio.write_seg(source, _labels(), folder / "seg.dcm", class_names=CXR_CLASSES,
                                 algorithm_name="cxr-unet", algorithm_version="0.1",
                                 series_description="CLEAN PREDICTION - RESEARCH", content_label="CLEAN")
        files = {"source": source, "adv": adv_path, "seg": seg_path}
        datasets = {kind: pydicom.dcmread(path) for kind, path in files.items()}
        response = client.store_instances(list(datasets.values()))
        out[photometric] = {"files": files, "datasets": datasets, "stow": response,
                            "clean": clean, "adv": adv, "stored": stored}
    return out


def _retrieve(client, ds: pydicom.Dataset) -> pydicom.Dataset:
    return client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_stow_rs_stores_every_object(cases, photometric):
    case = cases[photometric]
    response = case["stow"]
    assert not response.get("FailedSOPSequence"), response  # Orthanc sends it empty
    stored = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert stored == {ds.SOPInstanceUID for ds in case["datasets"].values()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_wado_rs_returns_the_pixel_data_unchanged(cases, client, photometric, kind):
    written = cases[photometric]["datasets"][kind]
    back = _retrieve(client, written)
    assert back.SOPInstanceUID == written.SOPInstanceUID
    assert back.SOPClassUID == written.SOPClassUID
    assert back.PhotometricInterpretation == written.PhotometricInterpretation
    assert bytes(back.PixelData) == bytes(written.PixelData)
    np.testing.assert_array_equal(back.pixel_array, written.pixel_array)


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_perturbation_read_back_from_the_pacs_is_the_one_written(cases, client, photometric, tmp_path):
    case = cases[photometric]
    source = _retrieve(client, case["datasets"]["source"])
    adv = _retrieve(client, case["datasets"]["adv"])
    np.testing.assert_array_equal(adv.pixel_array, case["stored"])
    # the checkerboard in stored units: 4x4 blocks of +-EPS * (window width) / 2, sign flipped for MONOCHROME1
    _, meta = read_xray_dicom(case["files"]["source"])
    expected = np.kron(_perturbation()[0].numpy(), np.ones((4, 4))) * bio.stored_units_per_model_unit(meta)
    diff = adv.pixel_array.astype(np.int64) - source.pixel_array.astype(np.int64)
    assert np.abs(diff - expected).max() <= 0.5 + 1e-3
    assert np.abs(diff).min() >= 40  # EPS * 2047.5 = 41 stored units everywhere
    # the PACS copy, through the bundle's preprocessing, gives the adversarial model input back
    adv.save_as(tmp_path / "adv_from_pacs.dcm", enforce_file_format=True)
    again = _to_model(tmp_path / "adv_from_pacs.dcm")
    assert torch.abs(again - case["adv"]).max().item() < 1e-3


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_qido_rs_shows_the_adversarial_series_in_the_source_study(cases, client, photometric):
    datasets = cases[photometric]["datasets"]
    study_uid = datasets["source"].StudyInstanceUID
    assert datasets["adv"].StudyInstanceUID == study_uid and datasets["seg"].StudyInstanceUID == study_uid
    studies = client.search_for_studies(search_filters={"PatientID": datasets["source"].PatientID})
    assert [pydicom.Dataset.from_json(s).StudyInstanceUID for s in studies] == [study_uid]
    found = [pydicom.Dataset.from_json(s) for s in
             client.search_for_series(study_instance_uid=study_uid, fields=["SeriesDescription", "Modality"])]
    by_uid = {s.SeriesInstanceUID: s for s in found}
    assert set(by_uid) == {ds.SeriesInstanceUID for ds in datasets.values()}, "expected 3 series in the study"
    assert len(found) == 3
    assert by_uid[datasets["source"].SeriesInstanceUID].Modality == "DX"
    adv_series = by_uid[datasets["adv"].SeriesInstanceUID]
    assert adv_series.Modality == "DX"
    assert adv_series.SeriesDescription == bio.ADVERSARIAL_SERIES_DESCRIPTION
    assert by_uid[datasets["seg"].SeriesInstanceUID].Modality == "SEG"


@pytest.mark.parametrize("kind", ("source", "adv"))
@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_orthanc_preview_shows_the_stored_image(cases, orthanc, photometric, kind):
    """Orthanc 1.10's /preview stretches min..max to 0..255 and inverts MONOCHROME1 (bone bright)."""
    case = cases[photometric]
    image = _png(orthanc, f"/instances/{_lookup(orthanc, case['datasets'][kind].SOPInstanceUID)}/preview")
    assert image.format == "PNG"
    assert image.size == (COLS, ROWS)
    display, _ = read_xray_dicom(case["files"][kind])  # MONOCHROME2 sense, like any viewer shows it
    assert _pearson(np.asarray(image.convert("L")), display) > 0.95


@pytest.mark.parametrize("photometric", PHOTOMETRICS)
def test_orthanc_rendering_applies_the_dicom_window_of_the_adversarial_image(cases, orthanc, photometric):
    """/rendered applies Window Center / Width: the adversarial image displays as the bundle reads it."""
    case = cases[photometric]
    image = _png(orthanc, f"/instances/{_lookup(orthanc, case['datasets']['adv'].SOPInstanceUID)}/rendered")
    assert image.format == "PNG" and image.size == (COLS, ROWS)
    display, _ = read_xray_dicom(case["files"]["adv"])
    rendered = np.asarray(image.convert("L"), dtype=np.float64)
    assert _pearson(rendered, display) > 0.99
    assert np.abs(rendered - 255.0 * display).max() <= 3.0

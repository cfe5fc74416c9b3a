"""The exports as clinical viewers show them: OHIF 3 and Orthanc's Web Viewer in headless Chromium, judged by pixels.

One chest phantom (MONOCHROME1, stored inverted like some CR/DX systems do) goes through the bundle's own export
(``ClinicalExporter``: derived adversarial DX, three SEGs, overlay Secondary Capture) into a private Orthanc on
loopback; OHIF's built viewer (npm ``@ohif/app``) is served on loopback against Orthanc's DICOMweb, Orthanc's Web
Viewer is Orthanc's own plugin, and Debian's Chromium, driven by playwright-core, saves a screenshot of each object in
each viewer. Asserted from the screenshots: the radiographs are drawn, the right way round (bone bright: positive
correlation with the display the bundle computes from the file); the Secondary Capture keeps the figure's aspect
ratio; each SEG is drawn over the radiograph in OHIF with each segment's recommended colour inside that structure.
Orthanc's Web Viewer 2.8 has no SEG support (docs/export.md, "Viewers"), so its SEGs are not opened.

Skipped, naming what is missing, unless every component is installed (``bash scripts/setup.sh`` installs them).
``ADVSEG_VIEWER_SHOTS=<folder>`` keeps the screenshots there (docs/figures/ holds two of them).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Resize
from PIL import Image

from bundle.data.cxr import CXR_CLASSES, generate_cxr
from bundle.data.dicom_writer import write_dx
from bundle.handlers.clinical_export import ClinicalExporter
from bundle.io import SEGMENT_COLOURS, label_to_native
from bundle.targets import heart_symbol_target
from bundle.transforms import read_xray_dicom
from orthanc import running_orthanc
from viewers import WEBVIEWER_PLUGIN, screenshots, serving_ohif, viewer_components

SIZE, GRID = 512, (128, 128)        # native phantom, model grid: factor 4 as 1024 -> 256
SEGS = ("seg_clean_pred", "seg_adv_pred", "seg_target")
VIEWPORT = ".viewport-element"     # cornerstone3D's rendering element in OHIF


@pytest.fixture(scope="module")
def components() -> dict:
    found, missing = viewer_components()
    if missing:
        pytest.skip("browser test components missing: " + "; ".join(missing) + " (bash scripts/setup.sh installs them)")
    return found


@pytest.fixture(scope="module")
def case(tmp_path_factory, components) -> dict:
    """A phantom DX and what the bundle exports for it, as after a heart-symbol attack that reached its target."""
    root = tmp_path_factory.mktemp("viewer_case")
    pixels, label, _ = generate_cxr(np.random.default_rng(7), size=SIZE)
    source = write_dx(root / "source.dcm", pixels, photometric="MONOCHROME1", pixel_spacing=(0.7, 0.7),
                      patient_id="VIEWER-TEST", patient_name="Phantom^Viewer", study_description="Viewer test",
                      series_description="PA chest phantom")
    display, _ = read_xray_dicom(source)
    image = Resize(GRID, mode="area")(torch.from_numpy(display)[None]) * 2.0 - 1.0
    small = Resize(GRID, mode="nearest")(torch.from_numpy(label.astype(np.int64))[None]).long()
    target = heart_symbol_target(small[None], "small")[0]
    noise = torch.randn((1, *GRID), generator=torch.Generator().manual_seed(0))
    out = {"image": image[None], "adv": (image + 0.04 * noise.sign()).clamp(-1, 1)[None], "label": small[None],
           "clean_pred": small[None], "adv_pred": target[None], "target": target[None]}
    exporter = ClinicalExporter(root, CXR_CLASSES, "pgd_heart_small", (-1.0, 1.0), preprocessing=None)
    folder = root / "export"
    folder.mkdir()
    exporter._export_dicom(out, 0, "viewer", source, folder)
    files = {"source": source, "adversarial": folder / "adversarial.dcm", "overlay": folder / "overlay.dcm",
             **{name: folder / f"{name}.dcm" for name in SEGS}}
    labels = {"seg_clean_pred": label, "seg_adv_pred": label_to_native(target, (SIZE, SIZE)),
              "seg_target": label_to_native(target, (SIZE, SIZE))}
    return {"files": files, "labels": labels, "datasets": {k: pydicom.dcmread(p) for k, p in files.items()}}


@pytest.fixture(scope="module")
def shots(case, components, tmp_path_factory) -> dict:
    """Every object stored in Orthanc and photographed in OHIF (all) and Orthanc's Web Viewer (all but SEGs)."""
    work = tmp_path_factory.mktemp("viewers")
    with running_orthanc(work / "orthanc", extra_plugins=(WEBVIEWER_PLUGIN,)) as base:
        series = {}
        for name, path in case["files"].items():
            request = urllib.request.Request(f"{base}/instances", data=path.read_bytes(), method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                series[name] = json.loads(response.read())["ParentSeries"]
        study = case["datasets"]["source"].StudyInstanceUID
        with serving_ohif(Path(components["ohif"]).parent, base) as ohif:
            jobs = []
            for name, ds in case["datasets"].items():
                seg = name.startswith("seg_")
                jobs.append({"name": f"ohif_{name}", "out": str(work / f"ohif_{name}.png"), "clip": VIEWPORT,
                             "wait_for": "canvas", "settle_ms": 9000 if seg else 4000,
                             "url": f"{ohif}/viewer?StudyInstanceUIDs={study}"
                                    f"&initialSeriesInstanceUID={ds.SeriesInstanceUID}"})
                if not seg:
                    jobs.append({"name": f"orthanc_{name}", "out": str(work / f"orthanc_{name}.png"), "clip": "canvas",
                                 "wait_for": "canvas", "settle_ms": 4000,
                                 "url": f"{base}/web-viewer/app/viewer.html?series={series[name]}"})
            report = screenshots(jobs, work, components)
    keep = os.environ.get("ADVSEG_VIEWER_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for job in report:
            shutil.copy(job["out"], Path(keep) / Path(job["out"]).name)
    return {job["name"]: job for job in report}


def _screenshot(shots: dict, name: str) -> np.ndarray:
    job = shots[name]
    assert job["error"] is None, f"{name}: {job['error']}\nconsole: {job['console']}"
    return np.asarray(Image.open(job["out"]).convert("RGB"), dtype=np.float64)


def _fitted(shot: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of a viewport screenshot where an image of ``rows x cols`` is drawn scaled to fit and centred (the
    viewers' default), and its box ``(top, left, height, width)``."""
    height, width = shot.shape[:2]
    scale = min(height / rows, width / cols)
    h, w = int(round(rows * scale)), int(round(cols * scale))
    top, left = (height - h) // 2, (width - w) // 2
    return shot[top:top + h, left:left + w], (top, left, h, w)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("viewer", ("ohif", "orthanc"))
@pytest.mark.parametrize("name", ("source", "adversarial"))
def test_radiograph_is_drawn_the_right_way_round(case, shots, viewer, name):
    """Not blank, not inverted: the drawn image follows the display the bundle reads from the file (bone bright)."""
    shot = _screenshot(shots, f"{viewer}_{name}")
    drawn, (_, _, h, w) = _fitted(shot, SIZE, SIZE)
    display, _ = read_xray_dicom(case["files"][name])
    expected = np.asarray(Image.fromarray((255 * display).astype(np.uint8)).resize((w, h), Image.BILINEAR), float)
    gray = drawn.mean(axis=2)
    inner = (slice(h // 8, h - h // 8), slice(w // 8, w - w // 8))  # clear of the corner text overlays
    assert gray[inner].std() > 20, f"{viewer} shows {name} blank (std {gray[inner].std():.1f})"
    assert _pearson(gray[inner], expected[inner]) > 0.8, f"{viewer} shows {name} inverted or misplaced"


@pytest.mark.parametrize("viewer", ("ohif", "orthanc"))
def test_secondary_capture_keeps_the_figures_aspect_ratio(case, shots, viewer):
    shot = _screenshot(shots, f"{viewer}_overlay")
    rows, cols = int(case["datasets"]["overlay"].Rows), int(case["datasets"]["overlay"].Columns)
    white = shot.min(axis=2) > 235  # the figure's white background, on the viewers' black (and white text)
    ys, xs = np.nonzero(white.mean(axis=1) > 0.3)[0], np.nonzero(white.mean(axis=0) > 0.3)[0]
    assert ys.size > 20 and xs.size > 20, f"{viewer} does not show the overlay figure"
    drawn = (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)
    assert drawn == pytest.approx(cols / rows, rel=0.04), f"{viewer} draws the figure at {drawn:.3f}, not {cols / rows:.3f}"


@pytest.mark.parametrize("name", SEGS)
def test_ohif_draws_each_segment_in_its_colour_over_the_radiograph(case, shots, name):
    shot = _screenshot(shots, f"ohif_{name}")
    labels = case["labels"][name]
    drawn, (_, _, h, w) = _fitted(shot, *labels.shape)
    grid = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((w, h), Image.NEAREST))
    assert drawn.mean(axis=2)[grid == 0].std() > 20, "the radiograph under the SEG is not drawn"
    for number in np.unique(labels)[1:]:
        colour = np.array([int(SEGMENT_COLOURS[number - 1][i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
        inside = drawn[grid == number]
        # the segment's outline is drawn in its colour: pixels of that colour inside the structure
        close = np.linalg.norm(inside - colour, axis=1) < 60
        assert close.sum() >= 20, f"{CXR_CLASSES[number]} not drawn in {SEGMENT_COLOURS[number - 1]} ({close.sum()} px)"
        elsewhere = drawn[grid == 0]
        assert (np.linalg.norm(elsewhere - colour, axis=1) < 60).mean() < 0.01, f"{CXR_CLASSES[number]} spills over"

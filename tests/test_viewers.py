"""The exports as clinical viewers show them: OHIF 3 and Orthanc's Web Viewer in headless Chromium, judged by pixels.

One chest phantom (MONOCHROME1, stored inverted like some CR/DX systems do) goes through the bundle's own export
(``ClinicalExporter``: derived adversarial DX, three SEGs, the same three as SR reports of outlines, overlay Secondary
Capture) into a private Orthanc on loopback; OHIF's built viewer (npm ``@ohif/app``) is served on loopback against
Orthanc's DICOMweb, Orthanc's Web Viewer is Orthanc's own plugin, and Debian's Chromium, driven by playwright-core,
saves a screenshot of each object in each viewer. Asserted from the screenshots: the radiographs are drawn, the right
way round (bone bright: positive correlation with the display the bundle computes from the file); the Secondary
Capture keeps the figure's aspect ratio; each SEG is drawn over the radiograph in OHIF with each segment's recommended
colour inside that structure, and each SR's outlines along the structures' outlines. Asserted from OHIF's DOM: its
segmentation panel lists each SEG's segment labels, and each SR's text boxes name every outline's finding site and
area. Orthanc's Web Viewer 2.8 has no SEG, SR or presentation-state support (docs/export.md, "Viewers"): one SEG and
one SR are opened there to show what it draws instead (a black-and-white mask frame; nothing).

Skipped, naming what is missing, unless every component is installed (``bash scripts/setup.sh`` installs them).
``ADVSEG_VIEWER_SHOTS=<folder>`` keeps the screenshots there (docs/figures/viewer_*.png are six of them).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.request
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Resize
from PIL import Image
from scipy import ndimage

from bundle.data.cxr import CXR_CLASSES, generate_cxr
from bundle.data.dicom_writer import write_dx
from bundle.handlers.clinical_export import ClinicalExporter
from bundle.io import SEGMENT_COLOURS, label_to_native, segment_codes
from bundle.targets import heart_symbol_target
from bundle.transforms import read_xray_dicom
from orthanc import running_orthanc
from viewers import WEBVIEWER_PLUGIN, screenshots, serving_ohif, viewer_components

SIZE, GRID = 512, (128, 128)        # native phantom, model grid: factor 4 as 1024 -> 256
SEGS = ("seg_clean_pred", "seg_adv_pred", "seg_target")
SRS = ("sr_clean_pred", "sr_adv_pred", "sr_target")
ORTHANC_ONLY_SHOWS = ("seg_adv_pred", "sr_adv_pred")  # one of each kind opened in Orthanc's Web Viewer
SEG_PANEL_BUTTON, SEGMENT_LABEL = '[data-cy="panelSegmentation-btn"]', '[data-cy="data-row-title"]'
SR_TEXT = ".viewport-element svg text tspan"  # the lines of the text boxes cornerstone3D draws beside SR graphics
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
    exporter = ClinicalExporter(root, CXR_CLASSES, "pgd_heart_small", (-1.0, 1.0), preprocessing=None, sr=True)
    folder = root / "export"
    folder.mkdir()
    exporter._export_dicom(out, 0, "viewer", source, folder)
    files = {"source": source, "adversarial": folder / "adversarial.dcm", "overlay": folder / "overlay.dcm",
             **{name: folder / f"{name}.dcm" for name in SEGS + SRS}}
    labels = {"clean_pred": label, "adv_pred": label_to_native(target, (SIZE, SIZE)),
              "target": label_to_native(target, (SIZE, SIZE))}
    labels = {f"{kind}_{key}": value for key, value in labels.items() for kind in ("seg", "sr")}
    return {"files": files, "labels": labels, "datasets": {k: pydicom.dcmread(p) for k, p in files.items()}}


@pytest.fixture(scope="module")
def shots(case, components, tmp_path_factory) -> dict:
    """Every object stored in Orthanc (and the SRs read back from it) and photographed in OHIF (all) and Orthanc's Web
    Viewer (the images, one SEG, one SR); OHIF's segment labels and SR text boxes read from its DOM."""
    work = tmp_path_factory.mktemp("viewers")
    with running_orthanc(work / "orthanc", extra_plugins=(WEBVIEWER_PLUGIN,)) as base:
        series, stored = {}, {}
        for name, path in case["files"].items():
            request = urllib.request.Request(f"{base}/instances", data=path.read_bytes(), method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            series[name] = answer["ParentSeries"]
            if name in SRS:
                with urllib.request.urlopen(f"{base}/instances/{answer['ID']}/file", timeout=30) as response:
                    stored[name] = response.read()
        study = case["datasets"]["source"].StudyInstanceUID
        with serving_ohif(Path(components["ohif"]).parent, base) as ohif:
            jobs = []
            for name, ds in case["datasets"].items():
                seg, sr = name.startswith("seg_"), name.startswith("sr_")
                job = {"name": f"ohif_{name}", "out": str(work / f"ohif_{name}.png"), "clip": VIEWPORT,
                       "wait_for": "canvas", "settle_ms": 9000 if seg else 6000 if sr else 4000,
                       "url": f"{ohif}/viewer?StudyInstanceUIDs={study}"
                              f"&initialSeriesInstanceUID={ds.SeriesInstanceUID}"}
                if seg:  # the segmentation panel opened after the screenshot, its segment labels read
                    job.update(reveal=SEG_PANEL_BUTTON, reveal_out=str(work / f"ohif_{name}_panel.png"),
                               texts=[SEGMENT_LABEL])
                if sr:
                    job.update(texts=[SR_TEXT])
                jobs.append(job)
                if not (seg or sr) or name in ORTHANC_ONLY_SHOWS:
                    jobs.append({"name": f"orthanc_{name}", "out": str(work / f"orthanc_{name}.png"), "clip": "canvas",
                                 "wait_for": "canvas", "settle_ms": 4000,
                                 "url": f"{base}/web-viewer/app/viewer.html?series={series[name]}"})
            report = screenshots(jobs, work, components)
    keep = os.environ.get("ADVSEG_VIEWER_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for job in report:
            for shot in (job["out"], job.get("reveal_out")):
                if shot and Path(shot).is_file():
                    shutil.copy(shot, Path(keep) / Path(shot).name)
    return {"stored": stored, **{job["name"]: job for job in report}}


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


def _line_pixels(shot: np.ndarray) -> np.ndarray:
    """Where OHIF's SR display tool drew: its yellow (255, 255, 0) and, for the selected outline, green (0, 255, 0);
    a grey radiograph has neither."""
    return (shot[..., 1] > 170) & (shot[..., 2] < 110) & (shot[..., 1] - shot[..., 2] > 110)


def _along(outline: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` along a polyline ``(N, 2)``."""
    points = [outline[:1]]
    for a, b in zip(outline[:-1], outline[1:]):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        points.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
    return np.concatenate(points)


@pytest.mark.parametrize("name", SRS)
def test_ohif_draws_each_sr_outline_along_its_structure(case, shots, name):
    """Every outline of the SR (read back with highdicom) is drawn where the structure's outline lies on the screen,
    and nothing else is drawn in the tool's colours but the text boxes beside them."""
    shot = _screenshot(shots, f"ohif_{name}")
    drawn, (_, _, h, w) = _fitted(shot, SIZE, SIZE)
    line = _line_pixels(drawn)
    reach = ndimage.binary_dilation(line, iterations=3)  # a dashed line: gaps of 4 px at most
    groups = hd.sr.srread(case["files"][name]).content.get_planar_roi_measurement_groups()
    assert len(groups) >= 5, f"{name}: {len(groups)} outlines"
    near = np.zeros_like(line)
    for group in groups:
        assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        samples = _along(group.roi.value * np.array([w, h]) / SIZE, 2.0)
        xs = np.clip(samples[:, 0].round().astype(int), 0, w - 1)
        ys = np.clip(samples[:, 1].round().astype(int), 0, h - 1)
        hit = reach[ys, xs].mean()
        assert hit > 0.8, f"{name}: {group.tracking_identifier} drawn along {hit:.0%} of its outline"
        near[ys, xs] = True
    assert drawn.mean(axis=2)[~ndimage.binary_dilation(near, iterations=8)].std() > 20, "no radiograph under the SR"
    stray = (line & ~ndimage.binary_dilation(near, iterations=6)).mean()
    assert stray < 0.01, f"{name}: {stray:.1%} of the image drawn away from the outlines"


@pytest.mark.parametrize("name", SEGS)
def test_ohif_segmentation_panel_lists_each_segment_label(shots, name):
    """Read from the DOM, not the pixels: the panel's rows are the SEG's segment labels, the class names."""
    job = shots[f"ohif_{name}"]
    assert job["error"] is None, job["error"]
    assert job["texts"][SEGMENT_LABEL] == list(CXR_CLASSES[1:])


@pytest.mark.parametrize("name", SRS)
def test_ohif_names_each_sr_outline_by_its_finding_site_and_area(case, shots, name):
    """The text boxes beside the outlines (DOM): per outline the finding site, shown by OHIF behind its concept code
    363698007, and the area in mm2, as written in the report; the sites are the structures of the label map."""
    job = shots[f"ohif_{name}"]
    assert job["error"] is None, job["error"]
    groups = hd.sr.srread(case["files"][name]).content.get_planar_roi_measurement_groups()
    expected = []
    for group in groups:
        expected.append(f"363698007: {group.finding_sites[0].value.meaning}")
        expected.append(f"Area: {group.get_measurements()[0].value:.2f} mm2")
    assert sorted(job["texts"][SR_TEXT]) == sorted(expected)
    present = [n for n in range(1, len(CXR_CLASSES)) if (case["labels"][name] == n).any()]
    assert {g.finding_sites[0].value.meaning for g in groups} == {segment_codes(CXR_CLASSES[n])[1].meaning
                                                                  for n in present}


@pytest.mark.parametrize("name", SRS)
def test_orthanc_stores_the_sr_and_gives_it_back_unchanged(case, shots, name):
    stored = pydicom.dcmread(io.BytesIO(shots["stored"][name]))
    assert stored == case["datasets"][name]
    back = hd.sr.ComprehensiveSR.from_dataset(stored)
    assert len(back.content.get_planar_roi_measurement_groups()) == len(
        hd.sr.srread(case["files"][name]).content.get_planar_roi_measurement_groups())


def test_orthanc_web_viewer_draws_no_segmentation_over_the_radiograph(shots):
    """What Orthanc's Web Viewer 2.8 does with the segmentation objects: a SEG is shown as its first frame, a
    black-and-white mask without the radiograph; an SR is not drawn at all (its page fails, the canvas stays black)."""
    def inner(name: str) -> np.ndarray:  # clear of the viewer's text in the corners and its bottom line
        gray = _screenshot(shots, name).mean(axis=2)
        h, w = gray.shape
        return gray[h // 8:h - h // 8, w // 8:w - w // 8]

    seg, radiograph, sr = inner("orthanc_seg_adv_pred"), inner("orthanc_adversarial"), inner("orthanc_sr_adv_pred")
    grey = lambda gray: ((gray > 30) & (gray < 225)).mean()  # noqa: E731
    assert (seg > 225).mean() > 0.02 and grey(seg) < 0.01 < grey(radiograph), "the SEG frame is not a bare mask"
    assert sr.max() < 10, "Orthanc's Web Viewer drew something for the SR"

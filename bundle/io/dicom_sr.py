"""Label maps as DICOM SR measurement reports (TID 1500) of planar contours, for viewers that draw no SEG on a DX.

OHIF 3.13 draws a SEG over a radiograph (docs/export.md, "Viewers"); Orthanc's Web Viewer 2.8 draws no SEG, SR or
presentation state at all, and OHIF has no presentation-state support (its SOP class handlers cover images, SEG,
RTSTRUCT, SR; GSPS appears only in its SOP class dictionary). What OHIF also draws over a 2-D image is the TID 1500
report its ``cornerstone-dicom-sr`` extension reads: each TID 1410 measurement group with an Image Region SCOORD at its
top level that references an image of the study is drawn over that image (POINT, MULTIPOINT, POLYLINE, CIRCLE,
ELLIPSE; not POLYGON), with a text box made of the group's NUM measurements and Finding Site. So a structure's
outline is written as a closed POLYLINE (first point repeated at the end) in the image's pixel coordinates (0\\0 the
top left corner of the top left pixel, Columns\\Rows the bottom right corner of the last one).

One measurement group per outline: every outer boundary of every class of the label map (4-connected pieces; holes
are not outlined), traced along the pixel edges and simplified by Douglas-Peucker within ``tolerance`` pixels, with
the structure's area in mm2 (pixel count times the source's Pixel Spacing, holes included) as the group's
measurement, the class's SNOMED CT codes (``bundle.io.segment_codes``: finding type and finding site, laterality as
the finding site's modifier) and the tracking identifier ``"<class name> <n>"``. Pieces smaller than
``min_fraction`` of the image are left out (specks, as ``bundle.metrics.structure_pieces`` counts them); the SEG
keeps every pixel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from bundle.io import _dicom
from bundle.io.deidentify import resolve_uid_map
from bundle.io.dicom_seg import _check_label_writer, _finish_derived, _read_labelled_source, segment_codes
from bundle.transforms import pixel_spacing

__all__ = ["write_contour_sr", "label_outlines", "SR_SERIES_NUMBER"]

SR_SERIES_NUMBER = 930


def _boundary_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops of pixel-edge vertices ``(x, y)`` around the pixels of ``mask``.

    Each boundary edge of a pixel is directed so that the pixel lies on its right (on screen, y down): outer
    boundaries run clockwise on screen (positive shoelace area), holes the other way. Where two pixels touch only at
    a corner, the walk turns right, so diagonal neighbours are separate pieces (4-connectivity).
    """
    m = np.pad(mask.astype(bool), 1)
    inside = m[1:-1, 1:-1]
    rows, cols = np.nonzero(inside & ~m[:-2, 1:-1])       # top side: (c, r) -> (c + 1, r)
    starts = [np.stack([cols, rows], 1)]
    steps = [np.tile([1, 0], (rows.size, 1))]
    rows, cols = np.nonzero(inside & ~m[1:-1, 2:])        # right side: (c + 1, r) -> (c + 1, r + 1)
    starts.append(np.stack([cols + 1, rows], 1))
    steps.append(np.tile([0, 1], (rows.size, 1)))
    rows, cols = np.nonzero(inside & ~m[2:, 1:-1])        # bottom side: (c + 1, r + 1) -> (c, r + 1)
    starts.append(np.stack([cols + 1, rows + 1], 1))
    steps.append(np.tile([-1, 0], (rows.size, 1)))
    rows, cols = np.nonzero(inside & ~m[1:-1, :-2])       # left side: (c, r + 1) -> (c, r)
    starts.append(np.stack([cols, rows + 1], 1))
    steps.append(np.tile([0, -1], (rows.size, 1)))
    start, step = np.concatenate(starts), np.concatenate(steps)
    outgoing: dict[tuple[int, int], list[int]] = {}
    for k, (x, y) in enumerate(start.tolist()):
        outgoing.setdefault((x, y), []).append(k)
    used = np.zeros(len(start), dtype=bool)
    loops = []
    for first in range(len(start)):
        if used[first]:
            continue
        points, k = [], first
        while not used[k]:
            used[k] = True
            points.append(start[k])
            dx, dy = step[k]
            end = (int(start[k][0] + dx), int(start[k][1] + dy))
            free = [e for e in outgoing[end] if not used[e]]
            if not free:
                break
            right = [e for e in free if (step[e][0], step[e][1]) == (-dy, dx)]
            k = right[0] if len(free) > 1 and right else free[0]
        loops.append(np.asarray(points, dtype=np.float64))
    return loops


def _shoelace(loop: np.ndarray) -> float:
    x, y = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _douglas_peucker(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Points of the open polyline ``points`` kept by Douglas-Peucker with ``tolerance`` (both ends kept)."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = points[i], points[j]
        ab = b - a
        length = np.hypot(*ab)
        rel = points[i + 1:j] - a
        dist = np.abs(ab[0] * rel[:, 1] - ab[1] * rel[:, 0]) / length if length else np.hypot(rel[:, 0], rel[:, 1])
        far = int(np.argmax(dist))
        if dist[far] > tolerance:
            keep[i + 1 + far] = True
            stack += [(i, i + 1 + far), (i + 1 + far, j)]
    return points[keep]


def label_outlines(mask: object, *, tolerance: float = 0.5, min_pixels: int = 1) -> list[np.ndarray]:
    """Outer outlines of the 4-connected pieces of a 2-D mask, as closed polylines in DICOM pixel coordinates.

    Args:
        mask: ``(Rows, Columns)`` bool (or 0/1) array.
        tolerance: largest distance, in pixels, of the simplified outline from the pixel-edge boundary.
        min_pixels: pieces whose outline encloses fewer pixels (holes included) are left out.

    Returns:
        One ``(N, 2)`` float array of ``(column, row)`` vertices per piece, the first vertex repeated at the end,
        ``0, 0`` the top left corner of the top left pixel; largest piece first.
    """
    return [line for _, line in _outlines(mask, tolerance, min_pixels)]


def _outlines(mask: object, tolerance: float, min_pixels: int) -> list[tuple[int, np.ndarray]]:
    """``(enclosed pixels, outline)`` per piece of :func:`label_outlines`, largest first."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"Argument mask should be a 2-D array, got shape {arr.shape}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ValueError(f"Argument tolerance should be a non-negative float, got {tolerance!r}.")
    outlines = []
    for loop in _boundary_loops(arr.astype(bool)):
        area = int(round(_shoelace(loop)))  # of the pixel-edge loop: the pixels it encloses, exactly
        if area < max(min_pixels, 1):  # holes (negative area) and specks
            continue
        # split the closed loop at its first vertex and at the vertex farthest from it, simplify both halves
        far = int(np.argmax(np.hypot(*(loop - loop[0]).T)))
        closed = np.vstack([loop, loop[:1]])
        half1 = _douglas_peucker(closed[:far + 1], tolerance)
        half2 = _douglas_peucker(closed[far:], tolerance)
        outlines.append((area, np.vstack([half1, half2[1:]])))
    outlines.sort(key=lambda item: -item[0])
    return outlines


def write_contour_sr(
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
    series_number: int = SR_SERIES_NUMBER,
    min_fraction: float = 2e-4,
    tolerance: float = 0.5,
    deidentify: bool | Callable[[str], str] = False,
) -> Path:
    """Write the outlines of a label map as a DICOM Comprehensive SR (TID 1500) of ``source_path``, atomically.

    One TID 1410 measurement group per outline (module docstring), each referencing the source image (no TID 1600
    image library: optional, and highdicom builds one for a CR only from Imager Pixel Spacing); the report
    joins the source's study and patient, names the algorithm (observer device, algorithm identification), and its
    Series Date / Time are the time of writing. OHIF 3.13 draws the outlines over the image with a text box of the
    finding site and the area (docs/export.md, "Viewers"). The source file and ``label_map`` are only read.

    Args:
        source_path: the DICOM image outlined (the source radiograph, or the derived adversarial image).
        label_map: ``(Rows, Columns)`` (or ``(1, Rows, Columns)``) integer class indices in
            ``[0, len(class_names))`` at the source's native resolution.
        out_path: destination file; written atomically. Never derived from tag values.
        class_names: the task's class names, background first.
        algorithm_name, algorithm_version: the model that produced the labels (or the target generator).
        series_description: at most 64 characters.
        series_instance_uid, sop_instance_uid: generated when ``None``.
        series_number: Series Number of the SR series.
        min_fraction: pieces smaller than this fraction of the image are not outlined, in ``[0, 1)``.
        tolerance: largest distance in pixels of a written outline from the pixel boundary (>= 0).
        deidentify: ``False``; ``True`` or a :class:`bundle.io.UIDMap` to de-identify the source attributes
            copied into the report and the reference to the image (see :func:`bundle.io.deidentify`).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    names = _check_label_writer(class_names, algorithm_name, algorithm_version, series_description,
                                series_instance_uid, sop_instance_uid, series_number)
    if isinstance(min_fraction, bool) or not isinstance(min_fraction, (int, float)) or not 0 <= min_fraction < 1:
        raise ValueError(f"Argument min_fraction should be a float in [0, 1), got {min_fraction!r}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ValueError(f"Argument tolerance should be a non-negative float, got {tolerance!r}.")
    uid_map = resolve_uid_map(deidentify)

    source, labels, person_names = _read_labelled_source(source_path, label_map, len(names), uid_map)
    rows, cols = labels.shape
    spacing = [float(v) for v in pixel_spacing(source)]
    min_pixels = max(1, int(min_fraction * rows * cols))

    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name, version=algorithm_version)
    region_source = hd.sr.SourceImageForRegion.from_source_image(source)
    groups = []
    for number, name in enumerate(names[1:], start=1):
        mask = labels == number
        if not mask.any():
            continue
        _, prop_type, modifier, _ = segment_codes(name)
        site = hd.sr.FindingSite(anatomic_location=prop_type, laterality=modifier)
        for piece, (enclosed, outline) in enumerate(_outlines(mask, tolerance, min_pixels), start=1):
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(entropy_srcs=[str(source.SOPInstanceUID), series_description, name, str(piece)]),
                    identifier=f"{name} {piece}"[:64]),
                referenced_region=hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                                    graphic_data=outline.astype(np.float32),
                                                    source_image=region_source),
                finding_type=prop_type, finding_sites=[site], algorithm_id=algorithm,
                measurements=[hd.sr.Measurement(name=codes.SCT.Area, value=enclosed * spacing[0] * spacing[1],
                                                unit=codes.UCUM.SquareMillimeter, algorithm_id=algorithm)]))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[_dicom.MANUFACTURER, algorithm_name, algorithm_version]),
            name=algorithm_name[:64], manufacturer_name=_dicom.MANUFACTURER, model_name=algorithm_name[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups or None)
    sr = hd.sr.ComprehensiveSR(
        evidence=[source], content=report[0], series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number, sop_instance_uid=sop_instance_uid or generate_uid(), instance_number=1,
        manufacturer=_dicom.MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=series_description)
    return _finish_derived(sr, source, person_names, uid_map, out_path)


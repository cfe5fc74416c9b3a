"""Procedural posterior-anterior chest radiograph phantom with JSRT/SCR-style labels (renderer version 4).

The phantom is built in stages. First the anatomy in a patient frame: body outline, lungs, heart,
clavicles, ribs, spine, scapulae and diaphragm as parametric curves, rasterised with numpy broadcasting
and ``PIL.ImageDraw``. Then an attenuation map is summed from it (more attenuation = brighter), the
patient is framed (zoom, shift, rotation), devices, markers and collimation are added, and the map goes
through a randomised detector and processing chain (exposure curve, gamma, edge enhancement, blur,
noise) to 12-bit MONOCHROME2 pixels. The display window written with the file is randomised too.

Version 3 randomises everything that is not the label, so that a network trained on it cannot key on the
renderer's style: as in a real radiograph the heart is as dense as the mediastinum and the abdomen
below it (only its borders with the lungs are edges), lung markings branch from the hila, the ribs show
cortical edges and anterior arcs, and opacities, breast shadows, devices, wires, text and collimation
appear at random.

Version 4 replaces the ellipse of the heart by a cardiac silhouette drawn as the SCR annotations draw it (right
atrium from the superior vena cava to a sharp right cardiophrenic angle; left atrial appendage and the left
ventricle's long arc to the apex; about a third of the width right of the midline), and the lungs' medial
borders follow the mediastinum's contours above it (superior vena cava; aortic knob, aortopulmonary window,
pulmonary trunk) and the heart's borders beside it; the lower lobes behind the heart show through it a little.

Label values (SCR convention, patient's right on the image left as in every PA radiograph):
0 background, 1 right lung, 2 left lung, 3 heart, 4 right clavicle, 5 left clavicle.
Where structures overlap the later one wins: lung, then heart, then clavicle.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

__all__ = ["generate_cxr", "ANTERIOR_RIBS", "ZOOM", "CXR_CLASSES", "CXR_MAX_VALUE"]

CXR_CLASSES = ("background", "right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle")
CXR_MAX_VALUE = 4095  # 12 bits stored
ANTERIOR_RIBS = (0.2, 0.6)  # the fixed splits' range of the anterior ribs' density relative to the posterior ones'
ZOOM = (0.92, 1.3)  # the fixed splits' range of the patient's zoom in the field of view (above 1: larger)


def _harmonics(rng: np.random.Generator, t: np.ndarray, amp: float, n: int = 4) -> np.ndarray:
    """A smooth random function of ``t`` (periodic on [0, 1]): a few sines with decaying amplitude."""
    out = np.zeros_like(t)
    for k in range(1, n + 1):
        out += (amp / k) * rng.uniform(-1.0, 1.0) * np.sin(2 * np.pi * k * t + rng.uniform(0, 2 * np.pi))
    return out


def _band_polygon(xs: np.ndarray, ys: np.ndarray, half_w: np.ndarray, size: int) -> list[tuple[float, float]]:
    """Closed polygon (pixel coordinates) of a band of half-width ``half_w`` around a centreline (normalised)."""
    dx = np.gradient(xs)
    dy = np.gradient(ys)
    norm = np.hypot(dx, dy) + 1e-12
    nx, ny = -dy / norm, dx / norm
    upper = np.stack([xs + nx * half_w, ys + ny * half_w], 1)
    lower = np.stack([xs - nx * half_w, ys - ny * half_w], 1)[::-1]
    pts = np.concatenate([upper, lower]) * size
    return [tuple(p) for p in pts]


def _draw(polys: list[list[tuple[float, float]]], size: int) -> np.ndarray:
    """Rasterise polygons (union) into a bool mask."""
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for poly in polys:
        draw.polygon(poly, fill=1)
    return np.asarray(img, dtype=bool)


def _upsample_matrix(n_small: int, factor: int) -> np.ndarray:
    """(n_small * factor, n_small) matrix of linear interpolation between pixel centres (edges held)."""
    n = n_small * factor
    pos = np.clip((np.arange(n) + 0.5) / factor - 0.5, 0, n_small - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_small - 1)
    w1 = (pos - i0).astype(np.float32)
    m = np.zeros((n, n_small), np.float32)
    np.add.at(m, (np.arange(n), i0), 1 - w1)
    np.add.at(m, (np.arange(n), i1), w1)
    return m


def _upsample(small: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling by an integer ``factor`` as two small matrix products (fast, separable)."""
    m = _upsample_matrix(small.shape[0], factor)
    return m @ small.astype(np.float32) @ m.T


def _coarse_blur(field: np.ndarray, sigma: float, factor: int = 4) -> np.ndarray:
    """Gaussian blur with a large ``sigma`` (pixels of ``field``), computed on a grid ``factor`` times coarser."""
    size = field.shape[0]
    small = field.reshape(size // factor, factor, size // factor, factor).mean(axis=(1, 3))
    return _upsample(ndimage.gaussian_filter(small, sigma / factor, mode="nearest"), factor)


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float, factor: int = 8) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (``sigma`` in full-resolution pixels)."""
    small = rng.standard_normal((size // factor, size // factor)).astype(np.float32)
    small = ndimage.gaussian_filter(small, sigma / factor, mode="wrap")
    small /= small.std() + 1e-8
    return _upsample(small, factor)


def _ellipse(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Normalised squared radius of an axis-aligned ellipse (< 1 inside)."""
    return ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2


def _at_column(curve: np.ndarray, x: float) -> np.floating:
    """The value of a per-column curve (e.g. the diaphragm's height ``ydia``) at normalised column ``x``."""
    return curve[int(np.clip(x * len(curve), 0, len(curve) - 1))]


def _polyline(rng: np.random.Generator, start: np.ndarray, heading: float, length: float, n: int = 24,
              wander: float = 0.15) -> np.ndarray:
    """(n, 2) points (x, y, normalised) of a smoothly wandering curve."""
    turns = np.cumsum(rng.normal(0.0, wander, n))
    steps = np.stack([np.cos(heading + turns), np.sin(heading + turns)], 1) * (length / n)
    return start + np.concatenate([[[0.0, 0.0]], np.cumsum(steps, 0)[:-1]])


def _bezier(points: list, n: int) -> np.ndarray:
    """(n, 2) points of the Bezier curve with control points ``points`` (each (x, y), normalised)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = [np.asarray(p, dtype=float) for p in points]
    while len(pts) > 1:
        pts = [(1 - t) * a + t * b for a, b in zip(pts[:-1], pts[1:])]
    return pts[0]


def _cardiac_outline(rng: np.random.Generator, x0: float, thorax: float, ydia: np.ndarray, heart_size: float,
                     y_top_min: float) -> tuple[np.ndarray, dict]:
    """Closed outline ``(K, 2)`` (normalised x, y) of the cardiac silhouette as the SCR annotations draw it.

    Right border: the right atrium, a convex arc from its junction with the superior vena cava down to a
    sharp right cardiophrenic angle. Left border: the left atrial appendage (flat, concave or bulging) under
    the pulmonary trunk, then the left ventricle's long convex arc out to the apex and down to the left
    cardiophrenic angle. Top: a line under the hila from the appendage to the atrium. Bottom: the diaphragm,
    or a little below it between the angles. About a third of the width lies right of the midline; the
    cardiothoracic ratio follows ``heart_size`` (0.9-1.6 -> about 0.35-0.60 of ``thorax``, the width between
    the lungs' lateral borders). Also returns the landmarks the lungs' medial borders follow."""
    width = (0.35 + 0.25 * (heart_size - 0.9) / 0.7) * thorax
    right = width * rng.uniform(0.25, 0.38)
    left = width - right
    p4 = np.array([x0 + left * rng.uniform(0.86, 0.97), 0.0])  # left cardiophrenic angle, under the apex
    p5 = np.array([x0 - right * rng.uniform(0.75, 0.95), 0.0])  # right cardiophrenic angle
    p4[1], p5[1] = _at_column(ydia, p4[0]), _at_column(ydia, p5[0])
    y_laa = max(p4[1] - width * rng.uniform(0.72, 0.95), y_top_min)
    p2 = np.array([x0 + left * rng.uniform(0.25, 0.4), y_laa])  # top of the left atrial appendage
    p1 = np.array([x0 - right * rng.uniform(0.4, 0.65), y_laa + (p5[1] - y_laa) * rng.uniform(0.05, 0.3)])  # SVC / RA
    h_l, h_r = p4[1] - p2[1], p5[1] - p1[1]
    p3 = np.array([x0 + left * rng.uniform(0.5, 0.65), p2[1] + h_l * rng.uniform(0.15, 0.28)])  # appendage / ventricle
    chord = p3 - p2
    outward = np.array([chord[1], -chord[0]]) / (np.hypot(*chord) + 1e-9)
    top = _bezier([p1, (p1 + p2) / 2 - [0.0, rng.uniform(0.0, 0.12) * (p2[0] - p1[0])], p2], 16)
    appendage = _bezier([p2, (p2 + p3) / 2 + outward * rng.uniform(-0.3, 1.0) * 0.05 * left, p3], 10)
    ventricle = _bezier([p3, [p3[0] + (x0 + left - p3[0]) * rng.uniform(0.6, 1.0), p3[1] + 0.2 * h_l],
                         [x0 + left * rng.uniform(1.05, 1.15), p4[1] - h_l * rng.uniform(0.1, 0.3)], p4], 32)
    xb = np.linspace(p4[0], p5[0], 24)
    sag = rng.uniform(0.0, 0.06) * h_l * np.sin(np.linspace(0.0, np.pi, 24))
    yb = np.maximum(np.interp(xb, [p5[0], p4[0]], [p5[1], p4[1]]) + sag,
                    [float(_at_column(ydia, x)) + 0.004 for x in xb])
    atrium = _bezier([p5, [x0 - right * rng.uniform(1.1, 1.3), p5[1] - h_r * rng.uniform(0.1, 0.3)],
                      [x0 - right * rng.uniform(0.95, 1.15), p1[1] + h_r * rng.uniform(0.2, 0.4)], p1], 24)
    outline = np.concatenate([top, appendage[1:], ventricle[1:], np.stack([xb, yb], 1)[1:], atrium[1:-1]])
    t = np.linspace(0.0, 1.0, len(outline), endpoint=False)
    outline = outline + np.stack([_harmonics(rng, t, 0.003), _harmonics(rng, t, 0.003)], 1)
    return outline, {"svc": (float(p1[0]), float(p1[1])), "appendage": (float(p2[0]), float(p2[1]))}


def _vessels(rng: np.random.Generator, hila: list[tuple[float, float, int]], size: int) -> np.ndarray:
    """Lung markings: tapering vessel trees that branch out of the hila, as a float map in [0, 1]."""
    img = Image.new("F", (size, size), 0.0)
    draw = ImageDraw.Draw(img)

    def grow(p: np.ndarray, heading: float, width: float, length: float, depth: int) -> None:
        pts = _polyline(rng, p, heading, length, n=10, wander=0.12)
        for a, b, w in zip(pts[:-1], pts[1:], np.linspace(width, 0.6 * width, len(pts) - 1)):
            draw.line([tuple(a * size), tuple(b * size)], fill=1.0, width=max(1, int(round(w * size))))
        if depth < 3:
            for _ in range(int(rng.integers(2, 4))):
                k = int(rng.integers(3, len(pts) - 1))
                grow(pts[k], heading + rng.normal(0, 0.6), width * rng.uniform(0.5, 0.7), length * rng.uniform(0.5, 0.75),
                     depth + 1)

    for hx, hy, side in hila:
        for _ in range(int(rng.integers(4, 7))):
            heading = np.pi / 2 - side * rng.uniform(0.2, 2.6) if rng.random() < 0.5 else -np.pi / 2 - side * rng.uniform(-0.9, 1.2)
            heading = float(np.arctan2(np.sin(heading), side * abs(np.cos(heading))))  # always outwards
            grow(np.array([hx, hy]), heading, rng.uniform(0.006, 0.011), rng.uniform(0.12, 0.22), 0)
    return np.asarray(img, dtype=np.float32)


def _anatomy(rng: np.random.Generator, size: int) -> dict:
    """Masks (bool, ``(size, size)``) and case parameters of one patient, in the patient frame."""
    f32 = np.float32
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(20, 85))
    s = float(rng.uniform(0.9, 1.06))
    lung_h = float(rng.uniform(0.86, 1.14))
    lung_w = float(rng.uniform(0.88, 1.1))
    heart_size = float(rng.uniform(0.9, 1.6))  # cardiothoracic ratio about 0.35-0.60
    clav_angle = float(rng.uniform(4.0, 24.0))
    clav_width = float(rng.uniform(0.024, 0.04))
    x0, top = 0.5 + float(rng.uniform(-0.02, 0.02)), 0.02 + float(rng.uniform(-0.02, 0.02))

    px = (np.arange(size, dtype=f32) + 0.5) / size
    X, Y = px[None, :], px[:, None]

    # body outline: neck, torso widening to the shoulders, arms at the sides (or held away / out of view)
    v = (px - top) / s
    shoulder_y = 0.10 + rng.uniform(-0.02, 0.02)
    neck_hw = 0.085 * s * rng.uniform(0.85, 1.15)
    torso_hw = 0.41 * s * lung_w * rng.uniform(0.97, 1.08)
    rise = np.sin(np.clip((v - shoulder_y + 0.06) / 0.13, 0.0, 1.0) * np.pi / 2) ** 1.5
    hw_torso = neck_hw + (torso_hw - neck_hw) * rise + 0.03 * s * np.clip(v - 0.5, 0.0, None)
    hw_torso = np.where(v < -0.05, 0.0, hw_torso).astype(f32)
    body_torso = np.abs(X - x0) < hw_torso[:, None]
    prof_torso = np.sqrt(np.clip(1.0 - ((X - x0) / np.maximum(hw_torso[:, None], 1e-3)) ** 2, 0.0, 1.0))
    dxa = np.abs(X - x0)
    arm_gap = 0.018 * s + (rng.uniform(0.0, 0.08) if rng.random() < 0.4 else 0.0)
    arm_in, arm_out = torso_hw + arm_gap, torso_hw + arm_gap + 0.13 * s * rng.uniform(0.85, 1.2)
    body_arm = (v > shoulder_y + 0.03)[:, None] & (dxa > arm_in) & (dxa < arm_out)
    prof_arm = np.sqrt(np.clip(1.0 - ((dxa - (arm_in + arm_out) / 2) / ((arm_out - arm_in) / 2)) ** 2, 0.0, 1.0))
    sh = _ellipse(dxa, Y, torso_hw + 0.02 * s, top + (shoulder_y + 0.11) * s, 0.11 * s, 0.09 * s)
    body = body_torso | body_arm | (sh < 1.0)
    prof = np.maximum(np.maximum(prof_torso * body_torso, prof_arm * body_arm), np.sqrt(np.clip(1.0 - sh, 0, 1)) * (sh < 1))

    # diaphragm per column; the patient's right (image left) hemidiaphragm is higher (liver)
    y_apex = top + (0.10 + rng.uniform(-0.025, 0.025)) * s
    base_len = 0.60 * s * lung_h
    y_cp_r = y_apex + base_len * rng.uniform(0.97, 1.04)
    y_cp_l = y_apex + base_len * rng.uniform(0.99, 1.07)
    y_dome_r = y_cp_r - (0.11 + rng.uniform(-0.03, 0.03)) * s
    y_dome_l = y_cp_l - (0.10 + rng.uniform(-0.03, 0.03)) * s
    lat_r = x0 - 0.35 * s * lung_w * rng.uniform(0.95, 1.05)
    lat_l = x0 + 0.35 * s * lung_w * rng.uniform(0.95, 1.05)
    xc_r, xc_l = x0 - 0.15 * s * rng.uniform(0.8, 1.2), x0 + 0.16 * s * rng.uniform(0.8, 1.2)
    yr = y_dome_r + (y_cp_r - y_dome_r) * ((px - xc_r) / (lat_r - xc_r)) ** 2
    yl = y_dome_l + (y_cp_l - y_dome_l) * ((px - xc_l) / (lat_l - xc_l)) ** 2
    cap = max(y_dome_r, y_dome_l) + (0.03 + rng.uniform(0.0, 0.02)) * s
    ydia = np.where((px > xc_r) & (px < xc_l), np.minimum(np.minimum(yr, yl), cap), np.minimum(yr, yl))
    ydia = (ndimage.gaussian_filter1d(ydia, 0.01 * size) + _harmonics(rng, px, 0.004)).astype(f32)

    medial_hw = 0.07 * s * rng.uniform(0.8, 1.3)  # where the hila sit, off the midline
    # the cardiac silhouette first: the lungs' medial borders follow it and the mediastinum above it
    heart_poly, marks = _cardiac_outline(rng, x0, lat_l - lat_r, ydia, heart_size, y_apex + rng.uniform(0.24, 0.32) * s)
    heart = _draw([[tuple(p) for p in heart_poly * size]], size) & (Y < ydia[None, :] + 0.006)
    (x_svc, y_svc), (x_laa, y_laa) = marks["svc"], marks["appendage"]
    # left mediastinal border from the top down: aortic knob, aortopulmonary window, pulmonary trunk, appendage
    y_knob = y_apex + rng.uniform(0.13, 0.19) * s
    knob = (x0 + rng.uniform(0.05, 0.085) * s, y_knob, rng.uniform(0.022, 0.035) * s)
    y_pt = y_knob + (y_laa - y_knob) * rng.uniform(0.5, 0.7)
    left_border = (
        [y_apex, y_knob - 0.05 * s, y_knob, y_knob + (y_pt - y_knob) * 0.5, y_pt, y_laa, 2.0],
        [x0 + 0.03 * s, x0 + 0.035 * s, knob[0], x0 + rng.uniform(0.035, 0.05) * s, x0 + rng.uniform(0.04, 0.07) * s,
         x_laa, x_laa])
    right_border = ([y_apex, y_svc - 0.1 * s, y_svc, 2.0],
                    [x0 - 0.03 * s, x_svc - rng.uniform(0.0, 0.015) * s, x_svc + 0.005 * s, x_svc + 0.005 * s])

    def lung_mask(side: int, lateral: float, y_cp: float) -> np.ndarray:
        t = (px - y_apex) / (y_cp - y_apex)  # 0 at the apex, 1 at the costophrenic angle
        x_a = x0 + side * 0.17 * s * lung_w * rng.uniform(0.9, 1.1)
        ys, xs = left_border if side > 0 else right_border
        medial = ndimage.gaussian_filter1d(np.interp(px, ys, xs), 0.008 * size)  # the mediastinum's edge
        g_lat = np.sqrt(np.clip(1.0 - (1.0 - np.clip(t / rng.uniform(0.3, 0.5), 0, 1)) ** 2, 0, 1))
        g_med = np.sqrt(np.clip(1.0 - (1.0 - np.clip(t / rng.uniform(0.2, 0.32), 0, 1)) ** 2, 0, 1))
        bulge = 0.015 * s * np.sin(np.pi * np.clip(t, 0, 1)) * rng.uniform(0.3, 1.5)
        x_lat = x_a + (lateral - x_a) * g_lat + side * bulge + _harmonics(rng, np.clip(t, 0, 1), 0.006)
        x_med = x_a + (medial - x_a) * g_med + _harmonics(rng, np.clip(t, 0, 1), 0.003)
        lo, hi = np.minimum(x_lat, x_med), np.maximum(x_lat, x_med)
        return (t >= 0)[:, None] & (X > lo[:, None]) & (X < hi[:, None]) & (Y < ydia[None, :])

    lung_r, lung_l = lung_mask(-1, lat_r, y_cp_r), lung_mask(+1, lat_l, y_cp_l)

    # clavicles: S-shaped bands crossing the lung apices
    clav = []
    for side in (-1, +1):
        t = np.linspace(0.0, 1.0, 48)
        length = 0.30 * s * lung_w * rng.uniform(0.9, 1.1)
        ang = np.deg2rad(clav_angle + rng.uniform(-3.0, 3.0))
        y_med = y_apex + rng.uniform(0.05, 0.10) * s + length * np.tan(ang) * (0.105 * s / length)
        xs = x0 + side * (0.035 * s + length * t)
        ys = y_med - length * np.tan(ang) * t + 0.01 * s * np.sin(2 * np.pi * t) * rng.uniform(0.3, 1.2)
        w = clav_width * s * (1.0 + 0.18 * np.cos(2 * np.pi * t)) / 2
        w = w * np.sqrt(np.clip(np.minimum(t, 1 - t) / 0.03, 0.35, 1.0))
        clav.append(_draw([_band_polygon(xs, ys, w, size)], size))

    # ribs: posterior arcs from the spine, anterior arcs from the lateral wall down towards the sternum
    n_ribs = 10
    spacing = (max(y_cp_r, y_cp_l) - y_apex) / (n_ribs - 1.5)
    posterior, anterior = [], []
    for side in (-1, +1):
        lateral = abs((lat_r if side < 0 else lat_l) - x0) + 0.03 * s
        for k in range(n_ribs):
            t = np.linspace(0.0, 1.0, 40)
            y_k = y_apex - 0.03 * s + k * spacing + rng.uniform(-0.008, 0.008)
            reach = lateral * (0.55 + 0.45 * np.sqrt(min(1.0, (k + 1) / 4)))
            xs = x0 + side * (0.03 * s + reach * t)
            ys = y_k - 0.03 * s * np.sin(np.pi * t * 0.9) + (0.07 + 0.012 * k) * s * t**2
            posterior.append(_band_polygon(xs, ys, (0.007 + 0.005 * t) * s * rng.uniform(0.85, 1.15), size))
            if k < 7:
                xa = x0 + side * (lateral - (lateral - 0.12 * s) * t)
                ya = y_k + 0.09 * s + 0.04 * s * k / 7 + 0.10 * s * t ** 1.3
                anterior.append(_band_polygon(xa, ya, np.full_like(t, 0.011 * s), size))
    return {
        "X": X, "Y": Y, "x0": x0, "s": s, "top": top, "y_apex": y_apex, "spacing": spacing, "ydia": ydia,
        "body": body, "body_torso": body_torso, "prof": prof.astype(f32), "torso_hw": torso_hw,
        "shoulder_y": shoulder_y, "arm_gap": arm_gap, "lung_r": lung_r, "lung_l": lung_l, "heart": heart, "knob": knob,
        "clav_r": clav[0], "clav_l": clav[1], "ribs_posterior": _draw(posterior, size), "ribs_anterior": _draw(anterior, size),
        "hila": [(x0 - medial_hw - 0.04 * s, y_apex + 0.27 * s, -1), (x0 + medial_hw + 0.04 * s, y_apex + 0.25 * s, +1)],
        "sex": sex, "age": age, "heart_size": heart_size, "lung_height": lung_h, "lung_width": lung_w,
        "clavicle_angle_deg": clav_angle, "clavicle_width_px": clav_width * s * size, "scale": s,
    }


def _attenuation(rng: np.random.Generator, an: dict, size: int, anterior_ribs: tuple[float, float]) -> np.ndarray:
    """Attenuation map (float32, >= 0, about 0..1.3) of the anatomy in the patient frame; ``anterior_ribs``: the
    range of the anterior ribs' density relative to the posterior ones'."""
    f32 = np.float32
    X, Y, x0, s, ydia = an["X"], an["Y"], an["x0"], an["s"], an["ydia"]
    px_scale = size / 1024
    body = an["body"].astype(f32)
    body_soft = ndimage.gaussian_filter(body, 2.0 * px_scale)
    habitus = rng.uniform(0.75, 1.35)  # thin to heavy patients: more soft tissue, less contrast
    A = body_soft * (0.20 + 0.48 * an["prof"]) * habitus + 0.05 * _coarse_blur(body, 40 * px_scale)
    thorax = Y < ydia[None, :]
    abdomen = an["body"] & ~thorax
    A += rng.uniform(0.22, 0.40) * abdomen * an["prof"]
    if rng.random() < 0.6:  # gastric air under the left hemidiaphragm (image right)
        gx, gy = x0 + s * rng.uniform(0.12, 0.24), _at_column(ydia, x0 + 0.18 * s)
        gas = _ellipse(X, Y, gx, gy + s * rng.uniform(0.03, 0.06), s * rng.uniform(0.03, 0.07), s * rng.uniform(0.02, 0.04))
        A -= rng.uniform(0.05, 0.16) * np.clip(1 - gas, 0, 1) ** 0.3 * abdomen
    bowel = np.clip(_smooth_noise(rng, size, 30 * px_scale) - 1.0, 0, None)
    A -= rng.uniform(0.0, 0.06) * bowel * abdomen * (Y > ydia[None, :] + 0.08)

    # mediastinum and heart: airless, equally dense, so only their borders with the lungs are edges
    dmid = X - x0
    medi = np.exp(-((dmid / (0.09 * s * rng.uniform(0.85, 1.2))) ** 6)) * (Y > an["top"] + 0.08 * s) * thorax
    kx, ky, kr = an["knob"]
    knob = np.exp(-(((X - kx + 0.6 * kr) / kr) ** 2 + ((Y - ky) / kr) ** 2))
    heart = an["heart"].astype(f32)
    heart_body = np.clip(2.5 * _coarse_blur(heart, 20 * px_scale) - 0.5, 0, 1) * heart  # thickest in the middle
    A += rng.uniform(0.17, 0.26) * np.maximum(np.maximum(medi, heart), 0.8 * knob)
    A += rng.uniform(-0.02, 0.03) * heart_body  # heart a little denser or lighter than the mediastinum
    vert = 0.85 + 0.15 * np.cos(2 * np.pi * (Y - an["y_apex"]) / (an["spacing"] * 0.95)) ** 2
    A += rng.uniform(0.08, 0.2) * np.exp(-((dmid / (0.038 * s)) ** 8)) * vert
    trachea = np.exp(-((dmid / (0.016 * s)) ** 4)) * np.clip((an["y_apex"] + 0.16 * s - Y) / (0.03 * s), 0, 1)
    A -= rng.uniform(0.05, 0.12) * trachea * (Y > an["top"])

    # lungs: air, deeper is darker; vessels branching from the hila; sometimes opacities
    lungs = (an["lung_r"] | an["lung_l"]) & ~an["heart"]
    lung_f = lungs.astype(f32)
    depth = np.clip(_coarse_blur(lung_f, 22 * px_scale), 0, 1)
    A -= lung_f * (rng.uniform(0.10, 0.17) + rng.uniform(0.06, 0.15) * depth)
    hila = sum(np.exp(-_ellipse(X, Y, hx, hy, 0.05 * s, 0.09 * s)) for hx, hy, _ in an["hila"])
    vessels = ndimage.gaussian_filter(_vessels(rng, an["hila"], size), 1.0 * px_scale)
    texture = 0.5 * np.abs(_smooth_noise(rng, size, 6.0 * px_scale)) + 0.5 * _smooth_noise(rng, size, 18.0 * px_scale)
    A += lung_f * (rng.uniform(0.02, 0.07) * vessels + rng.uniform(0.005, 0.025) * texture + rng.uniform(0.04, 0.12) * hila)
    # the lower lobes behind the heart: some air and vessels show through it, more towards its borders
    behind = heart * thorax * np.clip(np.abs(dmid) / (0.12 * s), 0, 1)
    A -= behind * (rng.uniform(0.0, 0.08) - rng.uniform(0.0, 0.04) * vessels)
    if rng.random() < 0.35:  # nodules or a patchy consolidation; the lung label does not change
        blobs = np.zeros((size, size), f32)
        for _ in range(int(rng.integers(1, 9))):
            r = s * rng.uniform(0.008, 0.04)
            cx, cy = rng.uniform(x0 - 0.35 * s, x0 + 0.35 * s), rng.uniform(an["y_apex"], float(ydia.mean()))
            blobs += np.clip(1 - _ellipse(X, Y, cx, cy, r, r), 0, 1) ** 0.5
        if rng.random() < 0.4:
            blobs += np.clip(_smooth_noise(rng, size, 60 * px_scale) - 1.2, 0, None)
        A += rng.uniform(0.04, 0.14) * np.clip(blobs, 0, 1) * lung_f

    if an["sex"] == "F" and rng.random() < 0.85 or rng.random() < 0.1:  # breast shadows over the bases
        size_b = rng.uniform(0.7, 1.4)
        for side in (-1, +1):
            bx = x0 + side * 0.22 * s * rng.uniform(0.85, 1.15)
            by = _at_column(ydia, bx) - 0.01
            r = _ellipse(X, Y, bx, by, 0.17 * s * size_b, 0.12 * s * size_b)
            A += rng.uniform(0.03, 0.12) * np.clip(1.0 - r, 0, 1) ** 0.5 * body_soft

    # bones with brighter cortical edges: posterior and anterior ribs, clavicles, scapulae, humeral heads
    rib_amp = rng.uniform(0.02, 0.10)
    bones = rib_amp * (an["ribs_posterior"] & an["body_torso"]) * (1.0 - 0.5 * abdomen)
    bones = bones + rib_amp * rng.uniform(*anterior_ribs) * (an["ribs_anterior"] & an["body_torso"] & thorax)
    bones = bones + rng.uniform(0.12, 0.26) * (an["clav_r"] | an["clav_l"])
    bones = ndimage.gaussian_filter(bones.astype(f32), 1.0 * px_scale)
    A += bones + rng.uniform(1.0, 3.0) * np.clip(bones - ndimage.uniform_filter(bones, int(9 * px_scale) | 1), 0, None)
    for side in (-1, +1):
        hy_ = an["top"] + (an["shoulder_y"] + 0.16) * s
        hx_ = x0 + side * (an["torso_hw"] + an["arm_gap"] + 0.02 * s)
        r = _ellipse(X, Y, hx_, hy_, 0.065 * s, 0.07 * s)
        A += rng.uniform(0.08, 0.18) * (r < 1.0) + 0.10 * np.clip(1 - r, 0, 1)
        sx = x0 + side * (an["torso_hw"] - s * rng.uniform(0.02, 0.12))
        scap = _ellipse(X, Y, sx, hy_ + 0.12 * s, 0.06 * s, 0.16 * s)
        A += rng.uniform(0.02, 0.08) * (scap < 1.0) * body_soft
    return np.clip(A, 0.0, None).astype(f32)


def _frame(rng: np.random.Generator, A: np.ndarray, label: np.ndarray,
           zoom_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Zoom (in ``zoom_range``), shift and rotate the patient in the field of view; air fills what comes into view."""
    size = A.shape[0]
    zoom = float(rng.uniform(*zoom_range))
    angle = float(np.deg2rad(rng.uniform(-5.0, 5.0)))
    shift = rng.uniform(-0.04, 0.04, 2) * size
    centre = np.array([0.45 * size, 0.5 * size])  # (row, column) the zoom keeps in place: mid-lungs
    c, s_ = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s_], [s_, c]]) / zoom
    offset = centre + shift - matrix @ centre
    A = ndimage.affine_transform(A, matrix, offset, order=1, mode="constant", cval=0.0)
    label = ndimage.affine_transform(label, matrix, offset, order=0, mode="constant", cval=0)
    return A, label, {"zoom": zoom, "rotation_deg": float(np.rad2deg(angle)), "shift": tuple(float(v) / size for v in shift)}


def _devices(rng: np.random.Generator, size: int) -> np.ndarray:
    """Attenuation of what lies on or in the patient (in the field of view): ECG electrodes and wires, lines,
    a pacemaker, sternotomy wires and lead side markers. Mostly empty."""
    img = Image.new("F", (size, size), 0.0)
    draw = ImageDraw.Draw(img)

    def wire(start: np.ndarray, heading: float, length: float, width: float, value: float) -> None:
        pts = _polyline(rng, start, heading, length, wander=0.12) * size
        draw.line([tuple(p) for p in pts], fill=value, width=max(1, int(round(width * size))), joint="curve")

    if rng.random() < 0.3:  # ECG electrodes with their leads
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)
            r = rng.uniform(0.008, 0.013)
            draw.ellipse([(cx - r) * size, (cy - r) * size, (cx + r) * size, (cy + r) * size], outline=0.6,
                         width=max(1, size // 400))
            draw.ellipse([(cx - r / 3) * size, (cy - r / 3) * size, (cx + r / 3) * size, (cy + r / 3) * size], fill=1.0)
            wire(np.array([cx, cy]), rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6), 0.002, 0.4)
    if rng.random() < 0.2:  # central venous line or tube from the neck or a shoulder
        wire(np.array([rng.uniform(0.3, 0.7), 0.0]), np.pi / 2 + rng.normal(0, 0.3), rng.uniform(0.3, 0.55),
             rng.uniform(0.003, 0.008), rng.uniform(0.3, 0.8))
    if rng.random() < 0.08:  # pacemaker under the left clavicle (image right), leads to the heart
        cx, cy = rng.uniform(0.65, 0.8), rng.uniform(0.15, 0.25)
        draw.rounded_rectangle([(cx - 0.03) * size, (cy - 0.022) * size, (cx + 0.03) * size, (cy + 0.022) * size],
                               radius=size // 80, fill=1.5)
        for _ in range(2):
            wire(np.array([cx, cy]), np.pi * rng.uniform(0.6, 0.9), rng.uniform(0.3, 0.45), 0.003, 0.9)
    if rng.random() < 0.08:  # sternotomy wires along the midline
        for k in range(int(rng.integers(4, 7))):
            cy = 0.3 + 0.06 * k
            draw.ellipse([0.49 * size, cy * size, 0.51 * size, (cy + 0.015) * size], outline=1.2, width=max(1, size // 300))
    if rng.random() < 0.6:  # lead side marker in a corner
        font = ImageFont.load_default(size=max(8, int(size * rng.uniform(0.03, 0.06))))
        x, y = rng.choice([0.05, 0.85]), rng.choice([0.04, 0.88])
        draw.text((x * size, y * size), str(rng.choice(["R", "L", "PA", "R ERECT"])), fill=1.5, font=font)
    return np.asarray(img, dtype=np.float32)


def _collimation(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float] | None:
    """Soft-edged mask (1 inside the exposed field) and the display value outside it, or ``None``."""
    if rng.random() > 0.5:
        return None
    m = rng.uniform(0.0, 0.07, 4) * (rng.random(4) < 0.6)
    px = (np.arange(size, dtype=np.float32) + 0.5) / size
    rows = (px > m[0]) & (px < 1 - m[1])
    cols = (px > m[2]) & (px < 1 - m[3])
    mask = ndimage.gaussian_filter((rows[:, None] & cols[None, :]).astype(np.float32), size / 512)
    return mask, (1.0 if rng.random() < 0.5 else 0.0)  # unexposed (white) or electronically masked (black)


def _detector(rng: np.random.Generator, A: np.ndarray) -> np.ndarray:
    """Attenuation -> display-like values in [0, 1] through a randomised exposure curve and processing chain."""
    size = A.shape[0]
    px_scale = size / 1024
    k = rng.uniform(1.0, 2.2)
    img = (1.0 - np.exp(-k * A)) / (1.0 - np.exp(-k * 1.3))
    img = np.clip(img, 0, 1.2) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.7:  # unsharp masking / dynamic range compression of CR and DX processing
        img = img + rng.uniform(0.2, 1.2) * (img - _coarse_blur(img, rng.uniform(10, 45) * px_scale))
    if rng.random() < 0.35:  # an S-shaped look-up table
        c, w = rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.35)
        lo, hi = 1 / (1 + np.exp(c / w)), 1 / (1 + np.exp(-(1 - c) / w))
        img = (1 / (1 + np.exp(-(img - c) / w)) - lo) / (hi - lo)
    img = ndimage.gaussian_filter(img.astype(np.float32), rng.uniform(0.5, 2.0) * px_scale)
    X = (np.arange(size, dtype=np.float32) + 0.5)[None, :] / size
    Y = X.T
    img += 0.05 * (rng.uniform(-1, 1) * (X - 0.5) + rng.uniform(-1, 1) * (Y - 0.5)) * (0.3 + img)
    noise = rng.standard_normal((size + 2, size + 2)).astype(np.float32)
    noise = 0.25 * noise[:-2] + 0.5 * noise[1:-1] + 0.25 * noise[2:]
    noise = 0.25 * noise[:, :-2] + 0.5 * noise[:, 1:-1] + 0.25 * noise[:, 2:]
    img += rng.uniform(0.002, 0.012) * (1.0 + 2.0 * np.clip(img, 0, 1)) * noise
    return img


def generate_cxr(rng: np.random.Generator, size: int = 1024, anterior_ribs: tuple[float, float] = ANTERIOR_RIBS,
                 zoom: tuple[float, float] = ZOOM) -> tuple[np.ndarray, np.ndarray, dict]:
    """Generate one PA chest radiograph phantom and its label map.

    Args:
        rng: the only source of randomness; the same generator state gives the same case.
        size: output side in pixels (square), a multiple of 8, at least 128. The anatomy spans
            the image as a JSRT radiograph (2048 px of 0.175 mm) does, so at 1024 a pixel is 0.35 mm.
        anterior_ribs: ``(low, high)``, the range (0 <= low <= high) of the anterior ribs' density relative to the
            posterior ribs'. The fixed phantom splits use the default; the training stream may widen it (the
            anterior ribs slope down towards the midline, the posterior ones away from it, so a network can take
            the ribs' slope as a lung's side where the anterior ones are always faint: docs/real_images.md).
        zoom: ``(low, high)``, the range (0 < low <= high) of the patient's zoom in the field of view (below 1: the
            patient smaller, air around); the fixed splits use the default, the training stream may widen it.

    Returns:
        ``(pixels, label, info)``: ``pixels`` uint16 (size, size) in 0..4095, MONOCHROME2 sense
        (bone and soft tissue bright, air dark); ``label`` uint8 (size, size) with values 0..5 as in
        :data:`CXR_CLASSES`; ``info`` a dict of the sampled case parameters (``sex``, ``age``,
        ``heart_size``, ``lung_height``, ``lung_width``, ``clavicle_angle_deg``, ``zoom``, ``rotation_deg``...)
        and ``window``, the VOI window (center, width) to store with the pixels.
    """
    if not isinstance(size, (int, np.integer)) or size < 128 or size % 8:
        raise ValueError(f"Argument size should be an integer multiple of 8 and >= 128, got {size!r}.")
    if np.shape(anterior_ribs) != (2,) or not 0 <= anterior_ribs[0] <= anterior_ribs[1]:
        raise ValueError(f"Argument anterior_ribs should be (low, high) with 0 <= low <= high, got {anterior_ribs!r}.")
    if np.shape(zoom) != (2,) or not 0 < zoom[0] <= zoom[1]:
        raise ValueError(f"Argument zoom should be (low, high) with 0 < low <= high, got {zoom!r}.")
    size = int(size)
    return _render(rng, _anatomy(rng, size), size, anterior_ribs, zoom)


def _render(rng: np.random.Generator, an: dict, size: int, anterior_ribs: tuple[float, float],
            zoom: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`generate_cxr` from the anatomy on: label map, attenuation, framing, devices, detector, window."""
    label = np.zeros((size, size), np.uint8)
    for value, key in enumerate(("lung_r", "lung_l", "heart", "clav_r", "clav_l"), start=1):
        label[an[key]] = value
    A, label, framing = _frame(rng, _attenuation(rng, an, size, anterior_ribs), label, zoom)
    A += _devices(rng, size)
    img = _detector(rng, A)
    shutter = _collimation(rng, size)
    if shutter is not None:
        mask, outside = shutter
        img = mask * img + (1.0 - mask) * outside
    lo, hi = rng.uniform(0.0, 600.0), rng.uniform(2800.0, 4095.0)
    pixels = np.clip(np.rint(lo + (hi - lo) * img), 0, CXR_MAX_VALUE).astype(np.uint16)
    p_lo, p_hi = np.percentile(pixels, [rng.uniform(0.0, 2.0), rng.uniform(98.0, 100.0)])
    widen = rng.uniform(0.95, 2.5)  # CR windows are often much wider than the data
    window = (float((p_lo + p_hi) / 2 + rng.uniform(-0.3, 0.05) * (p_hi - p_lo)), float(max((p_hi - p_lo) * widen, 1.0)))
    info = {k: an[k] for k in ("sex", "age", "heart_size", "lung_height", "lung_width", "clavicle_angle_deg",
                               "clavicle_width_px", "scale")}
    return pixels, label, {**info, **framing, "collimated": shutter is not None, "window": window}

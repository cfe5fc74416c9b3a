"""Procedural posterior-anterior chest radiograph phantom with JSRT/SCR-style labels.

The phantom is built in two stages. First the geometry: body outline, lungs, heart, clavicles,
ribs, spine and diaphragm are drawn as parametric curves and rasterised (numpy broadcasting and
``PIL.ImageDraw``). Then an attenuation map is summed from the geometry and mapped through an
exposure curve to 12-bit MONOCHROME2 pixels (more attenuation = brighter), followed by blur and noise.

Label values (SCR convention, patient's right on the image left as in every PA radiograph):
0 background, 1 right lung, 2 left lung, 3 heart, 4 right clavicle, 5 left clavicle.
Where structures overlap the later one wins: lung, then heart, then clavicle.

The rendering is chosen so that every label boundary is an image edge, yet no single intensity
threshold separates a structure: air outside the body is as dark as the lungs, ribs, spine and
humeral heads are as bright as the clavicles, the mediastinum is as bright as the heart.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

__all__ = ["generate_cxr", "CXR_CLASSES", "CXR_MAX_VALUE"]

CXR_CLASSES = ("background", "right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle")
CXR_MAX_VALUE = 4095  # 12 bits stored


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


def generate_cxr(rng: np.random.Generator, size: int = 1024) -> tuple[np.ndarray, np.ndarray, dict]:
    """Generate one PA chest radiograph phantom and its label map.

    Args:
        rng: the only source of randomness; the same generator state gives the same case.
        size: output side in pixels (square), a multiple of 8, at least 128. The anatomy spans
            the image as a JSRT radiograph (2048 px of 0.175 mm) does, so at 1024 a pixel is 0.35 mm.

    Returns:
        ``(pixels, label, info)``: ``pixels`` uint16 (size, size) in 0..4095, MONOCHROME2 sense
        (bone and soft tissue bright, air dark); ``label`` uint8 (size, size) with values 0..5 as in
        :data:`CXR_CLASSES`; ``info`` a dict of the sampled case parameters (``sex``, ``age``,
        ``heart_size``, ``lung_height``, ``lung_width``, ``clavicle_angle_deg``, ``shift``...).
    """
    if not isinstance(size, (int, np.integer)) or size < 128 or size % 8:
        raise ValueError(f"Argument size should be an integer multiple of 8 and >= 128, got {size!r}.")
    size = int(size)
    f32 = np.float32

    # ---------------------------------------------------------------- case parameters
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(20, 85))
    shift_x = float(rng.uniform(-0.03, 0.03))
    shift_y = float(rng.uniform(-0.03, 0.03))
    scale = float(rng.uniform(0.93, 1.05))
    lung_h = float(rng.uniform(0.88, 1.12))  # relative lung height
    lung_w = float(rng.uniform(0.9, 1.08))  # relative thorax / lung width
    heart_size = float(rng.uniform(0.8, 1.3))
    clav_angle = float(rng.uniform(6.0, 22.0))
    clav_width = float(rng.uniform(0.026, 0.038))
    exposure = float(rng.uniform(0.8, 1.25))
    contrast = float(rng.uniform(0.85, 1.15))

    x0 = 0.5 + shift_x  # midline (normalised)
    top = 0.02 + shift_y  # top of the neck region
    s = scale

    px = (np.arange(size, dtype=f32) + 0.5) / size  # normalised pixel centres
    X = px[None, :]
    Y = px[:, None]

    # ---------------------------------------------------------------- body outline and arms
    v = (px - top) / s  # row coordinate relative to the neck
    shoulder_y = 0.10 + rng.uniform(-0.015, 0.015)
    neck_hw = 0.085 * s * rng.uniform(0.9, 1.1)
    torso_hw = 0.41 * s * lung_w * rng.uniform(0.97, 1.03)
    rise = np.clip((v - shoulder_y + 0.06) / 0.13, 0.0, 1.0)
    rise = np.sin(rise * np.pi / 2) ** 1.5
    hw_torso = neck_hw + (torso_hw - neck_hw) * rise + 0.03 * s * np.clip(v - 0.5, 0.0, None)
    hw_torso = np.where(v < -0.05, 0.0, hw_torso).astype(f32)
    body_torso = np.abs(X - x0) < hw_torso[:, None]
    prof_torso = np.sqrt(np.clip(1.0 - ((X - x0) / np.maximum(hw_torso[:, None], 1e-3)) ** 2, 0.0, 1.0))

    arm_in = torso_hw + 0.018 * s
    arm_top = shoulder_y + 0.03
    arm_in_v = np.where(v < arm_top + 0.18, torso_hw - 0.05 * s + (v - arm_top) * 0.55 * s, arm_in)
    arm_in_v = np.clip(arm_in_v, torso_hw - 0.05 * s, arm_in).astype(f32)
    arm_out = (torso_hw + 0.15 * s) * np.ones_like(v)
    arm_rows = v > arm_top
    dxa = np.abs(X - x0)
    body_arm = arm_rows[:, None] & (dxa > arm_in_v[:, None]) & (dxa < arm_out[:, None])
    arm_c = 0.5 * (arm_in_v + arm_out)
    arm_hw = 0.5 * (arm_out - arm_in_v)
    prof_arm = np.sqrt(np.clip(1.0 - ((dxa - arm_c[:, None]) / np.maximum(arm_hw[:, None], 1e-3)) ** 2, 0.0, 1.0))
    # shoulder cap joining torso and arm
    sh_cx = torso_hw + 0.02 * s
    sh_cy = top + (shoulder_y + 0.11) * s
    sh = ((dxa - sh_cx) / (0.11 * s)) ** 2 + ((Y - sh_cy) / (0.09 * s)) ** 2
    body_shoulder = sh < 1.0
    body = body_torso | body_arm | body_shoulder
    body_prof = np.maximum(np.maximum(prof_torso * body_torso, prof_arm * body_arm),
                           np.sqrt(np.clip(1.0 - sh, 0.0, 1.0)) * body_shoulder).astype(f32)

    # ---------------------------------------------------------------- diaphragm (per column)
    # patient's right (image left) hemidiaphragm is higher (liver)
    y_apex = top + (0.13 + rng.uniform(-0.02, 0.02)) * s
    base_len = 0.56 * s * lung_h
    y_cp_r = y_apex + base_len * rng.uniform(0.98, 1.04)  # costophrenic angles
    y_cp_l = y_apex + base_len * rng.uniform(1.0, 1.07)
    y_dome_r = y_cp_r - (0.10 + rng.uniform(-0.02, 0.03)) * s
    y_dome_l = y_cp_l - (0.09 + rng.uniform(-0.02, 0.03)) * s
    lat_r = x0 - (0.33 * s * lung_w) * rng.uniform(0.96, 1.04)  # lateral lung borders at the base
    lat_l = x0 + (0.33 * s * lung_w) * rng.uniform(0.96, 1.04)
    xc_r = x0 - 0.15 * s * rng.uniform(0.85, 1.15)
    xc_l = x0 + 0.16 * s * rng.uniform(0.85, 1.15)
    yr = y_dome_r + (y_cp_r - y_dome_r) * ((px - xc_r) / (lat_r - xc_r)) ** 2
    yl = y_dome_l + (y_cp_l - y_dome_l) * ((px - xc_l) / (lat_l - xc_l)) ** 2
    cap = max(y_dome_r, y_dome_l) + (0.03 + rng.uniform(0.0, 0.02)) * s  # central tendon under the heart
    ydia = np.minimum(yr, yl)
    ydia = np.where((px > xc_r) & (px < xc_l), np.minimum(ydia, cap), ydia)
    ydia = (ndimage.gaussian_filter1d(ydia, 0.01 * size) + _harmonics(rng, px, 0.004)).astype(f32)

    # ---------------------------------------------------------------- lungs (per-row borders)
    def lung_mask(side: int, lateral: float, y_cp: float) -> np.ndarray:
        t = (px - y_apex) / (y_cp - y_apex)  # 0 at apex, 1 at costophrenic angle
        x_a = x0 + side * 0.17 * s * lung_w * rng.uniform(0.92, 1.08)  # apex centre
        medial = x0 + side * 0.045 * s * rng.uniform(0.85, 1.2)
        t_lat, t_med = rng.uniform(0.35, 0.5), rng.uniform(0.22, 0.32)
        g_lat = np.sqrt(np.clip(1.0 - (1.0 - np.clip(t / t_lat, 0, 1)) ** 2, 0, 1))
        g_med = np.sqrt(np.clip(1.0 - (1.0 - np.clip(t / t_med, 0, 1)) ** 2, 0, 1))
        # the lateral wall bulges slightly and comes in a little at the very base
        bulge = 0.015 * s * np.sin(np.pi * np.clip(t, 0, 1)) * rng.uniform(0.5, 1.5)
        x_lat = x_a + (lateral - x_a) * g_lat + side * bulge + _harmonics(rng, np.clip(t, 0, 1), 0.006)
        # medial border: slight concavity at the hilum
        hil = -side * 0.012 * s * np.exp(-(((t - 0.45) / 0.12) ** 2)) * rng.uniform(0.0, 1.5)
        x_med = x_a + (medial - x_a) * g_med + hil + _harmonics(rng, np.clip(t, 0, 1), 0.004)
        lo, hi = np.minimum(x_lat, x_med), np.maximum(x_lat, x_med)
        rows = (t >= 0)[:, None]
        return rows & (X > lo[:, None]) & (X < hi[:, None]) & (Y < ydia[None, :])

    lung_r = lung_mask(-1, lat_r, y_cp_r)
    lung_l = lung_mask(+1, lat_l, y_cp_l)

    # ---------------------------------------------------------------- heart (polar perturbed ellipse)
    hs = heart_size * s
    a_h = 0.145 * hs * rng.uniform(0.93, 1.07)
    b_h = 0.105 * hs * rng.uniform(0.93, 1.07)
    hx = x0 + 0.045 * s + 0.03 * (heart_size - 1.0) * s + rng.uniform(-0.01, 0.01)
    col = int(np.clip(hx * size, 0, size - 1))
    hy = ydia[col] - 0.55 * b_h
    rot = np.deg2rad(rng.uniform(15.0, 35.0))  # long axis runs down to the image right
    dxh, dyh = X - hx, Y - hy
    xr = dxh * np.cos(rot) + dyh * np.sin(rot)
    yr_ = -dxh * np.sin(rot) + dyh * np.cos(rot)
    rho = np.sqrt((xr / a_h) ** 2 + (yr_ / b_h) ** 2)
    theta = np.arctan2(yr_, xr) / (2 * np.pi)
    t_grid = np.linspace(-0.5, 0.5, 721, dtype=f32)
    heart_r = np.interp(theta, t_grid, 1.0 + _harmonics(rng, t_grid, 0.05, 3)).astype(f32)
    heart = (rho < heart_r) & (Y < ydia[None, :] + 0.004)

    # ---------------------------------------------------------------- clavicles (S-shaped bands)
    clav_polys = []
    for side in (-1, +1):
        n = 48
        t = np.linspace(0.0, 1.0, n)
        length = 0.30 * s * lung_w * rng.uniform(0.92, 1.08)
        ang = np.deg2rad(clav_angle + rng.uniform(-3.0, 3.0))
        # the clavicle crosses the lung apex (about 0.14 from the midline) 4-8 % of the image below its top
        t_apex = (0.14 * s - 0.035 * s) / length
        y_med = y_apex + rng.uniform(0.04, 0.08) * s + length * np.tan(ang) * t_apex
        xs = x0 + side * (0.035 * s + length * t)
        ys = y_med - length * np.tan(ang) * t + 0.01 * s * np.sin(2 * np.pi * t) * rng.uniform(0.3, 1.2)
        w = clav_width * s * (1.0 + 0.18 * np.cos(2 * np.pi * t)) / 2
        w = w * np.sqrt(np.clip(np.minimum(t, 1 - t) / 0.03, 0.35, 1.0))  # rounded ends
        clav_polys.append(_band_polygon(xs, ys, w, size))
    clav_r = _draw([clav_polys[0]], size)
    clav_l = _draw([clav_polys[1]], size)
    clav = clav_r | clav_l

    # ---------------------------------------------------------------- ribs (posterior arcs)
    rib_polys = []
    n_ribs = 10
    spacing = (max(y_cp_r, y_cp_l) - y_apex) / (n_ribs - 1.5)
    for side in (-1, +1):
        lateral = abs((lat_r if side < 0 else lat_l) - x0) + 0.03 * s
        for k in range(n_ribs):
            t = np.linspace(0.0, 1.0, 40)
            y_k = y_apex - 0.02 * s + k * spacing + rng.uniform(-0.006, 0.006)
            reach = lateral * (0.55 + 0.45 * np.sqrt(min(1.0, (k + 1) / 4)))
            xs = x0 + side * (0.03 * s + reach * t)
            drop = (0.07 + 0.012 * k) * s
            ys = y_k - 0.03 * s * np.sin(np.pi * t * 0.9) + drop * t**2
            w = (0.0075 + 0.005 * t) * s * rng.uniform(0.9, 1.1)
            rib_polys.append(_band_polygon(xs, ys, w, size))
    ribs = _draw(rib_polys, size)

    # ---------------------------------------------------------------- attenuation map
    A = np.zeros((size, size), f32)
    body_soft = ndimage.gaussian_filter(body.astype(f32), 2.0 * size / 1024)
    A += body_soft * (0.22 + 0.50 * body_prof)
    # scatter / burn-out: a faint glow of the air near the body
    A += 0.05 * _coarse_blur(body.astype(f32), 40 * size / 1024)

    abdomen = body & (Y > ydia[None, :])
    A += 0.38 * abdomen * body_prof

    # mediastinum and spine: a bright central column
    dmid = X - x0
    heart_f = heart.astype(f32)  # sharp edges here; the final blur softens every edge alike
    thorax = Y < ydia[None, :]
    medi = np.exp(-((dmid / (0.075 * s)) ** 6)) * (Y > top + 0.08 * s) * thorax * (1.0 - heart_f)
    aortic = np.exp(-(((dmid - 0.06 * s) / (0.035 * s)) ** 2 + ((Y - (y_apex + 0.17 * s)) / (0.03 * s)) ** 2))
    A += 0.20 * medi + 0.10 * aortic
    vert = 0.85 + 0.15 * np.cos(2 * np.pi * (Y - y_apex) / (spacing * 0.95)) ** 2
    spine = np.exp(-((dmid / (0.038 * s)) ** 8)) * vert
    A += 0.17 * spine
    trachea = np.exp(-((dmid / (0.016 * s)) ** 4)) * np.clip((y_apex + 0.16 * s - Y) / (0.03 * s), 0, 1)
    A -= 0.10 * trachea * (Y > top)

    # lungs: air removes attenuation; deeper inside the lung removes more
    lungs = (lung_r | lung_l) & ~heart
    lung_f = lungs.astype(f32)
    depth = np.clip(_coarse_blur(lung_f, 22 * size / 1024), 0, 1)
    lung_soft = lung_f
    A -= lung_soft * (0.14 + 0.12 * depth)
    # vessels / lung markings: smooth noise, stronger near the hila
    hila = np.exp(-(((np.abs(dmid) - 0.09 * s) / (0.06 * s)) ** 2 + ((Y - (y_apex + 0.28 * s)) / (0.12 * s)) ** 2))
    markings = np.abs(_smooth_noise(rng, size, 6.0 * size / 1024)) * 0.5 + 0.5 * _smooth_noise(rng, size, 18.0 * size / 1024)
    A += lung_soft * (0.025 * markings + 0.12 * hila)

    # heart: dense, with a rounded thickness profile; a touch darker than the mediastinum above it
    A += heart_f * (0.08 + 0.14 * np.sqrt(np.clip(1.0 - rho**2, 0, 1)))

    # breasts (female): soft-tissue shadows over the lung bases
    if sex == "F":
        for side in (-1, +1):
            bx = x0 + side * 0.22 * s
            by = ydia[int(np.clip(bx * size, 0, size - 1))] - 0.01
            r = ((X - bx) / (0.17 * s)) ** 2 + ((Y - by) / (0.12 * s)) ** 2
            A += 0.08 * np.clip(1.0 - r, 0, 1) ** 0.5 * body_soft

    # bones: ribs (fainter below the diaphragm) and clavicles, with brighter cortical edges
    bones = 0.19 * (ribs & body_torso) * (1.0 - 0.5 * abdomen) + 0.24 * clav
    bones = ndimage.gaussian_filter(bones.astype(f32), 1.0 * size / 1024)
    A += bones + 1.5 * np.clip(bones - ndimage.uniform_filter(bones, int(9 * size / 1024) | 1), 0, None)
    # humeral heads and scapulae
    for side in (-1, +1):
        hx_ = x0 + side * (torso_hw + 0.04 * s)
        hy_ = top + (shoulder_y + 0.16) * s
        r = ((X - hx_) / (0.065 * s)) ** 2 + ((Y - hy_) / (0.07 * s)) ** 2
        A += 0.14 * (r < 1.0) + 0.10 * np.clip(1 - r, 0, 1)
        scap = ((X - (x0 + side * (torso_hw - 0.04 * s))) / (0.06 * s)) ** 2 + ((Y - (hy_ + 0.12 * s)) / (0.16 * s)) ** 2
        A += 0.06 * (scap < 1.0) * body_soft
    A = np.clip(A, 0.0, None) * (exposure ** 0.3)

    # ---------------------------------------------------------------- exposure curve, blur, noise
    k = 1.5 * contrast
    img = (1.0 - np.exp(-k * A)) / (1.0 - np.exp(-k * 1.3))
    img = ndimage.gaussian_filter(img.astype(f32), 1.2 * size / 1024)
    lo = rng.uniform(120.0, 420.0)
    hi = rng.uniform(3300.0, 3950.0)
    img = lo + (hi - lo) * img
    # heel effect / detector non-uniformity: a gentle exposure gradient across the field
    img += (hi - lo) * 0.05 * (rng.uniform(-1, 1) * (X - 0.5) + rng.uniform(-1, 1) * (Y - 0.5)) * (0.3 + img / hi)
    noise = rng.standard_normal((size + 2, size + 2)).astype(f32)
    noise = 0.25 * noise[:-2] + 0.5 * noise[1:-1] + 0.25 * noise[2:]  # slightly correlated quantum noise
    noise = 0.25 * noise[:, :-2] + 0.5 * noise[:, 1:-1] + 0.25 * noise[:, 2:]
    noise *= 2.5
    img += (12.0 + 0.012 * img) * noise
    pixels = np.clip(np.rint(img), 0, CXR_MAX_VALUE).astype(np.uint16)

    label = np.zeros((size, size), np.uint8)
    label[lung_r] = 1
    label[lung_l] = 2
    label[heart] = 3
    label[clav_r] = 4
    label[clav_l] = 5

    info = {
        "sex": sex,
        "age": age,
        "heart_size": heart_size,
        "lung_height": lung_h,
        "lung_width": lung_w,
        "clavicle_angle_deg": clav_angle,
        "clavicle_width_px": clav_width * s * size,
        "shift": (shift_x, shift_y),
        "scale": scale,
        "exposure": exposure,
        "contrast": contrast,
    }
    return pixels, label, info

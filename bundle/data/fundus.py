"""Procedural colour fundus photographs (RIM-ONE / REFUGE style) with optic disc and cup labels.

The generator first builds the geometry (field of view, optic disc, optic cup, macula, vessel tree,
distractors) as masks, writes the label from the disc and cup masks before any blur, and then renders
colour from that geometry. Everything is drawn with vectorised numpy / scipy / PIL operations.

Label values: 0 background, 1 optic disc rim (disc minus cup), 2 optic cup.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from bundle.data._noise import fractal, smooth_noise

__all__ = ["generate_fundus", "FUNDUS_CLASSES"]

FUNDUS_CLASSES = ("background", "disc_rim", "cup")

_SUPERSAMPLE = 2  # vessels are drawn at twice the resolution and box-filtered down (anti-aliasing)


def _radial_shape(rng: np.random.Generator, n_harm: int, amp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random low-order Fourier coefficients for an irregular closed contour r(theta) = 1 + sum a_k cos(k theta + p_k)."""
    k = np.arange(2, 2 + n_harm)
    a = rng.uniform(0.3, 1.0, n_harm) * amp / k ** 0.7
    p = rng.uniform(0, 2 * np.pi, n_harm)
    return k, a, p


def _radius_mod(theta: np.ndarray, coeffs) -> np.ndarray:
    k, a, p = coeffs
    out = np.ones_like(theta)
    for kk, aa, pp in zip(k, a, p):
        out += aa * np.cos(kk * theta + pp)
    return out


def _vessel_tree(rng, origin, temporal, dd, fov_c, fov_r, size):
    """Polylines ``(points (N, 2) as x, y; widths (N,); kind)`` of a branching, tapering vessel tree.

    Four main trunks (superior / inferior temporal arcades curving around the macula, superior / inferior
    nasal) plus a few small disc vessels; each trunk branches recursively.
    """
    vessels = []
    step = max(2.0, size / 160)

    def grow(p, heading, curv, width, w_end, length, kind, depth):
        n = max(3, int(length / step))
        jitter = rng.normal(0, 0.05, n).cumsum() * 0.35
        headings = heading + curv * step * np.arange(n) + jitter
        d = np.stack([np.cos(headings), np.sin(headings)], 1) * step
        pts = p + np.concatenate([[[0, 0]], np.cumsum(d, 0)[:-1]])
        widths = np.linspace(width, w_end, n)
        inside = np.hypot(pts[:, 0] - fov_c[0], pts[:, 1] - fov_c[1]) < fov_r * 1.05
        stop = np.argmin(inside) if not inside.all() else n
        pts, widths, headings = pts[:stop], widths[:stop], headings[:stop]
        if len(pts) < 2:
            return
        vessels.append((pts, widths, kind))
        if depth <= 0:
            return
        n_br = rng.integers(1, 4)
        for i in np.sort(rng.integers(len(pts) // 5 + 1, max(len(pts) // 5 + 2, len(pts) - 2), n_br)):
            wb = widths[i] * rng.uniform(0.45, 0.75)
            if wb < 0.8:
                continue
            side = rng.choice([-1.0, 1.0])
            grow(pts[i], headings[i] + side * rng.uniform(0.5, 1.1), rng.normal(0, 0.004) * 512 / size,
                 wb, max(0.6, wb * 0.35), (len(pts) - i) * step * rng.uniform(0.4, 0.8), kind, depth - 1)

    wv, wa = 0.075 * dd, 0.058 * dd
    tx = 1.0 if temporal > 0 else -1.0
    for vert in (-1.0, 1.0):  # -1: superior (image up), +1: inferior
        # temporal arcades: leave the disc vertically, then bend towards the macula
        for kind, w in (("vein", wv), ("artery", wa)):
            h0 = np.arctan2(vert, 0.25 * tx) + rng.normal(0, 0.12)
            curv = -vert * tx / (dd * rng.uniform(1.8, 2.6))
            start = origin + rng.normal(0, 0.1 * dd, 2)
            grow(start, h0, curv, w * rng.uniform(0.9, 1.1), w * 0.3, dd * rng.uniform(2.8, 4.0), kind, 3)
        # nasal branches
        for kind, w in (("vein", wv * 0.75), ("artery", wa * 0.75)):
            h0 = np.arctan2(vert * rng.uniform(0.4, 1.2), -tx) + rng.normal(0, 0.15)
            start = origin + rng.normal(0, 0.1 * dd, 2)
            grow(start, h0, rng.normal(0, 0.3) / dd, w, w * 0.3, dd * rng.uniform(2.0, 3.0), kind, 2)
    # small macular / disc branches towards the temporal side
    for _ in range(rng.integers(1, 4)):
        h0 = np.arctan2(rng.uniform(-0.6, 0.6), tx)
        grow(origin + rng.normal(0, 0.1 * dd, 2), h0, rng.normal(0, 0.3) / dd, wa * 0.45, 0.7,
             dd * rng.uniform(1.0, 2.0), rng.choice(["vein", "artery"]), 1)
    return vessels


def _draw_vessels(vessels, size):
    """Anti-aliased coverage maps (float32 in [0, 1]) for veins and arteries."""
    s = _SUPERSAMPLE
    out = {}
    for kind in ("vein", "artery"):
        img = Image.new("L", (size * s, size * s), 0)
        draw = ImageDraw.Draw(img)
        for pts, widths, k in vessels:
            if k != kind:
                continue
            q = pts * s
            for (x0, y0), (x1, y1), w in zip(q[:-1], q[1:], widths[:-1]):
                ws = max(1, int(round(w * s)))
                draw.line([(x0, y0), (x1, y1)], fill=255, width=ws)
                r = ws / 2.0
                draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=255)
        a = np.asarray(img, np.float32).reshape(size, s, size, s).mean((1, 3)) / 255.0
        out[kind] = a
    return out


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma) if sigma > 0 else mask.astype(np.float32)


def _blend(img: np.ndarray, color, alpha: np.ndarray) -> np.ndarray:
    return img * (1 - alpha[..., None]) + np.asarray(color, np.float32) * alpha[..., None]


def generate_fundus(rng: np.random.Generator, size: int = 512) -> tuple[np.ndarray, np.ndarray, dict]:
    """One synthetic disc-centred colour fundus photograph and its optic disc / cup label.

    Args:
        rng: source of all randomness; the same generator state gives the same case.
        size: side of the square image in pixels (>= 64).

    Returns:
        ``(image, label, info)``: ``image`` uint8 ``(size, size, 3)`` RGB; ``label`` uint8 ``(size, size)``
        with 0 background, 1 disc rim, 2 cup; ``info`` with ``eye`` ("left" / "right"), ``cdr`` (vertical
        cup-to-disc ratio measured on the label, 0.2-0.8), ``disc_diameter`` (fraction of the width),
        ``disc_center`` and ``macula_center`` (x, y pixels).
    """
    if not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"Argument size should be an integer >= 64, got {size}.")
    size = int(size)
    f32 = np.float32
    yy, xx = np.mgrid[0:size, 0:size].astype(f32)

    # ---------------- geometry ----------------
    eye = "right" if rng.random() < 0.5 else "left"
    nasal = 1.0 if eye == "right" else -1.0  # right eye: disc on the image right of the macula
    fov_c = np.array([size / 2 + rng.normal(0, 0.01 * size), size / 2 + rng.normal(0, 0.01 * size)])
    fov_r = size * rng.uniform(0.47, 0.56)
    fov_d = np.hypot(xx - fov_c[0], yy - fov_c[1])
    fov = fov_d < fov_r
    fov = fov & (yy > 1) & (yy < size - 2) if fov_r > size / 2 else fov

    dd = size * rng.uniform(0.18, 0.26)  # disc (horizontal) diameter
    disc_c = np.array([size / 2 + nasal * size * rng.uniform(0.02, 0.14), size / 2 + size * rng.uniform(-0.08, 0.08)])
    mac_c = disc_c + np.array([-nasal * dd * rng.uniform(1.9, 2.5), dd * rng.uniform(0.0, 0.35)])

    # optic disc: vertically oval, slightly irregular
    rx = dd / 2
    ry = rx * rng.uniform(1.0, 1.12)
    tilt = rng.normal(0, 0.12)
    dx, dy = xx - disc_c[0], yy - disc_c[1]
    ct, st = np.cos(tilt), np.sin(tilt)
    u, v = (dx * ct + dy * st) / rx, (-dx * st + dy * ct) / ry
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    disc = rho < _radius_mod(theta, _radial_shape(rng, 4, 0.05))
    disc_rows = np.flatnonzero(disc.any(1))
    disc_h = disc_rows[-1] - disc_rows[0] + 1

    # optic cup: vertical extent = cdr * disc vertical extent, shifted slightly temporally, inside the disc
    cdr_target = rng.uniform(0.21, 0.79)
    cup_coeffs = _radial_shape(rng, 3, 0.04)
    cup_aspect = rng.uniform(0.8, 1.05)  # horizontal / vertical semi-axis
    max_shift = max(0.0, (1.0 - cdr_target * cup_aspect) * 0.35) * rx
    cup_c = disc_c + np.array([-nasal * rng.uniform(0, max_shift), rng.uniform(-0.4, 0.4) * (1 - cdr_target) * ry * 0.5])
    cdx, cdy = xx - cup_c[0], yy - cup_c[1]
    cmod = _radius_mod(np.arctan2(cdy, cdx), cup_coeffs)
    interior = ndimage.binary_erosion(disc, iterations=max(2, int(0.04 * dd)))
    cry = cdr_target * disc_h / 2
    cup = None
    for _ in range(3):  # rescale so that the measured vertical ratio hits the target
        crx = cry * cup_aspect
        cup = (np.hypot(cdx / crx, cdy / cry) < cmod) & interior
        rows = np.flatnonzero(cup.any(1))
        measured = (rows[-1] - rows[0] + 1) / disc_h if rows.size else 0.0
        if measured <= 0:
            break
        cry *= cdr_target / measured
    rows = np.flatnonzero(cup.any(1))
    cdr = float((rows[-1] - rows[0] + 1) / disc_h)

    label = np.zeros((size, size), np.uint8)
    label[disc] = 1
    label[cup] = 2

    # ---------------- colour ----------------
    shape = (size, size)
    # fundus background: orange-red with pigment variation and choroidal texture
    pig = rng.uniform(0, 1)  # 0 light / blond fundus, 1 dark pigmented
    base = np.array([rng.uniform(0.72, 0.9) - 0.15 * pig, rng.uniform(0.28, 0.42) - 0.12 * pig,
                     rng.uniform(0.08, 0.18) - 0.04 * pig], f32)
    tex = fractal(rng, shape, (size / 6, size / 20, size / 60), 0.7)
    fine = smooth_noise(rng, shape, max(2.0, size / 128))
    img = base[None, None, :] * (1 + 0.07 * tex[..., None]) * (1 + np.array([0.02, 0.05, 0.06], f32) * fine[..., None])
    if rng.random() < 0.35:  # tigroid fundus: choroidal vessels visible as dark stripes
        stripes = np.abs(smooth_noise(rng, shape, size / 14))
        img *= 1 - (0.12 * rng.uniform(0.3, 1) * np.exp(-stripes * 3))[..., None] * np.array([0.6, 1, 1], f32)

    # macula: darker, browner; tiny foveal reflex
    md = np.hypot(xx - mac_c[0], yy - mac_c[1])
    mac = np.exp(-(md / (dd * rng.uniform(0.55, 0.85))) ** 2)
    img *= 1 - mac[..., None] * np.array([0.35, 0.5, 0.45], f32) * rng.uniform(0.7, 1.0)
    img += (0.12 * np.exp(-(md / (dd * 0.04)) ** 2))[..., None] * rng.uniform(0.2, 1.0)

    # peripapillary zone: pale, mottled, mostly temporal crescent or a full halo
    ppa_kind = rng.choice(["none", "crescent", "halo"], p=[0.25, 0.45, 0.3])
    if ppa_kind != "none":
        grow = rng.uniform(1.15, 1.45) if ppa_kind == "crescent" else rng.uniform(1.1, 1.25)
        shift = -nasal * rx * (rng.uniform(0.15, 0.35) if ppa_kind == "crescent" else 0.0)
        pr = np.hypot((xx - disc_c[0] - shift) / (rx * grow), (yy - disc_c[1]) / (ry * grow * 0.95))
        ppa = _soft((pr < 1.0) & ~disc, 2.5) * (1 - _soft(disc, 0.7))
        ppa_col = np.array([0.85, 0.6, 0.38], f32) * rng.uniform(0.8, 1.05)
        mottle = np.clip(0.75 + 0.25 * smooth_noise(rng, shape, max(2.0, dd / 12)), 0.3, 1.2)
        img = _blend(img, ppa_col, ppa * rng.uniform(0.5, 0.9) * mottle)

    # optic disc: pink-orange rim getting paler towards the cup; a clear step at the disc edge
    disc_col = np.array([rng.uniform(0.85, 0.97), rng.uniform(0.45, 0.62), rng.uniform(0.3, 0.42)], f32)
    rim_grad = np.clip(1 - rho, 0, 1)[..., None] * np.array([0.03, 0.05, 0.04], f32)
    rim_tex = (0.04 * smooth_noise(rng, shape, max(2.0, dd / 10)))[..., None]
    disc_a = _soft(disc, rng.uniform(0.6, 1.1))
    img = img * (1 - disc_a[..., None]) + (disc_col + rim_grad + rim_tex) * disc_a[..., None]
    # scleral ring / pigment at the border in some eyes
    if rng.random() < 0.4:
        edge = _soft(disc, 1.0) * (1 - _soft(disc, 1.0)) * 4
        img *= 1 - (edge * rng.uniform(0.1, 0.25))[..., None]

    # optic cup: paler / whiter, softer edge
    cup_col = np.array([1.0, rng.uniform(0.86, 0.96), rng.uniform(0.68, 0.85)], f32)
    cup_a = _soft(cup, rng.uniform(1.2, 2.0) * size / 512)
    img = _blend(img, cup_col, cup_a * rng.uniform(0.85, 1.0))

    # vessels on top of everything (they cross the cup and the disc border)
    origin = cup_c + np.array([nasal * 0.1 * dd, 0.0])
    vessels = _vessel_tree(rng, origin, -nasal, dd, fov_c, fov_r, size)
    cov = _draw_vessels(vessels, size)
    on_disc = 0.85 * _soft(cup, 2.0)  # vessels fade a little into the cup depth
    vein_k = np.array([0.45, 0.7, 0.65], f32) * rng.uniform(0.85, 1.05)
    art_k = np.array([0.2, 0.5, 0.45], f32) * rng.uniform(0.85, 1.05)
    for kind, k in (("vein", vein_k), ("artery", art_k)):
        a = cov[kind] * (1 - 0.3 * on_disc)
        img *= 1 - a[..., None] * k
    img = np.clip(img, 0, 1.5)

    # illumination: smooth field, vignetting, bright reflexes / haze (threshold distractors)
    illum = 1 + 0.12 * smooth_noise(rng, shape, size / 3)
    illum *= 1 - rng.uniform(0.25, 0.5) * (fov_d / fov_r) ** rng.uniform(2.0, 4.0)
    g = rng.normal(0, 0.15, 2)
    illum *= 1 + g[0] * (xx / size - 0.5) + g[1] * (yy / size - 0.5)
    img *= illum[..., None]
    # exposure: keep the cup (the brightest structure of the eye) below saturation so the cup edge survives
    cup_peak = np.percentile(img[cup].max(-1), 99) if cup.any() else 1.0
    img *= rng.uniform(0.82, 0.96) / max(cup_peak, 1e-3)
    n_ref = rng.integers(1, 4)
    for _ in range(n_ref):
        for _try in range(10):
            ang, rad = rng.uniform(0, 2 * np.pi), fov_r * np.sqrt(rng.uniform(0.05, 0.8))
            c = fov_c + rad * np.array([np.cos(ang), np.sin(ang)])
            if np.hypot(*(c - disc_c)) > dd * 1.3:
                break
        sx, sy = dd * rng.uniform(0.2, 0.8), dd * rng.uniform(0.2, 0.8)
        a = np.exp(-(((xx - c[0]) / sx) ** 2 + ((yy - c[1]) / sy) ** 2) ** rng.uniform(0.7, 1.5))
        img += (a * rng.uniform(0.25, 0.6))[..., None] * np.array([1.0, 0.85, 0.65], f32)
    # nerve fibre layer sheen along the arcades (young eyes)
    if rng.random() < 0.5:
        sheen = _soft(cov["vein"] + cov["artery"] > 0.3, dd * 0.15) * (np.hypot(xx - disc_c[0], yy - disc_c[1]) > dd * 0.6)
        img += (sheen * rng.uniform(0.3, 0.8))[..., None] * np.array([0.25, 0.25, 0.2], f32)
    # lens flare crescent near the field edge
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        edge_c = fov_c + fov_r * 1.05 * np.array([np.cos(ang), np.sin(ang)])
        fl = np.exp(-(np.hypot(xx - edge_c[0], yy - edge_c[1]) / (fov_r * rng.uniform(0.15, 0.35))) ** 2)
        img += (fl * rng.uniform(0.2, 0.5))[..., None] * np.array([0.9, 0.8, 0.7], f32)

    # soft knee: reflexes may burn out, but ordering (and edges) below the knee are kept
    knee = 0.9
    img = np.where(img > knee, knee + (1 - knee) * np.tanh((img - knee) / (1 - knee)), img)
    # optics: mild blur, field of view with a soft edge, sensor noise
    img = ndimage.gaussian_filter(img, (rng.uniform(0.5, 1.0) * size / 512,) * 2 + (0,))
    fov_a = np.clip((fov_r - fov_d) / 1.5 + 0.5, 0, 1)
    if fov_r > size / 2:
        fov_a = fov_a * fov.astype(f32)
    img *= fov_a[..., None]
    img += rng.normal(0, rng.uniform(0.006, 0.015), img.shape).astype(f32)
    img[fov_a == 0] = np.abs(img[fov_a == 0]) * 0.3
    image = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    label[fov_a < 0.5] = 0

    info = {
        "eye": eye,
        "cdr": round(cdr, 4),
        "cdr_target": round(float(cdr_target), 4),
        "disc_diameter": round(float(dd / size), 4),
        "disc_center": (round(float(disc_c[0]), 2), round(float(disc_c[1]), 2)),
        "macula_center": (round(float(mac_c[0]), 2), round(float(mac_c[1]), 2)),
        "peripapillary": str(ppa_kind),
    }
    return image, label, info

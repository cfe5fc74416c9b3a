"""Procedural colour fundus photographs with optic disc and cup labels (renderer version 2).

Two framings, drawn half of the time each: a disc-centred crop (RIM-ONE style, the disc 17-45 % of the
width) and a whole macula-centred field (REFUGE style: circular field of view, the disc 8-16 % of the
field's width, nasal of the fovea). Both are views of the same kind of eye: a field of view, a fovea, a disc
about 2.5 disc diameters nasal of it, left and right eyes. Everything that is not the label is randomised so
that a network cannot key on the renderer's style: fundus colour (light orange-red to dark brown),
choroidal tessellation, illumination, vignetting, disc colour and contrast (faint pink to saturated
yellow-white), peripapillary atrophy (pale or pigmented), vessel contrast and width, bright distractors the
size of a disc (reflections, flare, exudate-like patches), blur, sharpening, gamma, colour balance, noise,
JPEG compression and the camera's field mask (circle, cut-off top and bottom, notches).

The label is written from the disc and cup masks before any colour is rendered.
Label values: 0 background, 1 optic disc rim (disc minus cup), 2 optic cup.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from bundle.data._noise import fractal, smooth_noise

__all__ = ["generate_fundus", "FUNDUS_CLASSES", "FRAMINGS"]

FUNDUS_CLASSES = ("background", "disc_rim", "cup")
FRAMINGS = ("disc", "field")  # disc-centred crop (RIM-ONE), macula-centred field (REFUGE)

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


def _vessel_tree(rng, origin, temporal, dd, fov_c, fov_r, size, reach):
    """Polylines ``(points (N, 2) as x, y; widths (N,); kind)`` of a branching, tapering vessel tree.

    Four main trunks (superior / inferior temporal arcades curving around the macula, superior / inferior
    nasal) plus a few small disc vessels; each trunk branches recursively. ``reach`` scales the trunks'
    length (in disc diameters); growth stops at the field of view and outside the image.
    """
    vessels = []
    step = max(2.0, size / 160)

    def grow(p, heading, curv, width, w_end, length, kind, depth):
        n = max(3, int(length / step))
        jitter = rng.normal(0, 0.05, n).cumsum() * 0.35
        bend = np.cumsum(np.exp(-np.arange(n) * step / (2.5 * dd))) - 1  # curvature fades: arcades open out
        headings = heading + curv * step * bend + jitter
        d = np.stack([np.cos(headings), np.sin(headings)], 1) * step
        pts = p + np.concatenate([[[0, 0]], np.cumsum(d, 0)[:-1]])
        widths = np.linspace(width, w_end, n)
        inside = (np.hypot(pts[:, 0] - fov_c[0], pts[:, 1] - fov_c[1]) < fov_r * 1.05) \
            & (pts.min(1) > -0.1 * size) & (pts.max(1) < 1.1 * size)
        stop = np.argmin(inside) if not inside.all() else n
        pts, widths, headings = pts[:stop], widths[:stop], headings[:stop]
        if len(pts) < 2:
            return
        vessels.append((pts, widths, kind))
        if depth <= 0:
            return
        n_br = rng.integers(1, 5)
        for i in np.sort(rng.integers(len(pts) // 6 + 1, max(len(pts) // 6 + 2, len(pts) - 2), n_br)):
            wb = widths[i] * rng.uniform(0.45, 0.75)
            if wb < 0.7:
                continue
            side = rng.choice([-1.0, 1.0])
            grow(pts[i], headings[i] + side * rng.uniform(0.5, 1.2), rng.normal(0, 0.004) * 512 / size,
                 wb, max(0.6, wb * 0.35), (len(pts) - i) * step * rng.uniform(0.4, 0.9), kind, depth - 1)

    wv, wa = rng.uniform(0.06, 0.09) * dd, rng.uniform(0.045, 0.07) * dd
    tx = 1.0 if temporal > 0 else -1.0
    for vert in (-1.0, 1.0):  # -1: superior (image up), +1: inferior
        # temporal arcades: leave the disc vertically, then bend towards the macula
        for kind, w in (("vein", wv), ("artery", wa)):
            h0 = np.arctan2(vert, 0.25 * tx) + rng.normal(0, 0.12)
            curv = -vert * tx / (dd * rng.uniform(1.8, 2.8))
            start = origin + rng.normal(0, 0.1 * dd, 2)
            grow(start, h0, curv, w * rng.uniform(0.9, 1.1), w * 0.3, dd * reach * rng.uniform(0.8, 1.1), kind, 3)
        # nasal branches
        for kind, w in (("vein", wv * 0.75), ("artery", wa * 0.75)):
            h0 = np.arctan2(vert * rng.uniform(0.4, 1.2), -tx) + rng.normal(0, 0.15)
            start = origin + rng.normal(0, 0.1 * dd, 2)
            grow(start, h0, rng.normal(0, 0.3) / dd, w, w * 0.3, dd * reach * rng.uniform(0.6, 0.8), kind, 2)
    # small macular / disc branches towards the temporal side
    for _ in range(rng.integers(1, 4)):
        h0 = np.arctan2(rng.uniform(-0.6, 0.6), tx)
        grow(origin + rng.normal(0, 0.1 * dd, 2), h0, rng.normal(0, 0.3) / dd, wa * 0.45, 0.7,
             dd * rng.uniform(1.0, 2.5), rng.choice(["vein", "artery"]), 1)
    return vessels


def _draw_vessels(vessels, size):
    """Anti-aliased coverage maps (float32 ``(size, size)`` in [0, 1]) for veins and arteries."""
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
                if ws > 2:
                    r = ws / 2.0
                    draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=255)
        img = img.resize((size, size), Image.BOX)
        out[kind] = np.asarray(img, np.float32) / 255.0
    return out


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma) if sigma > 0 else mask.astype(np.float32)


def _blend(img: np.ndarray, color, alpha: np.ndarray) -> np.ndarray:
    return img * (1 - alpha[..., None]) + np.asarray(color, np.float32) * alpha[..., None]


def _geometry(rng: np.random.Generator, size: int, framing: str, nasal: float) -> dict:
    """Field of view, disc and fovea in pixels for one framing (``nasal`` +1: disc right of the fovea)."""
    if framing == "field":
        fov_r = size * rng.uniform(0.44, 0.56)
        fov_c = size / 2 + rng.normal(0, 0.015 * size, 2)
        dd = 2 * fov_r * rng.uniform(0.08, 0.16)  # 30-50 degree cameras, discs of 1.2-2.2 mm
        mac_c = fov_c + rng.normal(0, 0.04 * fov_r, 2)
        disc_c = mac_c + np.array([nasal * dd * rng.uniform(2.0, 2.9), -dd * rng.uniform(0.0, 0.45)])
        # keep the whole disc inside the field of view
        r = np.hypot(*(disc_c - fov_c))
        if r > fov_r - 0.7 * dd:
            disc_c = fov_c + (disc_c - fov_c) * (fov_r - 0.7 * dd) / r
    else:
        dd = size * rng.uniform(0.17, 0.45)  # RIM-ONE-like crops: 2.2-6 disc diameters wide
        disc_c = size / 2 + rng.uniform(-0.07, 0.07, 2) * size
        mac_c = disc_c - np.array([nasal * dd * rng.uniform(2.0, 2.9), -dd * rng.uniform(0.0, 0.45)])
        fov_r = dd / (2 * rng.uniform(0.05, 0.16))  # crops of narrow and of wide-angle fields
        fov_c = mac_c + rng.normal(0, 0.1 * fov_r, 2)
        r = np.hypot(*(disc_c - fov_c))
        if r > fov_r - 1.5 * dd:  # the field's rim at least a disc diameter beyond the disc
            fov_c = disc_c + (fov_c - disc_c) * (fov_r - 1.5 * dd) / r
    return {"fov_c": fov_c, "fov_r": float(fov_r), "dd": float(dd), "disc_c": disc_c, "mac_c": mac_c}


def _field_mask(rng: np.random.Generator, xx, yy, fov_c, fov_r, size) -> np.ndarray:
    """Soft field-of-view mask in [0, 1]: a circle, sometimes cut at top and bottom, sometimes notched."""
    d = np.hypot(xx - fov_c[0], yy - fov_c[1])
    fov = np.clip((fov_r - d) / 1.5 + 0.5, 0, 1)
    if rng.random() < 0.25:  # cameras that crop the circle at the top and bottom
        cut = rng.uniform(0.85, 0.97) * fov_r
        fov *= (np.abs(yy - fov_c[1]) < cut)
    if rng.random() < 0.4:  # a small rectangular notch on the rim (orientation marker)
        ang = rng.uniform(0, 2 * np.pi)
        c = fov_c + fov_r * np.array([np.cos(ang), np.sin(ang)])
        hw = fov_r * rng.uniform(0.02, 0.06)
        fov *= ~((np.abs(xx - c[0]) < hw) & (np.abs(yy - c[1]) < hw * 2.5))
    return fov.astype(np.float32)


def _window(center, half: float, size: int) -> tuple[slice, slice]:
    """Rows / columns of a square window around ``center`` (x, y), clipped to the image."""
    x0, x1 = int(max(0, center[0] - half)), int(min(size, center[0] + half + 1))
    y0, y1 = int(max(0, center[1] - half)), int(min(size, center[1] + half + 1))
    return slice(y0, max(y0 + 1, y1)), slice(x0, max(x0 + 1, x1))


def generate_fundus(rng: np.random.Generator, size: int = 512) -> tuple[np.ndarray, np.ndarray, dict]:
    """One synthetic colour fundus photograph (disc-centred crop or macula-centred field) and its label.

    Args:
        rng: source of all randomness; the same generator state gives the same case.
        size: side of the square image in pixels (>= 64).

    Returns:
        ``(image, label, info)``: ``image`` uint8 ``(size, size, 3)`` RGB; ``label`` uint8 ``(size, size)``
        with 0 background, 1 disc rim, 2 cup; ``info`` with ``framing`` ("disc" / "field"), ``eye``
        ("left" / "right"), ``cdr`` (vertical cup-to-disc ratio measured on the label, 0.2-0.8),
        ``disc_diameter`` (fraction of the image width), ``field_diameter`` (field of view / image width),
        ``disc_center`` and ``macula_center`` (x, y pixels).
    """
    if not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"Argument size should be an integer >= 64, got {size}.")
    size = int(size)
    f32 = np.float32
    shape = (size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(f32)

    # ---------------- geometry ----------------
    framing = FRAMINGS[int(rng.random() < 0.5)]
    eye = "right" if rng.random() < 0.5 else "left"
    nasal = 1.0 if eye == "right" else -1.0  # right eye: disc on the image right of the macula
    g = _geometry(rng, size, framing, nasal)
    fov_c, fov_r, dd, disc_c, mac_c = g["fov_c"], g["fov_r"], g["dd"], g["disc_c"], g["mac_c"]
    fov_a = _field_mask(rng, xx, yy, fov_c, fov_r, size)

    # everything about the disc is computed in a window around it
    win = _window(disc_c, 1.2 * dd, size)
    wy, wx = yy[win], xx[win]
    rx = dd / 2
    ry = rx * rng.uniform(1.0, 1.12)
    tilt = rng.normal(0, 0.12)
    dx, dy = wx - disc_c[0], wy - disc_c[1]
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
    cdx, cdy = wx - cup_c[0], wy - cup_c[1]
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

    label = np.zeros(shape, np.uint8)
    label[win][disc] = 1
    label[win][cup] = 2

    # ---------------- colour ----------------
    # fundus background: light orange-red to dark brown, with choroidal texture
    red = rng.uniform(0.5, 0.95)
    base = np.array([red, red * rng.uniform(0.22, 0.6), 0.0], f32)
    base[2] = base[1] * rng.uniform(0.25, 0.95)
    tex = fractal(rng, shape, (size / 5, size / 18, size / 50), rng.uniform(0.5, 0.8))
    img = base * (1 + rng.uniform(0.02, 0.1) * tex[..., None])
    if rng.random() < 0.5:  # tessellated (tigroid) fundus: choroidal vessels as dark stripes between bright ones
        stripes = np.abs(smooth_noise(rng, shape, size / rng.uniform(8, 20)))
        img *= 1 - (rng.uniform(0.05, 0.25) * np.exp(-stripes * 3))[..., None] * np.array([0.5, 1, 1], f32)

    # macula: darker, browner; a small foveal reflex
    md = np.hypot(xx - mac_c[0], yy - mac_c[1])
    mac = np.exp(-(md / (dd * rng.uniform(0.5, 1.0))) ** 2)
    img *= 1 - mac[..., None] * np.array([0.3, 0.5, 0.45], f32) * rng.uniform(0.2, 1.0)
    if rng.random() < 0.6:
        img += (0.1 * np.exp(-(md / (dd * 0.04)) ** 2))[..., None] * rng.uniform(0.2, 1.0)

    # bright distractors the size of a disc: reflections, exudate-like patches, drusen (not the disc)
    for _ in range(rng.integers(0, 4)):
        for _try in range(10):
            ang, rad = rng.uniform(0, 2 * np.pi), fov_r * np.sqrt(rng.uniform(0.0, 0.9))
            c = fov_c + rad * np.array([np.cos(ang), np.sin(ang)])
            if np.hypot(*(c - disc_c)) > dd * 1.4:
                break
        sx, sy = dd * rng.uniform(0.15, 0.7), dd * rng.uniform(0.15, 0.7)
        dw = _window(c, 3 * max(sx, sy), size)
        a = np.exp(-(((xx[dw] - c[0]) / sx) ** 2 + ((yy[dw] - c[1]) / sy) ** 2) ** rng.uniform(0.7, 2.0))
        col = np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.4, 0.9)], f32)
        img[dw] = _blend(img[dw], col, a * rng.uniform(0.2, 0.8))

    # peripapillary atrophy: pale crescent / halo, sometimes with a dark pigment edge
    wimg = img[win]
    ppa_kind = rng.choice(["none", "crescent", "halo"], p=[0.35, 0.4, 0.25])
    disc_soft = _soft(disc, rng.uniform(0.5, 1.5) * max(1.0, dd / 60))
    if ppa_kind != "none":
        grow = rng.uniform(1.12, 1.45) if ppa_kind == "crescent" else rng.uniform(1.08, 1.25)
        shift = -nasal * rx * (rng.uniform(0.15, 0.35) if ppa_kind == "crescent" else 0.0)
        pr = np.hypot((wx - disc_c[0] - shift) / (rx * grow), (wy - disc_c[1]) / (ry * grow * 0.95))
        zone = (pr < 1.0) & ~disc
        ppa = _soft(zone, 2.0) * (1 - disc_soft)
        mottle = np.clip(0.75 + 0.25 * smooth_noise(rng, zone.shape, max(2.0, dd / 12)), 0.3, 1.2)
        if rng.random() < 0.4:  # pigment: dark brown
            wimg = _blend(wimg, np.array([0.3, 0.15, 0.08], f32) * rng.uniform(0.5, 1.2), ppa * rng.uniform(0.4, 0.9) * mottle)
        else:
            ppa_col = np.array([0.9, rng.uniform(0.55, 0.8), rng.uniform(0.35, 0.6)], f32)
            wimg = _blend(wimg, ppa_col, ppa * rng.uniform(0.3, 0.8) * mottle)

    # optic disc: from a faint pink-orange to a saturated yellow-white, paler towards the cup
    bright = np.array([1.0, rng.uniform(0.6, 0.95), rng.uniform(0.35, 0.8)], f32)
    disc_col = base + (bright - base) * rng.uniform(0.3, 1.0)
    rim_grad = np.clip(1 - rho, 0, 1)[..., None] * rng.uniform(0.0, 0.15)
    rim_tex = (0.04 * smooth_noise(rng, disc.shape, max(2.0, dd / 10)))[..., None]
    wimg = wimg * (1 - disc_soft[..., None]) + (disc_col * (1 + rim_grad) + rim_tex) * disc_soft[..., None]
    if rng.random() < 0.35:  # scleral ring / pigment at the border
        edge = _soft(disc, 1.0) * (1 - _soft(disc, 1.0)) * 4
        wimg *= 1 - (edge * rng.uniform(0.1, 0.3))[..., None]

    # optic cup: paler / whiter than the rim, by a little or by a lot; its edge is soft
    cup_col = disc_col + (np.array([1.0, 0.97, 0.9], f32) - disc_col) * rng.uniform(0.15, 0.9)
    cup_a = _soft(cup, rng.uniform(1.0, 3.0) * dd / 110)
    wimg = _blend(wimg, cup_col, cup_a * rng.uniform(0.7, 1.0))
    img[win] = wimg

    # vessels on top of everything (they cross the disc border and the cup); contrast from faint to strong
    origin = cup_c + np.array([nasal * 0.15 * dd, 0.0])
    reach = 6.0 if framing == "field" else 4.5
    vessels = _vessel_tree(rng, origin, -nasal, dd, fov_c, fov_r, size, reach)
    cov = _draw_vessels(vessels, size)
    contrast = rng.uniform(0.35, 1.1)
    vein_k = np.array([0.45, 0.7, 0.65], f32) * contrast
    art_k = np.array([0.25, 0.5, 0.45], f32) * contrast * rng.uniform(0.6, 1.0)
    depth = np.zeros(shape, f32)
    depth[win] = 0.3 * _soft(cup, 2.0)  # vessels fade a little into the cup
    img *= 1 - np.minimum(cov["vein"] * (1 - depth), 1)[..., None] * vein_k - (cov["artery"] * (1 - depth))[..., None] * art_k
    img = np.clip(img, 0, 1.5)

    # illumination: smooth field, vignetting towards the rim of the field, a gradient; lens flare
    d_fov = np.hypot(xx - fov_c[0], yy - fov_c[1]) / fov_r
    illum = 1 + rng.uniform(0.03, 0.2) * smooth_noise(rng, shape, size / 3)
    illum *= 1 - rng.uniform(0.1, 0.6) * np.clip(d_fov, 0, 1.2) ** rng.uniform(1.5, 4.0)
    gr = rng.normal(0, 0.2, 2)
    illum *= 1 + gr[0] * (xx / size - 0.5) + gr[1] * (yy / size - 0.5)
    img *= np.clip(illum, 0.2, None)[..., None]
    if rng.random() < 0.4:
        ang = rng.uniform(0, 2 * np.pi)
        edge_c = fov_c + fov_r * 1.05 * np.array([np.cos(ang), np.sin(ang)])
        fl = np.exp(-(np.hypot(xx - edge_c[0], yy - edge_c[1]) / (fov_r * rng.uniform(0.15, 0.35))) ** 2)
        img += (fl * rng.uniform(0.1, 0.4))[..., None] * np.array([0.9, 0.8, 0.7], f32)
    # nerve fibre layer sheen along the arcades (young eyes)
    if rng.random() < 0.3:
        sheen = _soft(cov["vein"] > 0.3, dd * 0.2) * (np.hypot(xx - disc_c[0], yy - disc_c[1]) > dd * 0.7)
        img += (sheen * rng.uniform(0.2, 0.6))[..., None] * np.array([0.25, 0.25, 0.2], f32)

    # exposure: the disc's 98th percentile between just below and a little above saturation
    disc_peak = np.percentile(img[win][disc].max(-1), 98)
    img *= rng.uniform(0.75, 1.1) / max(disc_peak, 1e-3)
    knee = rng.uniform(0.85, 0.95)  # soft knee: bright parts may burn out
    img = np.where(img > knee, knee + (1 - knee) * np.tanh((img - knee) / (1 - knee)), img)
    img = np.clip(img, 0, 1) ** rng.uniform(0.75, 1.35)  # display gamma
    img *= rng.uniform(0.85, 1.1, 3).astype(f32)  # colour balance

    # optics and sensor: blur, field mask, noise, JPEG compression, sometimes sharpening
    img = ndimage.gaussian_filter(img, (rng.uniform(0.3, 1.6) * size / 512,) * 2 + (0,))
    img *= fov_a[..., None]
    img += rng.normal(0, rng.uniform(0.003, 0.02), img.shape).astype(f32)
    image = Image.fromarray(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 3), percent=int(rng.uniform(50, 150)), threshold=2))
    if rng.random() < 0.7:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=int(rng.integers(40, 96)))
        image = Image.open(buf).convert("RGB")
    label[fov_a < 0.5] = 0

    info = {
        "framing": framing,
        "eye": eye,
        "cdr": round(cdr, 4),
        "cdr_target": round(float(cdr_target), 4),
        "disc_diameter": round(float(dd / size), 4),
        "field_diameter": round(float(2 * fov_r / size), 4),
        "disc_center": (round(float(disc_c[0]), 2), round(float(disc_c[1]), 2)),
        "macula_center": (round(float(mac_c[0]), 2), round(float(mac_c[1]), 2)),
        "peripapillary": str(ppa_kind),
    }
    return np.asarray(image), label, info

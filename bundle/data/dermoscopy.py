"""Procedural dermoscopy photographs (ISIC 2018 task 1 style) with a binary lesion label.

Geometry first (irregular lesion mask, hairs, bubbles, dermatoscope frame), label from the lesion mask
before any blur, then colour rendered from that geometry with vectorised numpy / scipy / PIL.

Renderer version 2 (issue 24) randomises the acquisition as well: lesions from 5 % of the field, the skin's
magnification, exposure and gamma, optical blur, sensor noise, sharpening, JPEG compression, and a third of
the cases rendered as a small picture enlarged to full size (a close-up cropped from a phone photograph), so
that fine detail ranges from smoother to more detailed than real close-ups; half of the cases evenly lit (weak
vignetting and gradient) and lesions from near-uniform to mottled, as uniform as a real naevus's skin and
pigment (docs/real_images.md, "Dermoscopy").

Label values: 0 background (skin, hair outside the lesion, frame), 1 lesion.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from bundle.data._noise import fractal, smooth_noise

__all__ = ["generate_dermoscopy", "DERMOSCOPY_CLASSES", "LESION_AREA", "LESION_SHIFT"]

DERMOSCOPY_CLASSES = ("background", "lesion")
LESION_AREA = (0.05, 0.60)  # the fixed splits' range of the lesion's share of the field
LESION_SHIFT = 0.07  # the fixed splits' spread of the lesion centre about the field's centre (fraction of W and H)

# skin tones from light (Fitzpatrick I) to dark (V-VI), linear RGB-ish in [0, 1]
_SKIN = np.array([[0.93, 0.78, 0.72], [0.86, 0.66, 0.56], [0.72, 0.52, 0.40], [0.52, 0.36, 0.26], [0.36, 0.24, 0.17]],
                 np.float32)
# lesion browns from light tan to near black
_BROWN = np.array([[0.74, 0.54, 0.45], [0.60, 0.41, 0.33], [0.45, 0.29, 0.23], [0.31, 0.19, 0.16], [0.18, 0.12, 0.11]],
                  np.float32)


def _lerp_palette(palette: np.ndarray, t: float) -> np.ndarray:
    x = np.clip(t, 0, 1) * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    return palette[i] * (1 - (x - i)) + palette[i + 1] * (x - i)


def _lines(rng: np.random.Generator, shape: tuple[int, int], cell: float, width: float) -> np.ndarray:
    """Thin curvy network (zero crossings of band-limited noise), values in [0, 1]."""
    n = smooth_noise(rng, shape, cell)
    return np.exp(-(n / (width / cell * 2.5)) ** 2)


def _lesion_mask(rng, shape, area_frac, yy, xx, shift):
    h, w = shape
    c = np.array([w / 2 + rng.normal(0, shift * w), h / 2 + rng.normal(0, shift * h)])
    aspect = rng.uniform(0.65, 1.0)
    rot = rng.uniform(0, np.pi)
    irregular = rng.uniform(0.3, 1.0)
    k = np.arange(2, 11)
    amp = irregular * 0.22 * rng.uniform(0.2, 1.0, k.size) / k ** 0.9
    ph = rng.uniform(0, 2 * np.pi, k.size)
    warp_cell = max(8.0, np.sqrt(area_frac * h * w) / 4)
    wx, wy = smooth_noise(rng, shape, warp_cell), smooth_noise(rng, shape, warp_cell)
    dx, dy = xx - c[0], yy - c[1]
    cr, sr = np.cos(rot), np.sin(rot)
    u, v = dx * cr + dy * sr, (-dx * sr + dy * cr) / aspect
    theta = np.arctan2(v, u)
    rmod = np.ones_like(theta)
    for kk, a, p in zip(k, amp, ph):
        rmod += a * np.cos(kk * theta + p)
    r0 = np.sqrt(area_frac * h * w / (np.pi * aspect))
    mask = None
    for _ in range(3):  # rescale so that the visible area hits the target fraction
        wa = irregular * 0.06 * r0
        rho = np.hypot(u + wa * wx, v + wa * wy)
        mask = rho < r0 * rmod
        got = mask.mean()
        if got <= 0:
            r0 *= 1.5
            continue
        r0 *= np.sqrt(area_frac / got)
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask), c, r0


def _draw_hairs(rng, shape, n, s=2):
    h, w = shape
    img = Image.new("L", (w * s, h * s), 0)
    draw = ImageDraw.Draw(img)
    t = np.linspace(0, 1, 24)[:, None]
    for _ in range(n):
        p0 = rng.uniform([-0.1 * w, -0.1 * h], [1.1 * w, 1.1 * h])
        ang = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.15, 0.7) * w
        p2 = p0 + length * np.array([np.cos(ang), np.sin(ang)])
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.15 * length, 2)
        pts = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2) * s
        width = max(1, int(round(rng.uniform(0.7, 2.2) * s)))
        draw.line([tuple(p) for p in pts], fill=int(rng.uniform(170, 255)), width=width, joint="curve")
    return np.asarray(img, np.float32).reshape(h, s, w, s).mean((1, 3)) / 255.0


def generate_dermoscopy(rng: np.random.Generator, size: tuple[int, int] = (384, 512),
                        lesion_area: tuple[float, float] = LESION_AREA,
                        lesion_shift: float = LESION_SHIFT) -> tuple[np.ndarray, np.ndarray, dict]:
    """One synthetic dermoscopy photograph with one pigmented lesion and its binary label.

    Args:
        rng: source of all randomness; the same generator state gives the same case.
        size: ``(H, W)`` of the image in pixels, each >= 64.
        lesion_area: ``(low, high)``, the range (0 < low <= high < 1) of the lesion's share of the field.
        lesion_shift: standard deviation (>= 0) of the lesion centre's offset from the field's centre, as a
            fraction of the width (horizontally) and of the height (vertically).

    Returns:
        ``(image, label, info)``: ``image`` uint8 ``(H, W, 3)`` RGB; ``label`` uint8 ``(H, W)`` in {0, 1}
        (1 = lesion); ``info`` with ``skin_tone`` (0 light - 1 dark), ``lesion_tone`` (0 light tan - 1 near
        black), ``area_fraction`` (of the label), ``n_hairs``, ``n_bubbles``, ``frame`` (bool), ``gamma``,
        ``jpeg_quality`` (0: not compressed), ``enlarged`` (1: rendered at full size, else the factor by which
        a smaller picture was enlarged).
    """
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s >= 64 for s in size)):
        raise ValueError(f"Argument size should be a pair of integers (H, W) >= 64, got {size}.")
    if np.shape(lesion_area) != (2,) or not 0 < lesion_area[0] <= lesion_area[1] < 1:
        raise ValueError(f"Argument lesion_area should be (low, high) with 0 < low <= high < 1, got {lesion_area!r}.")
    if not np.isscalar(lesion_shift) or not lesion_shift >= 0:
        raise ValueError(f"Argument lesion_shift should be a number >= 0, got {lesion_shift!r}.")
    h, w = int(size[0]), int(size[1])
    shape = (h, w)
    f32 = np.float32
    yy, xx = np.mgrid[0:h, 0:w].astype(f32)
    scale = np.sqrt(h * w) / np.sqrt(384 * 512)

    # ---------------- geometry ----------------
    area_target = rng.uniform(*lesion_area)
    lesion, lc, r0 = _lesion_mask(rng, shape, area_target, yy, xx, lesion_shift)
    frame = rng.random() < 0.4
    frame_a = np.ones(shape, f32)
    if frame:  # circular dermatoscope field: black outside
        fr = np.hypot(w, h) / 2 * rng.uniform(0.6, 0.92)
        fc = np.array([w / 2, h / 2]) + rng.normal(0, 0.02 * w, 2)
        frame_a = np.clip((fr - np.hypot(xx - fc[0], yy - fc[1])) / (3 * scale) + 0.5, 0, 1)
    label = (lesion & (frame_a >= 0.5)).astype(np.uint8)
    sd = np.where(lesion, ndimage.distance_transform_edt(lesion), -ndimage.distance_transform_edt(~lesion)).astype(f32)
    depth = np.clip(sd / max(1.0, sd.max()), 0, 1)  # 0 at the border, 1 at the deepest point

    # ---------------- skin ----------------
    skin_t = float(rng.beta(1.2, 2.2))
    skin = _lerp_palette(_SKIN, skin_t) * (1 + rng.normal(0, 0.03, 3)).astype(f32)
    tex = fractal(rng, shape, (60 * scale, 20 * scale, 6 * scale), 0.6)
    img = skin[None, None, :] * (1 + 0.05 * tex[..., None])
    red = np.clip(smooth_noise(rng, shape, 50 * scale), 0, None)  # erythema blotches
    img *= 1 - (rng.uniform(0, 0.12) * red)[..., None] * np.array([0.0, 0.6, 0.5], f32)
    furrows = _lines(rng, shape, rng.uniform(6, 24) * scale, 0.8 * scale) * np.clip(smooth_noise(rng, shape, 40 * scale) + 0.5, 0, 1)
    img *= 1 - (rng.uniform(0.02, 0.06) * furrows)[..., None]
    img *= 1 + (0.015 * smooth_noise(rng, shape, 2.0 * scale))[..., None]  # pores / fine grain
    if rng.random() < 0.4:  # erythematous halo just outside the lesion
        halo = np.exp(-np.clip(-sd, 0, None) / (rng.uniform(5, 20) * scale)) * (sd < 0)
        img *= 1 - (rng.uniform(0.05, 0.15) * halo)[..., None] * np.array([0.0, 0.5, 0.4], f32)

    # ---------------- lesion ----------------
    skin_lum = float(skin.mean())
    lesion_t = float(rng.uniform(0.0, 1.0))
    col = _lerp_palette(_BROWN, lesion_t) * (1 + rng.normal(0, 0.04, 3)).astype(f32)
    # keep a visible colour step to the skin (light lesions on dark skin differ in hue / lightness)
    dist = float(np.linalg.norm(col - skin))
    if dist < 0.18:
        col = np.clip(col * (0.7 if skin_lum > 0.35 else 1.45) * np.array([1.0, 0.95, 0.95], f32), 0, 1)
    lt = fractal(rng, shape, (r0 / 2, r0 / 6, 12 * scale), 0.6)
    les = col[None, None, :] * (1 + rng.uniform(0.03, 0.14) * lt[..., None])  # from near-uniform to mottled
    # darker (or lighter) centre, often a paler periphery (the lesion fades towards, but still steps at, its border)
    les *= 1 - (rng.uniform(-0.15, 0.35) * depth ** 0.7)[..., None]
    if rng.random() < 0.5:
        pale = np.clip(1 - depth / rng.uniform(0.15, 0.4), 0, 1) * rng.uniform(0.2, 0.5)
        les = les * (1 - pale[..., None]) + (0.5 * les + 0.5 * skin) * pale[..., None]
    if rng.random() < 0.7:  # pigment network
        cell = rng.uniform(6, 10) * scale
        net = ndimage.gaussian_filter(_lines(rng, shape, cell, cell * rng.uniform(0.25, 0.4)), 0.7 * scale)
        net_fade = np.clip(1.2 - depth * rng.uniform(0, 1.2), 0, 1) * np.clip(0.6 + 0.5 * smooth_noise(rng, shape, r0 / 3), 0, 1)
        les *= 1 - (rng.uniform(0.12, 0.3) * net * net_fade)[..., None]
    if rng.random() < 0.45:  # blue-grey veil / regression zones
        zone = np.clip((smooth_noise(rng, shape, r0 / 3) - rng.uniform(0.6, 1.3)) * 1.5, 0, 1) * np.clip(depth * 8, 0, 1)
        shade = max(0.2, float(col.mean()) * rng.uniform(1.0, 1.4))
        blue = np.array([0.72, 0.82, 1.2], f32) * shade * (1 + 0.15 * lt[..., None])
        a = rng.uniform(0.35, 0.7) * zone[..., None]
        les = les * (1 - a) + blue * a
    if rng.random() < 0.3:  # whitish scar-like regression: inside the lesion, lighter than the lesion body
        zone = np.clip((smooth_noise(rng, shape, r0 / 4) - rng.uniform(0.5, 1.2)) * 1.2, 0, 1) * np.clip(depth * 4 - 0.8, 0, 1)
        pepper = np.clip(0.95 + 0.1 * smooth_noise(rng, shape, 3.0 * scale), 0.7, 1.1)[..., None]
        a = rng.uniform(0.3, 0.55) * zone[..., None]
        les = les * (1 - a) + np.array([0.78, 0.72, 0.76], f32) * pepper * a
    n_dots = int(rng.integers(0, 60)) if rng.random() < 0.6 else 0
    if n_dots:  # dots / globules
        ys, xs = np.nonzero(lesion)
        pick = rng.integers(0, ys.size, n_dots)
        dots = np.zeros(shape, f32)
        dots[ys[pick], xs[pick]] = 1
        dots = ndimage.grey_dilation(dots, size=(max(2, int(3 * scale)),) * 2)
        dots = ndimage.gaussian_filter(dots, 0.8 * scale)
        les *= 1 - (np.clip(dots * 1.5, 0, 1) * rng.uniform(0.3, 0.6))[..., None]
    # fuzzy but visible border: logistic ramp centred on the label boundary, width varying along it
    bw = rng.uniform(1.0, 3.5) * scale * np.exp(0.4 * smooth_noise(rng, shape, r0 / 2))
    alpha = 0.5 + 0.5 * np.tanh(sd / (2 * np.minimum(bw, 5.0 * scale)))  # logistic, overflow-free
    img = img * (1 - alpha[..., None]) + les * alpha[..., None]

    # ---------------- acquisition: hairs, bubbles, illumination, frame ----------------
    u = rng.random()
    n_hairs = 0 if u < 0.25 else int(rng.integers(1, 12)) if u < 0.75 else int(rng.integers(12, 50))
    if n_hairs:
        hair = _draw_hairs(rng, shape, n_hairs)
        hair_col = np.array([0.1, 0.07, 0.05], f32) * rng.uniform(0.4, 1.5)
        img = img * (1 - hair[..., None]) + hair_col * hair[..., None]
    n_bubbles = int(rng.integers(1, 12)) if rng.random() < 0.35 else 0
    for _ in range(n_bubbles):  # gel bubbles: bright thin ring, dark inner edge, highlight
        c = rng.uniform([0, 0], [w, h])
        r = rng.uniform(3, 22) * scale
        y0, y1 = int(max(0, c[1] - r - 4)), int(min(h, c[1] + r + 5))
        x0, x1 = int(max(0, c[0] - r - 4)), int(min(w, c[0] + r + 5))
        if y1 <= y0 or x1 <= x0:
            continue
        d = np.hypot(xx[y0:y1, x0:x1] - c[0], yy[y0:y1, x0:x1] - c[1])
        ring = np.exp(-((d - r) / (0.8 * scale)) ** 2)
        inner = np.exp(-((d - r + 2 * scale) / (1.0 * scale)) ** 2)
        spot = np.exp(-(np.hypot(xx[y0:y1, x0:x1] - c[0] + 0.35 * r, yy[y0:y1, x0:x1] - c[1] + 0.35 * r)
                        / (0.15 * r + 0.5)) ** 2)
        patch = img[y0:y1, x0:x1]
        patch *= 1 - 0.25 * inner[..., None]
        patch += (rng.uniform(0.3, 0.6) * ring + 0.5 * spot)[..., None]
    n_spec = int(rng.integers(0, 8))
    if n_spec:  # specular highlights
        spec = np.zeros(shape, f32)
        spec[rng.integers(0, h, n_spec), rng.integers(0, w, n_spec)] = 1
        spec = ndimage.gaussian_filter(spec, 1.2 * scale) * 20 * scale
        img += np.clip(spec, 0, 0.4)[..., None]
    # illumination: gradient, vignetting with dark corners
    g = rng.normal(0, rng.uniform(0.0, 0.12), 2)
    illum = (1 + g[0] * (xx / w - 0.5) + g[1] * (yy / h - 0.5)) * (1 + 0.06 * smooth_noise(rng, shape, 0.5 * w))
    rr = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    vig = rng.uniform(0.5, 0.95) if rng.random() < 0.5 else rng.uniform(0.0, 0.3)  # dermatoscope or even light
    illum *= 1 - vig * np.clip(rr / rng.uniform(0.7, 1.0), 0, 1) ** rng.uniform(1.5, 4.0)
    img *= illum[..., None]
    img *= (1 + rng.normal(0, 0.04, 3)).astype(f32)  # white balance
    gamma = float(rng.uniform(0.75, 1.35))
    img = np.clip(img * rng.uniform(0.8, 1.2), 0, 1) ** gamma  # exposure and the camera's tone curve
    img = ndimage.gaussian_filter(img, (rng.uniform(0.4, 1.2) * scale,) * 2 + (0,))
    img = img * frame_a[..., None] + (1 - frame_a[..., None]) * rng.uniform(0.0, 0.06)
    img += rng.normal(0, rng.uniform(0.005, 0.03), img.shape).astype(f32)
    picture = Image.fromarray(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        picture = picture.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 3), percent=int(rng.uniform(50, 150)),
                                                         threshold=2))
    jpeg_quality = int(rng.integers(40, 96)) if rng.random() < 0.5 else 0
    if jpeg_quality:
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=jpeg_quality)
        picture = Image.open(buf).convert("RGB")
    enlarged = float(np.exp(rng.uniform(np.log(1.5), np.log(8)))) if rng.random() < 0.3 else 1.0
    if enlarged > 1:  # a small picture enlarged to full size: its fine detail is gone
        small = (max(8, round(w / enlarged)), max(8, round(h / enlarged)))
        picture = picture.resize(small, Image.BOX).resize((w, h), Image.BILINEAR)
    image = np.asarray(picture)

    info = {
        "skin_tone": round(skin_t, 4),
        "lesion_tone": round(lesion_t, 4),
        "area_fraction": round(float(label.mean()), 4),
        "n_hairs": n_hairs,
        "n_bubbles": n_bubbles,
        "frame": bool(frame),
        "gamma": round(gamma, 4),
        "jpeg_quality": jpeg_quality,
        "enlarged": round(enlarged, 4),
    }
    return image, label, info

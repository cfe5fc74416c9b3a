"""From the model grid back to the file: perturbations as stored DICOM values, photographs as uint8.

The attack works on the model grid in model units; files hold integers at native resolution. The CXR
preprocessing (``bundle.transforms.read_xray_dicom`` + MONAI ``Resized(mode="area")`` + the map of the
display range onto the model domain ``bounds = (low, high)``, the configs' ``intensity_bounds``) is, per
pixel and inside the VOI window, affine in the stored value:

    value   = stored * slope + intercept                    (modality LUT)
    display = (value - voi_lo) / (voi_hi - voi_lo)           (linear VOI window; 1 - display for MONOCHROME1)
    model   = low + (high - low) * display                   ([-1, 1] by default: 2 * display - 1)

so a model-domain perturbation ``adv - clean`` maps back to stored units by one factor,
``+-(voi_hi - voi_lo) / ((high - low) * slope)`` (minus for MONOCHROME1), after being brought from the
model grid to the native grid. Photographs are stored as ``round(255 * display)``. Three ways to bring it there
(``python scripts/blockiness.py`` measures them on an attack, docs/export.md has the numbers):

* ``"smooth"`` (default): an exact right inverse of the area (adaptive average pooling) resize the preprocessing
  applies, the smoothest one: per axis, each model pixel becomes a discrete quadratic spline over the native
  pixels whose mean over every pooling bin is prescribed (``_smooth_inverse_matrix``). Resizing the result back
  with ``mode="area"`` returns the model-grid perturbation exactly (when the native grid is at least as fine as
  the model grid), so the attack survives the round trip through the file up to integer rounding (and, where
  pixels lie beyond the VOI window, up to the part of the upsampled perturbation that points further out of it),
  and the file shows no blocks of the model grid. The price: block means of
  opposite sign next to each other need a smooth curve that overshoots them, so the L-infinity norm in stored
  units can exceed the model-grid budget (worst case 1.63 per axis for 1024 -> 256; about 2.3 times on a PGD
  perturbation, whose RMS grows by about a tenth). An exact inverse that kept the L-infinity budget would have
  to be pixel replication wherever the perturbation sits at +-eps: blocks and budget cannot both go.
* ``"area_inverse"``: the exact right inverse with the smallest worst-case gain (the pseudo-inverse, or a local
  inverse; see ``_area_inverse_matrix``). For an integer factor this is pixel replication (visible blocks, e.g.
  4 x 4 for 1024 -> 256), which keeps the L-infinity norm. For other factors an exact inverse must amplify some
  patterns (bins share pixels): the worst-case gain per axis is 1.2-1.4 for factors of 6-10 (e.g. 2000 -> 256),
  about 3 for factors near 2.3, and more below 2.
* ``"bilinear"``: bilinear upsampling (``align_corners=False``). Smooth and within the L-infinity budget, but
  the area resize of a bilinearly upsampled pattern is a low-pass copy of it: pixel-scale noise loses up to half
  of its amplitude per axis, which weakens the attack after the round trip.

Where the native grid is coarser than the model grid no exact inverse exists and the two exact modes give each
native pixel the mean of the model pixels over it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import pydicom
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform

from bundle._choices import check_choice
from bundle.transforms import read_photo, read_xray_dicom

__all__ = ["perturbation_to_stored", "stored_units_per_model_unit", "photo_to_uint8", "photo_perturbation_to_uint8",
           "label_to_native", "LabelToNatived", "upsample_to", "grid_blockiness", "UPSAMPLE_MODES", "BEYOND_WINDOW"]

UPSAMPLE_MODES = ("smooth", "area_inverse", "bilinear")
BEYOND_WINDOW = ("edge", "keep")  # perturbation_to_stored's ways with pixels beyond the VOI window


def _as_array(x: object, name: str, channels: int | None) -> np.ndarray:
    """A float64 ``(C, h, w)`` copy of a tensor / array given as ``(C, h, w)`` or ``(h, w)``."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().to(torch.float64).numpy()
    else:
        arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"Argument {name} should have shape (C, h, w) or (h, w), got {tuple(arr.shape)}.")
    if channels is not None and arr.shape[0] != channels:
        raise ValueError(f"Argument {name} should have {channels} channel(s), got shape {tuple(arr.shape)}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"Argument {name} contains NaN or infinite values.")
    return arr


def _pool_bins(native: int, model: int) -> list[tuple[int, int]]:
    """The native index ranges ``[start, end)`` that torch's adaptive average pooling (MONAI ``mode="area"``)
    averages into each of the ``model`` outputs."""
    return [((i * native) // model, -((-(i + 1) * native) // model)) for i in range(model)]


@functools.lru_cache(maxsize=32)
def _area_inverse_matrix(native: int, model: int) -> np.ndarray:
    """``(native, model)`` matrix ``U`` with ``pool @ U = I`` for the 1-D area-pooling matrix ``pool``.

    Two exact right inverses are built and the one with the smaller worst-case gain (induced
    infinity norm, max row sum of ``|U|``) is kept: the pseudo-inverse, and a local one where a pixel
    shared by two bins (non-integer factors) takes the mean of both and each bin's own pixels absorb
    the difference (pixel replication for an integer factor; gain at most ``1 + 2 / m`` with ``m`` own
    pixels per bin). Where the native grid is coarser than the model grid no exact inverse exists and
    each native pixel gets the mean of the model pixels over it.
    """
    bins = _pool_bins(native, model)
    pool = np.zeros((model, native))
    for i, (start, end) in enumerate(bins):
        pool[i, start:end] = 1.0 / (end - start)
    if native < model:
        inverse = pool.T / pool.T.sum(axis=1, keepdims=True)
        inverse.setflags(write=False)
        return inverse
    candidates = [np.linalg.pinv(pool)]
    owners = (pool > 0).sum(axis=0)  # 1 for a bin's own pixels, 2 for a pixel shared by two bins
    own = [np.flatnonzero((pool[i] > 0) & (owners == 1)) for i in range(model)]
    if min(len(o) for o in own) > 0:
        local = np.zeros((native, model))
        for j, (start, end) in enumerate(bins):
            shared = [p for p in range(start, end) if owners[p] == 2]
            local[shared, j] = 0.5
            local[own[j], j] = (end - start - 0.5 * len(shared)) / len(own[j])
            for k in (j - 1, j + 1):  # a neighbour that shares a pixel with bin j compensates for it
                n_shared = sum(pool[k, p] > 0 for p in shared) if 0 <= k < model else 0
                if n_shared:
                    local[own[k], j] -= 0.5 * n_shared / len(own[k])
        candidates.append(local)
    inverse = min(candidates, key=lambda u: float(np.abs(u).sum(axis=1).max()))
    inverse.setflags(write=False)
    return inverse


@functools.lru_cache(maxsize=32)
def _smooth_inverse_matrix(native: int, model: int) -> np.ndarray:
    """``(native, model)`` matrix ``U`` with ``pool @ U = I`` whose columns are as smooth as an exact inverse allows.

    Each column ``u`` minimises the sum of squared differences of neighbouring native pixels, ``|D u|^2``, subject
    to ``pool @ u = e_j`` (the area resize gives the unit vector back): a discrete quadratic spline whose mean over
    every pooling bin is prescribed (continuous, with a continuous slope, across bin borders). Solved once per
    size pair through the sparse KKT system ``[[D'D, pool'], [pool, 0]]``. Where the native grid is coarser than
    the model grid no exact inverse exists and each native pixel gets the mean of the model pixels over it.
    """
    if native < model:
        return _area_inverse_matrix(native, model)
    rows, cols, vals = [], [], []
    for i, (start, end) in enumerate(_pool_bins(native, model)):
        rows += [i] * (end - start)
        cols += list(range(start, end))
        vals += [1.0 / (end - start)] * (end - start)
    pool = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(model, native))
    diff = scipy.sparse.diags([-np.ones(native - 1), np.ones(native - 1)], [0, 1], shape=(native - 1, native))
    kkt = scipy.sparse.bmat([[diff.T @ diff, pool.T], [pool, None]], format="csc")
    rhs = np.vstack([np.zeros((native, model)), np.eye(model)])
    inverse = np.ascontiguousarray(scipy.sparse.linalg.splu(kkt).solve(rhs)[:native])
    inverse.setflags(write=False)
    return inverse


def upsample_to(arr: np.ndarray, size: Sequence[int], mode: str = "smooth") -> np.ndarray:
    """Bring a ``(C, h, w)`` float array to ``(C, H, W)`` = ``size`` (see the module docstring for modes)."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"Argument mode should be one of {UPSAMPLE_MODES}, got {mode!r}.")
    height, width = (int(s) for s in size)
    if (height, width) == arr.shape[1:]:
        return arr.copy()
    if mode == "bilinear":
        t = torch.from_numpy(np.ascontiguousarray(arr))[None]
        return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()
    inverse = _smooth_inverse_matrix if mode == "smooth" else _area_inverse_matrix
    rows, cols = inverse(height, arr.shape[1]), inverse(width, arr.shape[2])
    return np.stack([rows @ channel @ cols.T for channel in arr])


def _stored_range(ds: pydicom.Dataset) -> tuple[int, int]:
    bits = int(ds.BitsStored)
    if int(ds.PixelRepresentation):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _span(bounds: Sequence[float]) -> float:
    """``high - low`` of a model domain ``(low, high)``; a ``ValueError`` unless ``low < high``, both finite."""
    low, high = (float(v) for v in bounds)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"Argument bounds should be (low, high) of the model domain with low < high, got {bounds!r}.")
    return high - low


def stored_units_per_model_unit(meta: dict, bounds: Sequence[float] = (-1.0, 1.0)) -> float:
    """Signed factor from model units to stored units, from ``read_xray_dicom``'s meta and the model domain.

    ``(voi_hi - voi_lo) / ((high - low) * slope)`` for ``bounds = (low, high)``, negative for MONOCHROME1
    (bright model values are low stored values).
    """
    slope = float(meta["rescale"][0])
    lo, hi = (float(v) for v in meta["voi_range"])
    factor = (hi - lo) / (_span(bounds) * slope)
    return -factor if meta["photometric"] == "MONOCHROME1" else factor


def perturbation_to_stored(source_path: str | os.PathLike, clean: object, adv: object, *,
                           bounds: Sequence[float] = (-1.0, 1.0), upsample: str = "smooth",
                           beyond_window: str = "edge", dataset: pydicom.Dataset | None = None) -> np.ndarray:
    """The adversarial stored pixel array of a DICOM radiograph, at native resolution, dtype and bit depth.

    ``clip(round(source_stored + delta_stored), stored range)`` where ``delta_stored`` is ``adv - clean``
    brought to the native grid (``upsample``) and converted from model units to stored units through
    the VOI window and the rescale slope (sign flipped for MONOCHROME1); see the module docstring. With
    ``adv == clean`` the source pixels come back unchanged. The source file is only read.

    Args:
        source_path: the DICOM the clean image was read from (grayscale, single frame, as accepted by
            :func:`bundle.transforms.read_xray_dicom`).
        clean, adv: the clean and adversarial model inputs, tensors or arrays of shape ``(1, h, w)`` or
            ``(h, w)`` on the model grid, in the model domain ``bounds``. Not modified.
        bounds: ``(low, high)`` the preprocessing mapped the display range [0, 1] onto (``intensity_bounds``).
        upsample: ``"smooth"`` (default, the smoothest exact inverse of the area resize), ``"area_inverse"``
            (exact, blocks at integer factors) or ``"bilinear"`` (see the module docstring).
        beyond_window: a source pixel beyond the VOI window shows, and reached the model, at the window's edge.
            ``"edge"`` (default): where the perturbation moves it back inside, it starts from that edge, so the file
            shows what the model was attacked with; under a wider window such pixels show the jump from their
            stored value to the edge. ``"keep"``: it starts from its stored value like every other pixel, which
            keeps the image natural under any window and loses the part of the attack that lies there.
        dataset: ``source_path`` already read with ``pydicom.dcmread`` (its decoded pixels are reused; not modified).

    Returns:
        ``(Rows, Columns)`` array with the source's pixel dtype (e.g. uint16), values inside the range of
        Bits Stored / Pixel Representation, ready for :func:`bundle.io.write_derived_dicom`.

    Raises:
        ValueError: shapes differ or are not ``(1, h, w)``, values not finite, empty bounds, unsupported source,
            ``beyond_window`` not one of ``BEYOND_WINDOW``.
    """
    check_choice(beyond_window, BEYOND_WINDOW, "Argument beyond_window")
    clean_arr, adv_arr = _as_array(clean, "clean", 1), _as_array(adv, "adv", 1)
    if clean_arr.shape != adv_arr.shape:
        raise ValueError(f"Arguments clean and adv should have the same shape, got {clean_arr.shape} "
                         f"and {adv_arr.shape}.")
    ds = pydicom.dcmread(source_path) if dataset is None else dataset
    _, meta = read_xray_dicom(source_path, force=True, dataset=ds)  # what it shows was checked when it was loaded
    source = ds.pixel_array
    stored = source.astype(np.float64)
    delta = upsample_to(adv_arr - clean_arr, stored.shape, upsample)[0] * stored_units_per_model_unit(meta, bounds)
    out = stored + delta
    if beyond_window == "edge":  # a step back inside the window starts from its edge, where the model saw the pixel
        slope, intercept = (float(v) for v in meta["rescale"])
        edges = sorted((v - intercept) / slope for v in meta["voi_range"])  # the window in stored units
        edge = np.clip(stored, *edges)
        moved = (stored != edge) & (np.clip(edge + delta, *edges) != edge)
        out[moved] = edge[moved] + delta[moved]
    lo, hi = _stored_range(ds)
    return np.clip(np.rint(out), lo, hi).astype(source.dtype)


def photo_to_uint8(adv: object, size: Sequence[int] | None = None, *, upsample: str = "area_inverse") -> np.ndarray:
    """A model-domain photograph as an RGB ``(H, W, 3)`` uint8 array for a lossless PNG.

    Args:
        adv: ``(3, h, w)`` tensor or array in ``[0, 1]`` (values outside are clipped). Not modified.
        size: optional native ``(H, W)`` to resize to (``upsample`` mode); ``None`` keeps ``(h, w)``.
        upsample: ``"area_inverse"`` (default; re-reading + area resize gives ``adv`` back within 1/255
            for integer factors; at other factors pixel-scale content may overshoot ``[0, 1]`` and be
            clipped) or ``"bilinear"``. For an adversarial photograph prefer
            :func:`photo_perturbation_to_uint8`, which keeps the native source and resizes only the perturbation.

    Returns:
        ``(H, W, 3)`` uint8, ``round(255 * adv)``.
    """
    arr = _as_array(adv, "adv", 3)
    if size is not None:
        arr = upsample_to(arr, size, upsample)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def photo_perturbation_to_uint8(source_path: str | os.PathLike, clean: object, adv: object, *,
                                bounds: Sequence[float] = (0.0, 1.0), upsample: str = "smooth") -> np.ndarray:
    """The adversarial photograph at native resolution: the source photo plus the upsampled perturbation.

    Keeps the native detail of the source (unlike resizing ``adv`` itself) and, with the default
    ``upsample``, re-reading the result and resizing it with ``mode="area"`` gives ``adv`` back within
    rounding (1/255), outside saturated pixels.

    Args:
        source_path: the PNG / JPEG the clean image was read from (:func:`bundle.transforms.read_photo`).
        clean, adv: ``(3, h, w)`` tensors or arrays on the model grid, in the model domain ``bounds``. Not modified.
        bounds: ``(low, high)`` the preprocessing mapped the display range [0, 1] onto (``intensity_bounds``).
        upsample: ``"smooth"`` (default), ``"area_inverse"`` or ``"bilinear"`` (see the module docstring).

    Returns:
        ``(H, W, 3)`` uint8 at the source's native size.
    """
    clean_arr, adv_arr = _as_array(clean, "clean", 3), _as_array(adv, "adv", 3)
    if clean_arr.shape != adv_arr.shape:
        raise ValueError(f"Arguments clean and adv should have the same shape, got {clean_arr.shape} "
                         f"and {adv_arr.shape}.")
    rgb, _ = read_photo(source_path)
    source = np.rint(rgb.astype(np.float64) * 255.0)  # exact for 8-bit sources; 16-bit ones are rounded to 8 bits
    delta = upsample_to(adv_arr - clean_arr, rgb.shape[:2], upsample).transpose(1, 2, 0)
    return np.clip(np.rint(source + 255.0 / _span(bounds) * delta), 0, 255).astype(np.uint8)


def label_to_native(label: object, size: Sequence[int]) -> np.ndarray:
    """A model-grid label map ``(1, h, w)`` or ``(h, w)`` (ints) resized to native ``(H, W)`` by nearest neighbour.

    Uses ``nearest-exact`` (pixel centres), the resampling a SEG or NIfTI mask at native resolution needs.

    Returns:
        ``(H, W)`` uint8 (or int32 when values exceed 255) label map.
    """
    t = label.detach().cpu() if isinstance(label, torch.Tensor) else torch.as_tensor(np.asarray(label))
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2 or t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError(f"Argument label should be an integer map of shape (1, h, w) or (h, w), got "
                         f"shape {tuple(t.shape)} and dtype {t.dtype}.")
    height, width = (int(s) for s in size)
    out = F.interpolate(t[None, None].to(torch.float32), size=(height, width), mode="nearest-exact")[0, 0]
    out = out.round().to(torch.int64).numpy()
    if out.size and (out.min() < 0):
        raise ValueError("Argument label should hold non-negative class indices.")
    return out.astype(np.uint8 if out.size == 0 or out.max() < 256 else np.int32)


def grid_blockiness(delta: object, model_shape: Sequence[int]) -> dict[str, float]:
    """How much a native-grid perturbation shows the model grid it came from (blocks of pixel replication).

    Per axis, the absolute differences of neighbouring pixels are split into those across the borders of the area
    resize's pooling bins (every 4th pixel pair for 1024 -> 256) and those inside bins. A perturbation written by
    pixel replication is constant inside its blocks: ``within`` is 0 and ``ratio`` infinite. A perturbation as
    fine as the model grid allows has ``ratio`` near 1 (about 2 for pixel-scale sign noise, whose steepest slopes
    fall on the borders). ``high_frequency`` is the fraction of the perturbation's energy at spatial frequencies
    above the model grid's Nyquist frequency, the sharp edges and their harmonics that the model grid cannot hold.

    Args:
        delta: ``(H, W)`` perturbation at native resolution (any units).
        model_shape: ``(h, w)`` of the model grid.

    Returns:
        ``{"border": mean |diff| across bin borders, "within": mean |diff| inside bins, "ratio": border / within,
        "high_frequency": fraction in [0, 1]}``.
    """
    d = _as_array(delta, "delta", 1)[0]
    border_sum = within_sum = 0.0
    border_n = within_n = 0
    for axis, model in enumerate(int(s) for s in model_shape):
        native = d.shape[axis]
        diffs = np.abs(np.diff(d, axis=axis))
        starts = np.zeros(native - 1, dtype=bool)  # starts[k]: the pair (k, k + 1) straddles a bin border
        for start, _ in _pool_bins(native, model)[1:]:
            starts[start - 1] = True
        across = diffs[starts] if axis == 0 else diffs[:, starts]
        inside = diffs[~starts] if axis == 0 else diffs[:, ~starts]
        border_sum, border_n = border_sum + float(across.sum()), border_n + across.size
        within_sum, within_n = within_sum + float(inside.sum()), within_n + inside.size
    border, within = border_sum / max(border_n, 1), within_sum / max(within_n, 1)
    power = np.abs(np.fft.fft2(d)) ** 2
    fy = np.abs(np.fft.fftfreq(d.shape[0]))[:, None] > 0.5 * int(model_shape[0]) / d.shape[0]
    fx = np.abs(np.fft.fftfreq(d.shape[1]))[None, :] > 0.5 * int(model_shape[1]) / d.shape[1]
    total = float(power.sum())
    return {"border": border, "within": within, "ratio": border / within if within > 0 else float("inf"),
            "high_frequency": float(power[fy | fx].sum()) / total if total > 0 else 0.0}


class LabelToNatived(MapTransform):
    """Resize model-grid label maps ``(1, h, w)`` to the native size of ``ref_key``'s source image (its meta
    ``spatial_shape``) by :func:`label_to_native`, the rule of the saved ``label.png``: a request's postprocessing."""

    def __init__(self, keys: KeysCollection, ref_key: str = "image") -> None:
        super().__init__(keys)
        self.ref_key = ref_key

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        size = d[self.ref_key].meta["spatial_shape"]
        for key in self.key_iterator(d):
            d[key] = torch.from_numpy(label_to_native(d[key], size))[None]
        return d

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
model grid to the native grid. Photographs are stored as ``round(255 * display)``. Two ways to bring it there:

* ``"area_inverse"`` (default): an exact right inverse of the area (adaptive average pooling) resize
  the preprocessing applies, built per axis (the pseudo-inverse, or a local inverse where that has
  the smaller worst-case gain; see ``_area_inverse_matrix``). Resizing the result
  back with ``mode="area"`` returns the model-grid perturbation exactly (when the native grid is at
  least as fine as the model grid), so the attack survives the round trip through the file up to
  integer rounding and the clipping of the VOI window. For an integer factor this is pixel
  replication (blocks), which keeps the L-infinity norm. For other factors an exact inverse must
  amplify some patterns (bins share pixels): the worst-case gain per axis is 1.2-1.4 for factors of
  6-10 (e.g. 2000 -> 256), about 3 for factors near 2.3, and more below 2; the L-infinity norm of the
  written perturbation in stored units can then exceed the model-grid budget. Where the native grid
  is coarser than the model grid no exact inverse exists and each native pixel gets the mean of the
  model pixels over it.
* ``"bilinear"``: smooth bilinear upsampling (``align_corners=False``). Looks smoother, but the area
  resize of a bilinearly upsampled pattern is a low-pass copy of it: pixel-scale noise loses up to half
  of its amplitude per axis, which weakens the attack after the round trip.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

from bundle.transforms import read_photo, read_xray_dicom

__all__ = ["perturbation_to_stored", "stored_units_per_model_unit", "photo_to_uint8",
           "photo_perturbation_to_uint8", "label_to_native", "upsample_to", "UPSAMPLE_MODES"]

UPSAMPLE_MODES = ("area_inverse", "bilinear")


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


def upsample_to(arr: np.ndarray, size: Sequence[int], mode: str = "area_inverse") -> np.ndarray:
    """Bring a ``(C, h, w)`` float array to ``(C, H, W)`` = ``size`` (see the module docstring for modes)."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"Argument mode should be one of {UPSAMPLE_MODES}, got {mode!r}.")
    height, width = (int(s) for s in size)
    if (height, width) == arr.shape[1:]:
        return arr.copy()
    if mode == "bilinear":
        t = torch.from_numpy(np.ascontiguousarray(arr))[None]
        return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()
    rows = _area_inverse_matrix(height, arr.shape[1])
    cols = _area_inverse_matrix(width, arr.shape[2])
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
                           bounds: Sequence[float] = (-1.0, 1.0), upsample: str = "area_inverse") -> np.ndarray:
    """The adversarial stored pixel array of a DICOM radiograph, at native resolution, dtype and bit depth.

    ``clip(round(source_stored + delta_stored), stored range)`` where ``delta_stored`` is ``adv - clean``
    brought to the native grid (``upsample``) and converted from model units to stored units through
    the VOI window and the rescale slope (sign flipped for MONOCHROME1); see the module docstring.
    With ``adv == clean`` the source pixels come back unchanged. The source file is only read.

    Args:
        source_path: the DICOM the clean image was read from (grayscale, single frame, as accepted by
            :func:`bundle.transforms.read_xray_dicom`).
        clean, adv: the clean and adversarial model inputs, tensors or arrays of shape ``(1, h, w)`` or
            ``(h, w)`` on the model grid, in the model domain ``bounds``. Not modified.
        bounds: ``(low, high)`` the preprocessing mapped the display range [0, 1] onto (``intensity_bounds``).
        upsample: ``"area_inverse"`` (default, exact inverse of the area resize) or ``"bilinear"``.

    Returns:
        ``(Rows, Columns)`` array with the source's pixel dtype (e.g. uint16), values inside the range of
        Bits Stored / Pixel Representation, ready for :func:`bundle.io.write_derived_dicom`.

    Raises:
        ValueError: shapes differ or are not ``(1, h, w)``, values not finite, empty bounds, unsupported source.
    """
    clean_arr, adv_arr = _as_array(clean, "clean", 1), _as_array(adv, "adv", 1)
    if clean_arr.shape != adv_arr.shape:
        raise ValueError(f"Arguments clean and adv should have the same shape, got {clean_arr.shape} "
                         f"and {adv_arr.shape}.")
    _, meta = read_xray_dicom(source_path, force=True)  # what the image shows was checked when it was loaded
    ds = pydicom.dcmread(source_path)
    stored = ds.pixel_array
    delta = upsample_to(adv_arr - clean_arr, stored.shape, upsample)[0]
    lo, hi = _stored_range(ds)
    out = np.rint(stored.astype(np.float64) + delta * stored_units_per_model_unit(meta, bounds))
    return np.clip(out, lo, hi).astype(stored.dtype)


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
                                bounds: Sequence[float] = (0.0, 1.0), upsample: str = "area_inverse") -> np.ndarray:
    """The adversarial photograph at native resolution: the source photo plus the upsampled perturbation.

    Keeps the native detail of the source (unlike resizing ``adv`` itself) and, with the default
    ``upsample``, re-reading the result and resizing it with ``mode="area"`` gives ``adv`` back within
    rounding (1/255), outside saturated pixels.

    Args:
        source_path: the PNG / JPEG the clean image was read from (:func:`bundle.transforms.read_photo`).
        clean, adv: ``(3, h, w)`` tensors or arrays on the model grid, in the model domain ``bounds``. Not modified.
        bounds: ``(low, high)`` the preprocessing mapped the display range [0, 1] onto (``intensity_bounds``).
        upsample: ``"area_inverse"`` (default) or ``"bilinear"``.

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

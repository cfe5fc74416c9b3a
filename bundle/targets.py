"""Adversarial target generators: heart symbol, structure resizing, another case's label.

Every function takes MONAI-style ``(B, 1, H, W)`` integer label maps and returns a new ``(B, 1, H, W)``
``torch.long`` map on the same device; the input is never modified. Samples are handled one by one
(a sample gives the same target alone and inside any batch). Pure PyTorch: no I/O, no logging.

Conventions:

- **Placement** (Bortsova et al. place a target "at the center of mass of the ground truth"): a new
  or resized structure is centred on the centroid (mean pixel index) of the structure it replaces.
  The heart symbol's bounding-box centre goes there, moved the least distance needed to keep the
  symbol inside the heart's bounding box along each axis in which the symbol is smaller than it.
- **Vacated pixels** (pixels of the structure that the new shape does not cover) become background, 0.
  In the SCR labels of JSRT the mediastinum around the heart is background, so a shrunken heart is
  surrounded by background just as the real one is. ``resize_target`` takes ``fill`` for tasks where
  another class is the natural surrounding (e.g. the fundus rim, 1, around a shrunken cup, 2).
- **Priority**: the new shape is painted the way the datasets paint overlapping structures (JSRT/SCR:
  lungs, then heart, then clavicles). It overwrites background and classes of lower priority and
  never a class of higher priority; every other pixel keeps its ground truth. The default priority
  is the class value (higher value wins): for CXR a heart symbol covers lung (1, 2) but not clavicle
  (4, 5) pixels; for fundus a cup (2) covers the rim (1).

References:
    G. Bortsova, F. Dubost, L. Hogeweg, I. Katramados, M. de Bruijne, "Adversarial heart attack: neural
    networks fooled to segment heart symbols in chest X-ray images", 2021, https://arxiv.org/abs/2104.00139
    (heart-symbol targets, small and large; resizing targets with factors 0.4 ... 1.8, Table 4).
    U. Ozbulak, A. Van Messem, W. De Neve, "Impact of adversarial examples on deep learning models for
    biomedical image segmentation", MICCAI 2019, https://arxiv.org/abs/1907.13124 (target masks taken
    from other samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

import torch
import torch.nn.functional as F
from monai.utils import look_up_option

__all__ = ["EditKind", "HeartSize", "RegionKind", "derangement", "edited_target", "heart_symbol_target",
           "parse_target_edit", "resize_target", "structure_region", "swap_targets"]

# The paper states no sizes; its Table 2 implies them: at eps 0.16 its predictions fit the symbols (IoU 0.986
# small, 0.991 large) and overlap the true heart with IoU 0.344 (small) and 0.418 (large), so those are the
# symbols' own overlaps with the heart. These fractions give 0.346 and 0.419 on the 20 CXR test phantoms of
# renderer version 4 (0.85 and 1.30 did on version 3, 0.82 and 1.40 on version 2: the version-4 cardiac
# silhouette fills more of its bounding box than the earlier ellipses, so a symbol of the same fraction
# overlaps it more).
SMALL_FRACTION = 0.74  # "small": the symbol's larger side is this fraction of the heart bbox's smaller side
LARGE_FRACTION = 1.55  # "large": the symbol's larger side is this multiple of the heart bbox's larger side
_N_VERTICES = 256  # vertices of the polygon that approximates the heart curve


class HeartSize(str, Enum):
    """Named heart-symbol sizes of Bortsova et al. (Fig. 4, Table 2)."""

    SMALL = "small"  # fits inside the heart's bounding box
    LARGE = "large"  # reaches out of the heart's bounding box into the lungs


def heart_symbol_target(
    label: torch.Tensor,
    size: str | float = "small",
    *,
    heart_class: int = 3,
    priority: Sequence[int] | None = None,
) -> torch.Tensor:
    """Replace the heart of every sample by a heart symbol (Bortsova et al. 2021, Sec. 2.3 and 3.2).

    The symbol is the curve ``x = 16 sin^3 t``, ``y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t``
    (two lobes on top, the point downwards; 32 x 28.9 units), filled by an even-odd inside test of the
    pixel centres. Its bounding-box centre sits on the heart's centroid (see the module docstring).
    Heart pixels outside the symbol become background; the symbol is painted with the priority rule.

    Args:
        label: ground-truth label map, integer values >= 0.
        size: ``"small"``: the symbol's larger side is 0.74 x the heart bbox's smaller side (it lies inside
            the bbox); ``"large"``: its larger side is 1.55 x the bbox's larger side (it reaches into the
            lungs); both overlap the heart as the paper's do (see ``SMALL_FRACTION``); a positive float
            ``f``: the symbol's width is ``f`` x the heart bbox's width.
        heart_class: label value of the heart (3 in the CXR task).
        priority: class values from lowest to highest painting priority; background (0) is always the
            lowest and may be left out. ``None``: the class value (higher value wins).

    Shape:
        label: ``(B, 1, H, W)``; returns the same shape.

    Returns:
        The target label map, ``torch.long``, on ``label``'s device.

    Raises:
        ValueError: a sample has no heart pixel, or an argument is out of range.
        TypeError: an argument has the wrong type.
    """
    label = _check_label(label)
    fraction = _check_size(size)
    heart_class = _check_class(heart_class, "heart_class")
    ranks = _rank_table(label, heart_class, priority)
    heart = label == heart_class
    _require_class(heart, heart_class, "heart")
    centre, lo, hi = _centroid_and_bbox(heart)
    extent = hi - lo + 1
    symbol_hw = torch.tensor(_heart_extent(), device=label.device)
    if fraction == HeartSize.SMALL:
        scale = SMALL_FRACTION * extent.min(1).values / symbol_hw.max()
    elif fraction == HeartSize.LARGE:
        scale = LARGE_FRACTION * extent.max(1).values / symbol_hw.max()
    else:
        scale = fraction * extent[:, 1] / symbol_hw[1]
    half = scale[:, None] * symbol_hw / 2
    low, high = lo - 0.5 + half, hi + 0.5 - half
    centre = torch.where(low <= high, torch.minimum(torch.maximum(centre, low), high), centre)
    symbol = _rasterise_heart(centre, scale, label.shape[-2:])
    return _paint(torch.where(heart, 0, label), symbol, heart_class, ranks)


def resize_target(
    label: torch.Tensor,
    cls: int,
    factor: float | torch.Tensor,
    *,
    priority: Sequence[int] | None = None,
    fill: int = 0,
) -> torch.Tensor:
    """Scale structure ``cls`` of every sample about its centroid (Bortsova et al. 2021, Sec. 3.3, Table 4).

    The structure's mask is resampled with nearest-neighbour interpolation (``factor`` 1.0 gives the
    input back exactly). Its pixels that the scaled mask does not cover become ``fill`` (background by
    default); the scaled mask is painted with the priority rule; other pixels keep their ground truth.

    Args:
        label: ground-truth label map, integer values >= 0.
        cls: label value of the structure to resize (> 0).
        factor: linear scale factor, > 0 (Table 4 uses 0.4, 0.6, 0.8, 1.2, 1.4, 1.6, 1.8); a float, or a
            tensor with one factor per sample.
        priority: class values from lowest to highest painting priority; background (0) is always the
            lowest and may be left out. ``None``: the class value (higher value wins).
        fill: label value that vacated pixels get (>= 0, not ``cls``); 0 (background) by default.

    Shape:
        label: ``(B, 1, H, W)``; factor: scalar or ``(B,)``; returns ``(B, 1, H, W)``.

    Returns:
        The target label map, ``torch.long``, on ``label``'s device.

    Raises:
        ValueError: a sample has no pixel of ``cls``, or an argument is out of range.
        TypeError: an argument has the wrong type.
    """
    label = _check_label(label)
    cls = _check_class(cls, "cls")
    factor = _check_factor(factor, label)
    if isinstance(fill, bool) or not isinstance(fill, int) or fill < 0 or fill == cls:
        raise ValueError(f"Argument fill should be a non-negative int other than cls={cls}, got {fill!r}.")
    ranks = _rank_table(label, cls, priority, extra=(fill,))
    mask = label == cls
    _require_class(mask, cls, f"class {cls}")
    centre, _, _ = _centroid_and_bbox(mask)
    return _paint(torch.where(mask, fill, label), _scale_mask(mask, centre, factor), cls, ranks)


def swap_targets(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Give every case the label of another case of the batch (Ozbulak et al. 2019, Sec. 4).

    ASMA's targets are "randomly selected among the masks of the other samples": sample ``i`` gets
    ``labels[derangement(B, seed)[i]]``, never its own label.

    Args:
        labels: label maps of ``B >= 2`` cases.
        seed: seed of the permutation; the same seed gives the same assignment.

    Shape:
        labels: ``(B, 1, H, W)``; returns the same shape.

    Returns:
        The target label maps, ``torch.long``, on ``labels``' device.

    Raises:
        ValueError: ``B < 2``.
    """
    labels = _check_label(labels)
    if labels.shape[0] < 2:
        raise ValueError(
            "Argument labels should hold at least 2 cases to take each target from another case, "
            f"got {labels.shape[0]}."
        )
    return labels[derangement(labels.shape[0], seed).to(labels.device)]


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A random permutation of ``0 .. n-1`` without fixed points, uniform over all such permutations.

    Permutations are drawn with a seeded CPU ``torch.Generator`` until one has no fixed point (about
    e = 2.7 draws on average), so the result depends only on ``n`` and ``seed``.

    Args:
        n: number of elements, >= 2 (for ``n = 2`` the only derangement is ``[1, 0]``).
        seed: seed of the generator.

    Shape:
        returns ``(n,)``.

    Returns:
        ``perm`` (CPU ``torch.long``) with ``perm[i] != i`` for every ``i``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"Argument n should be an int, got {type(n).__name__}.")
    if n < 2:
        raise ValueError(f"Argument n should be at least 2 (one element has no derangement), got {n}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"Argument seed should be an int, got {type(seed).__name__}.")
    generator = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=generator)
        if not (perm == torch.arange(n)).any():
            return perm


class EditKind(str, Enum):
    REMOVE = "remove"
    SHIFT = "shift"
    SCALE = "scale"


def parse_target_edit(edit: str, class_names: Sequence[str]) -> tuple[EditKind, int, tuple[float, ...]]:
    """``"remove:<class>"``, ``"scale:<class>:<factor>"`` or ``"shift:<class>:<down>,<right>"`` as
    ``(kind, class value, amounts)``; a class by name or value, a shift in fractions of the image's height and width.

    Raises:
        ValueError: naming the option ``target_edit``, what is wrong and an example.
    """
    examples = f"e.g. remove:{class_names[-1]}, scale:{class_names[-1]}:1.4 or shift:{class_names[-1]}:0.1,0"
    parts = str(edit).split(":")
    try:
        kind = look_up_option(parts[0], EditKind)
    except ValueError:
        raise ValueError(f"Option target_edit {edit!r}: the edit should be remove, shift or scale; {examples}.") from None
    if len(parts) != (2 if kind == EditKind.REMOVE else 3):
        raise ValueError(f"Option target_edit {edit!r} should read {kind.value}:<class>"
                         f"{'' if kind == EditKind.REMOVE else ':<amount>'}; {examples}.")
    names = list(class_names)
    cls = names.index(parts[1]) if parts[1] in names else int(parts[1]) if parts[1].isdigit() else -1
    if not 0 < cls < len(names):
        raise ValueError(f"Option target_edit {edit!r}: {parts[1]!r} is not a foreground class; use one of "
                         f"{', '.join(names[1:])}.")
    try:
        amounts = tuple(float(v) for v in parts[2].split(",")) if len(parts) == 3 else ()
    except ValueError:
        amounts = (math.nan,)
    if kind == EditKind.SCALE and not (len(amounts) == 1 and math.isfinite(amounts[0]) and amounts[0] > 0):
        raise ValueError(f"Option target_edit {edit!r}: the scale factor should be a positive number, e.g. 1.4.")
    if kind == EditKind.SHIFT and not (len(amounts) == 2 and all(math.isfinite(a) and abs(a) < 1 for a in amounts)):
        raise ValueError(f"Option target_edit {edit!r}: the shift should be two fractions of the image's height and "
                         f"width in (-1, 1), down then right, e.g. 0.1,0.")
    return kind, cls, amounts


def edited_target(label: torch.Tensor, edit: str, class_names: Sequence[str]) -> torch.Tensor:
    """A target made by one named edit of ``label`` (a user's own reference): remove, shift or scale a structure.

    Vacated pixels take the class that surrounds the structure most (its one-pixel outer ring), so a removed
    fundus cup becomes rim and a removed heart background; the moved or scaled structure is painted with the
    priority rule of the module docstring. Sample by sample, like every generator here.

    Args:
        label: reference label map ``(B, 1, H, W)``.
        edit: see :func:`parse_target_edit`, e.g. ``"scale:heart:1.4"``.
        class_names: class names in label order.

    Raises:
        ValueError: the edit is malformed, or a sample has no pixel of the structure.
    """
    kind, cls, amounts = parse_target_edit(edit, class_names)
    label = _check_label(label)
    mask = label == cls
    _require_class(mask, cls, class_names[cls])
    ring = (F.max_pool2d(mask.float(), 3, 1, 1) > 0) & ~mask
    counts = (F.one_hot(label[:, 0], max(int(label.max()), cls) + 1) * ring[:, 0, ..., None]).sum((1, 2))
    counts[:, cls] = -1
    vacated = torch.where(mask, counts.argmax(1).view(-1, 1, 1, 1), label)
    if kind == EditKind.REMOVE:
        return vacated
    if kind == EditKind.SCALE:
        centre, _, _ = _centroid_and_bbox(mask)
        moved = _scale_mask(mask, centre, torch.full((label.shape[0],), amounts[0], device=label.device))
    else:
        h, w = label.shape[-2:]
        moved = _shift_mask(mask, round(amounts[0] * h), round(amounts[1] * w))
    return _paint(vacated, moved, cls, _rank_table(vacated, cls, None))


def _shift_mask(mask: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """``mask`` moved ``down`` rows and ``right`` columns (negative: up, left); pixels moved out are dropped."""
    h, w = mask.shape[-2:]
    out = torch.zeros_like(mask)
    out[..., max(down, 0):h + min(down, 0), max(right, 0):w + min(right, 0)] = \
        mask[..., max(-down, 0):h - max(down, 0), max(-right, 0):w - max(right, 0)]
    return out


class RegionKind(str, Enum):
    """Where noise may go around a structure (Bortsova et al., Figure 2)."""

    RECEPTIVE_FIELD = "receptive_field"
    BBOX = "bbox"


def structure_region(label: torch.Tensor, cls: int, kind: str, receptive_field: int = 187) -> torch.Tensor:
    """Pixels allowed to carry noise for an attack on structure ``cls``, ``(B, 1, H, W)`` bool.

    ``"receptive_field"``: every pixel that can influence the network's output on a pixel of the structure, i.e.
    the structure dilated by a ``receptive_field`` square; ``"bbox"``: the structure's bounding box.

    Args:
        label: ``(B, 1, H, W)`` integer ground truth.
        cls: class index of the structure (3 = heart for cxr).
        kind: ``"receptive_field"`` or ``"bbox"``.
        receptive_field: side of the network's receptive field in model-grid pixels (odd).
    """
    try:
        kind = look_up_option(kind, RegionKind)
    except ValueError:
        raise ValueError(f"Option region_kind should be one of {', '.join(k.value for k in RegionKind)} or null, "
                         f"got {kind!r}.") from None
    mask = _check_label(label) == _check_class(cls, "cls")
    _require_class(mask, cls, f"structure {cls}")
    if kind == RegionKind.RECEPTIVE_FIELD:
        k = int(receptive_field) | 1
        return F.max_pool2d(mask.float(), kernel_size=k, stride=1, padding=k // 2) > 0
    rows, cols = mask.any(3, keepdim=True), mask.any(2, keepdim=True)
    return rows & cols


# ---------------------------------------------------------------- argument checks


def _check_label(label: torch.Tensor) -> torch.Tensor:
    if not isinstance(label, torch.Tensor):
        raise TypeError(f"Argument label should be a torch.Tensor, got {type(label).__name__}.")
    if label.ndim != 4 or label.shape[1] != 1:
        raise ValueError(f"Argument label should have shape (B, 1, H, W), got {tuple(label.shape)}.")
    if label.dtype == torch.bool or label.is_floating_point() or label.is_complex():
        raise TypeError(f"Argument label should be an integer tensor, got {label.dtype}.")
    if label.numel() and label.min() < 0:
        raise ValueError(f"Argument label should hold values >= 0, got {int(label.min())}.")
    return label.long()


def _check_class(cls: int, name: str) -> int:
    if isinstance(cls, bool) or not isinstance(cls, int) or cls < 1:
        raise ValueError(f"Argument {name} should be a positive int (a foreground class), got {cls!r}.")
    return cls


def _check_size(size: str | float) -> HeartSize | float:
    message = f"Argument size should be 'small', 'large' or a positive float, got {size!r}."
    if isinstance(size, str):
        try:
            return look_up_option(size, HeartSize)
        except ValueError as e:
            raise ValueError(f"{message} {e}".strip()) from None
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(message)
    if not (math.isfinite(size) and size > 0):
        raise ValueError(message)
    return float(size)


def _check_factor(factor: float | torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    batch = label.shape[0]
    if isinstance(factor, torch.Tensor):
        if factor.shape not in ((), (batch,)) or factor.dtype == torch.bool or factor.is_complex():
            raise ValueError(
                f"Argument factor should be a positive float or a real tensor of shape ({batch},), "
                f"got {factor.dtype} of shape {tuple(factor.shape)}."
            )
        if not (torch.isfinite(factor) & (factor > 0)).all():
            raise ValueError(f"Argument factor should be a positive float, got {factor.tolist()}.")
        return factor.to(label.device, torch.float32).expand(batch)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise TypeError(f"Argument factor should be a positive float, got {factor!r}.")
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"Argument factor should be a positive float, got {factor!r}.")
    return torch.full((batch,), float(factor), device=label.device)


def _rank_table(
    label: torch.Tensor, cls: int, priority: Sequence[int] | None, extra: tuple[int, ...] = ()
) -> torch.Tensor:
    """Painting rank of every label value (index = value); background always ranks lowest."""
    size = max([int(label.max()) if label.numel() else 0, cls, *extra]) + 1
    if priority is None:
        return torch.arange(size, device=label.device)
    if isinstance(priority, (str, bytes)) or not isinstance(priority, Sequence):
        raise TypeError(f"Argument priority should be a sequence of class values, got {type(priority).__name__}.")
    order = [p for p in priority if p != 0]
    if any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in order) or len(set(order)) != len(order):
        raise ValueError(f"Argument priority should hold distinct non-negative ints, got {list(priority)}.")
    needed = set(torch.unique(label).tolist()) | {cls, *extra}
    missing = sorted(needed - set(order) - {0})
    if missing:
        raise ValueError(f"Argument priority should list every class in label and cls, missing {missing}.")
    table = torch.zeros(max(size, max(order) + 1), dtype=torch.long)
    table[order] = torch.arange(1, len(order) + 1)
    return table.to(label.device)


def _require_class(mask: torch.Tensor, cls: int, name: str) -> None:
    empty = (~mask.flatten(1).any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"Sample {empty[0]} has no pixel of class {cls} ({name}); the target is placed on that "
            f"structure, so it must be present in every sample (missing in samples {empty})."
        )


# ---------------------------------------------------------------- geometry


def _centroid_and_bbox(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centroid, first and last (row, col) pixel index of every non-empty mask, each ``(B, 2)`` float."""
    m = mask[:, 0].float()
    h, w = m.shape[-2:]
    rows, cols = m.sum(2), m.sum(1)  # (B, H), (B, W) projections
    r_idx = torch.arange(h, device=m.device, dtype=m.dtype)
    c_idx = torch.arange(w, device=m.device, dtype=m.dtype)
    count = m.sum((1, 2))
    centre = torch.stack(((rows * r_idx).sum(1), (cols * c_idx).sum(1)), 1) / count[:, None]

    def bounds(proj: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        present = proj > 0
        return torch.where(present, idx, math.inf).amin(1), torch.where(present, idx, -math.inf).amax(1)

    (r0, r1), (c0, c1) = bounds(rows, r_idx), bounds(cols, c_idx)
    return centre, torch.stack((r0, c0), 1), torch.stack((r1, c1), 1)


def _heart_polygon(device: torch.device) -> torch.Tensor:
    """Vertices ``(N, 2)`` as (row, col) in symbol units, y pointing down, bbox centred on (0, 0)."""
    t = torch.linspace(0.0, 2 * math.pi, _N_VERTICES + 1, device=device)[:-1]
    x = 16 * torch.sin(t) ** 3
    y = 13 * torch.cos(t) - 5 * torch.cos(2 * t) - 2 * torch.cos(3 * t) - torch.cos(4 * t)
    row = -y  # image rows grow downwards: the point (t = pi) is at the bottom
    return torch.stack((row - (row.max() + row.min()) / 2, x), 1)


def _heart_extent() -> tuple[float, float]:
    """(height, width) of the heart symbol in symbol units."""
    poly = _heart_polygon(torch.device("cpu"))
    return tuple((poly.amax(0) - poly.amin(0)).tolist())


def _rasterise_heart(centre: torch.Tensor, scale: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Pixels whose centre lies inside the scaled heart polygon, ``(B, 1, H, W)`` bool.

    Scanline even-odd test: for every (sample, row) the x positions where polygon edges cross the row
    are sorted; a pixel is inside when an odd number of crossings lies to its left.
    """
    poly = _heart_polygon(centre.device)
    (r1, c1), (r2, c2) = poly.T, poly.roll(-1, 0).T  # edge k runs from vertex k to vertex k + 1
    h, w = hw
    v = (torch.arange(h, device=centre.device) - centre[:, :1]) / scale[:, None]  # (B, H) symbol rows
    u = (torch.arange(w, device=centre.device) - centre[:, 1:]) / scale[:, None]  # (B, W) symbol cols
    v = v[..., None]  # (B, H, 1) against edges (N,)
    crosses = (r1 <= v) != (r2 <= v)
    dr = torch.where(r2 == r1, torch.ones_like(r1), r2 - r1)
    x = torch.where(crosses, c1 + (v - r1) * (c2 - c1) / dr, math.inf).sort(-1).values  # (B, H, N)
    left = torch.searchsorted(x, u[:, None, :].expand(-1, h, -1).contiguous())  # crossings left of each pixel
    return (left % 2 == 1)[:, None]


def _scale_mask(mask: torch.Tensor, centre: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour scaling of ``mask`` ``(B, 1, H, W)`` about ``centre`` ``(B, 2)`` by ``factor`` ``(B,)``."""
    h, w = mask.shape[-2:]
    src_r = centre[:, :1] + (torch.arange(h, device=mask.device) - centre[:, :1]) / factor[:, None]
    src_c = centre[:, 1:] + (torch.arange(w, device=mask.device) - centre[:, 1:]) / factor[:, None]
    gy = ((2 * src_r + 1) / h - 1)[:, :, None].expand(-1, h, w)  # align_corners=False normalisation
    gx = ((2 * src_c + 1) / w - 1)[:, None, :].expand(-1, h, w)
    grid = torch.stack((gx, gy), -1)
    return F.grid_sample(mask.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False) > 0.5


def _paint(label: torch.Tensor, mask: torch.Tensor, cls: int, ranks: torch.Tensor) -> torch.Tensor:
    """Set ``cls`` where ``mask`` is true and the current class ranks lower than ``cls``."""
    return torch.where(mask & (ranks[label] < ranks[cls]), cls, label)


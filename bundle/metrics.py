"""Segmentation and perturbation metrics, every one per sample.

Label maps are MONAI-style ``(B, 1, H, W)`` integer tensors (``(B, H, W)`` is accepted too); class scores are
returned as ``(B, C)`` and scalar metrics as ``(B,)`` float tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["class_dice", "class_iou", "mean_iou", "paper_iou", "pixel_accuracy", "l2_norm", "linf_norm",
           "heart_lung_contrast", "errors_at_outline", "structure_pieces", "implausible_structures"]


def _index_map(label: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` or ``(B, H, W)`` integer map -> ``(B, H*W)``."""
    if label.ndim == 4:
        if label.shape[1] != 1:
            raise ValueError(f"Argument label should have one channel (B, 1, H, W), got shape {tuple(label.shape)}.")
        label = label[:, 0]
    if label.ndim != 3:
        raise ValueError(f"Argument label should have shape (B, 1, H, W) or (B, H, W), got {tuple(label.shape)}.")
    return label.reshape(label.shape[0], -1).long()


def _overlap(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, ...]:
    p, g = _index_map(pred), _index_map(label)
    classes = torch.arange(num_classes, device=p.device)[None, :, None]
    p1, g1 = p[:, None] == classes, g[:, None] == classes
    inter = (p1 & g1).sum(-1).double()
    return inter, p1.sum(-1).double(), g1.sum(-1).double()


def class_iou(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IoU of every class per sample, ``(B, num_classes)`` in ``[0, 1]``; 1 where the class is absent from both."""
    inter, np_, ng = _overlap(pred, label, num_classes)
    union = np_ + ng - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).float()


def class_dice(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice of every class per sample, ``(B, num_classes)`` in ``[0, 1]``; 1 where the class is absent from both."""
    inter, np_, ng = _overlap(pred, label, num_classes)
    total = np_ + ng
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total)).float()


def mean_iou(pred: torch.Tensor, label: torch.Tensor, num_classes: int, include_background: bool = False,
             classes: Sequence[int] | None = None) -> torch.Tensor:
    """Mean of the per-class IoU over the (foreground) classes, ``(B,)``, as in Bortsova et al.'s tables; over
    ``classes`` alone when given."""
    iou = class_iou(pred, label, num_classes)
    if classes is not None:
        return iou[:, list(classes)].mean(1)
    return (iou if include_background else iou[:, 1:]).mean(1)


def paper_iou(pred: torch.Tensor, target: torch.Tensor, classes: Sequence[int] | None = None) -> torch.Tensor:
    """IoU as defined by Ozbulak et al.: agreeing pixels over the union of non-background pixels, ``(B,)``.

    A pixel counts in the union when the prediction or the target marks it as foreground, and in the
    intersection when, in addition, both give it the same class. Two all-background maps score 1. With
    ``classes`` only those classes count as foreground (with one class: that class's IoU).
    """
    p, t = _index_map(pred), _index_map(target)
    if classes is not None:
        kept = torch.as_tensor(list(classes), device=p.device)
        p, t = (torch.where(torch.isin(m, kept), m, torch.zeros_like(m)) for m in (p, t))
    union = (p != 0) | (t != 0)
    inter = union & (p == t)
    n_union = union.sum(1)
    return torch.where(n_union > 0, inter.sum(1).double() / n_union.clamp_min(1), torch.ones_like(n_union, dtype=torch.double)).float()


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels whose class equals the target's, ``(B,)`` in ``[0, 1]``."""
    return (_index_map(pred) == _index_map(target)).float().mean(1)


def l2_norm(delta: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each sample's perturbation ``(B, ...)`` -> ``(B,)`` (in the units of ``delta``)."""
    return delta.detach().flatten(1).float().norm(p=2, dim=1)


def linf_norm(delta: torch.Tensor) -> torch.Tensor:
    """Largest absolute change of each sample's perturbation ``(B, ...)`` -> ``(B,)``."""
    return delta.detach().flatten(1).float().abs().amax(dim=1)


def heart_lung_contrast(image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """median(heart) - median(lungs) of each chest X-ray, ``(B,)`` in the image's units.

    The intensity step an eps is measured against (an eps in model units is a different fraction of the anatomy's
    contrast on different data). ``image`` ``(B, 1, H, W)``; ``label`` ``(B, 1, H, W)`` with lungs 1 and 2, heart 3.
    """
    if image.shape[0] != label.shape[0] or image.shape[-2:] != label.shape[-2:]:
        raise ValueError(f"Arguments image {tuple(image.shape)} and label {tuple(label.shape)} should have the same "
                         f"batch size and grid.")
    steps = []
    for img, lab in zip(image, label):
        heart, lungs = img[lab == 3], img[(lab == 1) | (lab == 2)]
        if heart.numel() == 0 or lungs.numel() == 0:
            raise ValueError("Argument label should mark both lungs (1, 2) and the heart (3) in every sample.")
        steps.append(heart.median() - lungs.median())
    return torch.stack(steps).float()


def errors_at_outline(pred: torch.Tensor, target: torch.Tensor, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a prediction of class ``cls`` misses its target: on the target's outline or inside the shape.

    ``pred`` and ``target`` ``(B, 1, H, W)`` integer maps. Returns ``(wrong, share)``, both ``(B,)``: the pixels
    where ``pred == cls`` and ``target == cls`` disagree, and the fraction of them within one pixel (8-neighbourhood)
    of the target region's outline (0 where none is wrong). A share near 1 means the shape is drawn and only its
    outline is off; a low share means parts of the shape are missing or extra.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"Arguments pred {tuple(pred.shape)} and target {tuple(target.shape)} should be (B, 1, H, W) "
                         f"maps of the same shape.")
    region = (target == cls).float()
    near_region = F.max_pool2d(region, 3, 1, 1).bool()  # a region pixel in the 3x3 neighbourhood
    near_rest = F.max_pool2d(1 - region, 3, 1, 1).bool()
    band = near_region & near_rest  # the outline, one pixel either side
    wrong = (pred == cls) ^ region.bool()
    count = wrong.flatten(1).sum(1)
    near = (wrong & band).flatten(1).sum(1)
    return count.float(), near.float() / count.clamp(min=1)


def structure_pieces(pred: torch.Tensor, num_classes: int, min_fraction: float = 2e-4) -> torch.Tensor:
    """Connected pieces (8-connected) of every class per sample, ``(B, num_classes)`` long; pieces smaller than
    ``min_fraction`` of the image are not counted (specks)."""
    maps = _index_map(pred).reshape(pred.shape[0], *pred.shape[-2:]).cpu().numpy()
    min_pixels = max(1, int(min_fraction * maps[0].size))
    counts = np.zeros((len(maps), num_classes), dtype=np.int64)
    for b, label in enumerate(maps):
        for c in range(num_classes):
            pieces, n = ndimage.label(label == c, structure=np.ones((3, 3)))
            counts[b, c] = int((np.bincount(pieces.ravel(), minlength=n + 1)[1:] >= min_pixels).sum())
    return torch.from_numpy(counts)


def implausible_structures(pred: torch.Tensor, class_names: list[str], max_pieces: int = 3) -> list[str]:
    """Per sample, a warning naming the foreground structures that are missing or in more than ``max_pieces``
    pieces (an image unlike the ones the model was trained on), or ``""``."""
    counts = structure_pieces(pred, len(class_names))
    warnings = []
    for row in counts.tolist():
        notes = [f"{name} missing" if n == 0 else f"{name} in {n} pieces"
                 for name, n in zip(class_names[1:], row[1:]) if n == 0 or n > max_pieces]
        warnings.append("; ".join(notes))
    return warnings

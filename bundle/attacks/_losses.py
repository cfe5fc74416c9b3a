"""Per-sample segmentation losses of :func:`bundle.attacks.apgd`: SEA's masked, class-balanced and Jensen-Shannon
losses, the existing soft IoU, Dice and margin, and SegPGD's and CosPGD's pixel weightings.

Every loss is a distance to ``target``: lower = closer. A targeted attack lowers it, an untargeted one (``target``
is the reference it moves away from) raises it. "Still to flip" means a pixel whose predicted class equals the
reference (untargeted) or differs from the target (targeted).
"""

from __future__ import annotations

import math
from enum import Enum

import torch
import torch.nn.functional as F

from bundle.attacks._utils import Loss, check_choice, segmentation_loss

__all__ = ["ApgdLoss", "Weighting", "PIXEL_LOSSES", "apgd_loss", "js_divergence", "fast_mean_iou"]


class ApgdLoss(str, Enum):
    """The losses :func:`~bundle.attacks.apgd` takes (SEA's three, then :class:`~bundle.attacks._utils.Loss`'s)."""

    MASKED_CE = "masked_ce"
    BALANCED_CE = "balanced_ce"
    JS = "js"
    CE = "ce"
    MARGIN = "margin"
    IOU = "iou"
    DICE = "dice"


class Weighting(str, Enum):
    """Pixel weights of a pixel loss: none, SegPGD's (Gu et al. 2022), CosPGD's (Agnihotri et al. 2024)."""

    NONE = "none"
    SEGPGD = "segpgd"
    COSPGD = "cospgd"


PIXEL_LOSSES = (ApgdLoss.MASKED_CE, ApgdLoss.BALANCED_CE, ApgdLoss.JS, ApgdLoss.CE)
LOG2 = math.log(2.0)


def js_divergence(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence between ``softmax(logits)`` ``(B, K, H, W)`` and the one-hot ``target`` ``(B, H, W)``,
    per pixel ``(B, H, W)`` in ``[0, log 2]`` (natural log).

    With one-hot ``q`` only the target class's probability ``p`` matters:
    ``JS = ((1 - p) log 2 + p log p - (1 + p) log((1 + p) / 2)) / 2``.
    """
    log_p = logits.float().log_softmax(1).gather(1, target[:, None])[:, 0]
    p = log_p.exp()
    return 0.5 * ((1 - p) * LOG2 + p * log_p - (1 + p) * (torch.log1p(p) - LOG2))


def apgd_loss(logits: torch.Tensor, target: torch.Tensor, pred: torch.Tensor, loss: ApgdLoss,
              classes: torch.Tensor, onehot: torch.Tensor, targeted: bool, weighting: Weighting = Weighting.NONE,
              progress: float = 0.0) -> torch.Tensor:
    """Per-sample loss ``(B,)`` of ``logits (B, K, H, W)`` against ``target (B, H, W)``; lower = closer to ``target``.

    ``masked_ce``: cross-entropy of the pixels still to flip, summed and divided by the covered pixels (those
    whose ``target`` is one of ``classes``; SEA's masked CE); ``balanced_ce``: the same with each class of
    ``target`` weighted alike (the mean over the covered classes of each class's mean), so a clavicle counts as
    much as a lung, as it does in the mean IoU; ``js``: the mean Jensen-Shannon divergence (:func:`js_divergence`);
    ``ce``: the mean cross-entropy; ``margin``, ``iou``, ``dice``: :func:`~bundle.attacks._utils.segmentation_loss`.

    ``weighting`` multiplies a pixel loss (``masked_ce``, ``balanced_ce``, ``js``, ``ce``) pixel by pixel:
    ``segpgd``: ``1 - lambda`` on the pixels still to flip and ``lambda`` on the others, ``lambda = progress / 2``
    (SegPGD's ``t / 2T``); ``cospgd``: the cosine similarity of ``sigmoid(logits)`` with the one-hot ``target``
    (untargeted: pixels still confidently right weigh most), one minus it when targeted (pixels far from the
    target weigh most). Weights carry no gradient.

    Args:
        pred: ``(B, H, W)`` the predicted classes of ``logits``.
        classes: long tensor of the classes covered; ``onehot`` is ``class_onehot(target, classes)``.
        progress: ``step / steps`` in ``[0, 1]``, SegPGD's schedule.
    """
    if loss not in PIXEL_LOSSES:
        if weighting != Weighting.NONE:
            raise ValueError(f"Argument weighting {weighting.value!r} weights pixel losses only "
                             f"({', '.join(l.value for l in PIXEL_LOSSES)}), got loss {loss.value!r}.")
        return segmentation_loss(logits, target, check_choice(loss.value, Loss, "loss"), classes, onehot,
                                 targeted=targeted)
    logits = logits.float()
    covered = onehot.sum(1)  # (B, H*W)
    if loss == ApgdLoss.JS:
        per_pixel = js_divergence(logits, target).flatten(1)
    else:
        per_pixel = F.cross_entropy(logits, target, reduction="none").flatten(1)
    to_flip = ((pred != target) if targeted else (pred == target)).flatten(1).float()
    weight = covered
    if loss in (ApgdLoss.MASKED_CE, ApgdLoss.BALANCED_CE):
        weight = weight * to_flip
    if weighting == Weighting.SEGPGD:
        lam = 0.5 * progress
        weight = weight * ((1 - lam) * to_flip + lam * (1 - to_flip))
    elif weighting == Weighting.COSPGD:
        with torch.no_grad():
            sigm = logits.sigmoid().flatten(2)
            truth = F.one_hot(target.flatten(1), logits.shape[1]).transpose(1, 2).float()
            cos = F.cosine_similarity(sigm, truth, dim=1)
        weight = weight * (1 - cos if targeted else cos)
    if loss == ApgdLoss.BALANCED_CE:
        per_class = onehot.sum(2)  # (B, C) covered pixels of each class
        present = (per_class > 0).sum(1, keepdim=True).clamp_min(1)
        pixel_share = (onehot / (per_class * present).clamp_min(1)[..., None]).sum(1)  # 1 / (n_c * C)
        return (per_pixel * weight * pixel_share).sum(1)
    return (per_pixel * weight).sum(1) / covered.sum(1).clamp_min(1.0)


def fast_mean_iou(pred: torch.Tensor, reference: torch.Tensor, num_classes: int,
                  classes: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`bundle.metrics.mean_iou` of ``(B, H, W)`` maps from one confusion count, ``(B,)`` float; over the
    long tensor ``classes`` alone when given.

    One ``bincount`` over the batch instead of a ``(B, K, H*W)`` comparison, since APGD needs it every step.
    """
    b = pred.shape[0]
    k = num_classes
    offsets = torch.arange(b, device=pred.device)[:, None] * (k * k)
    index = (offsets + reference.flatten(1) * k + pred.flatten(1)).flatten()
    confusion = torch.bincount(index, minlength=b * k * k).view(b, k, k).double()
    inter = confusion.diagonal(dim1=1, dim2=2)
    union = confusion.sum(1) + confusion.sum(2) - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    if classes is not None:
        return iou.index_select(1, classes).mean(1).float()
    return iou[:, 1:].mean(1).float() if k > 1 else iou[:, 0].float()


"""Fast gradient sign method for segmentation: one PGD step of size eps (Goodfellow et al.)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bundle.attacks._utils import AttackResult
from bundle.attacks.pgd import pgd

__all__ = ["fgsm"]


def fgsm(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, *, eps: float, bounds: Sequence[float],
         loss: str = "ce", targeted: bool = True, classes: Sequence[int] | None = None,
         region: torch.Tensor | None = None) -> AttackResult:
    """``x' = clip(x -/+ eps * sign(grad_x J(x, target)))``: one step of :func:`pgd` with ``alpha = eps``.

    The attack loss may differ from the loss the model was trained with; Wang and Xu report that this raises
    the attack's success. Bortsova et al. report that targeted FGSM fails on chest X-rays.

    Args:
        model, images, target, bounds, loss, targeted, classes, region: as in :func:`pgd`.
        eps: L-infinity size of the step in model-domain units.

    Returns:
        :class:`AttackResult` (``steps`` is 1 for every sample).
    """
    return pgd(model, images, target, eps=eps, alpha=eps, steps=1, bounds=bounds, loss=loss,
               targeted=targeted, classes=classes, region=region)

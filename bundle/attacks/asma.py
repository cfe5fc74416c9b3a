"""Adaptive Segmentation Mask Attack (Ozbulak et al., MICCAI 2019), batched with per-sample early stopping."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch

from bundle.attacks._utils import (AttackResult, Progress, check_bounds, check_choice, check_non_negative, check_steps,
                                  check_target_classes, index_map, model_guard, predicted_classes, still_running,
                                  store_rows)
from bundle.metrics import paper_iou

__all__ = ["asma", "asma_objective", "AsmaVariant"]


class AsmaVariant(str, Enum):
    """``ssm``: static mask; ``asm``: adaptive mask; ``asma``: adaptive mask + dynamic multiplier (DPM)."""

    SSM = "ssm"
    ASM = "asm"
    ASMA = "asma"


def asma(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, *, bounds: Sequence[float],
         steps: int = 500, beta: float = 1e-3, tau: float = 1e-5, variant: str = "asma", alpha: float | None = None,
         stop_iou: float | None = None, progress: Progress | None = None) -> AttackResult:
    """Targeted attack that pushes every pixel's logit of its target class up, as in Ozbulak et al.

    Each step runs one forward and one backward pass. With logits ``g`` and target ``Y^A``::

        P_n = grad_x sum_c g(x_n)_c * 1[Y^A = c] * 1[argmax g(x_n) != c]     (SSM omits the last factor)
        x_{n+1} = clip(x_n + alpha_n * P_n, bounds),  alpha_n = beta * IoU(Y^A, Y_n) + tau  (ASMA)

    SSM and ASM use the constant multiplier ``alpha`` (default ``beta + tau``, the largest ASMA multiplier).
    The IoU is the paper's (agreement over the union of non-background pixels), computed per sample from the
    same forward pass that gives the gradient. A sample stops once its IoU reaches ``stop_iou`` and leaves the
    batch. Each sample returns its best iterate: highest target IoU, then smallest L2 distance.

    The paper searched ``beta`` in {1e-6, 5e-6, 1e-5} with ``tau`` = 1e-7 for 572x572 images; the gradient of
    a sum of logits scales with the model's logit range and the image size, so this bundle's defaults were
    measured on its own models (see docs/attacks.md).

    Args:
        model: segmentation network ``(B, C, H, W) -> (B, K, H, W)`` logits; put in eval mode during the attack.
        images: ``(B, C, H, W)`` float inside ``bounds``.
        target: ``(B, 1, H, W)`` integer target classes in ``[0, K)``.
        bounds: ``(low, high)`` of the model's input domain, e.g. ``(0.0, 1.0)``.
        steps: maximum number of gradient steps.
        beta, tau: DPM parameters (``variant="asma"``).
        variant: ``"asma"``, ``"asm"`` or ``"ssm"``.
        alpha: constant multiplier of ``"ssm"`` / ``"asm"``.
        stop_iou: stop a sample when its target IoU reaches this value in ``[0, 1]``; ``None`` runs all steps.
        progress: ``progress(step, active, iou)`` after each forward pass (see :data:`Progress`).

    Returns:
        :class:`AttackResult` with the best iterates; ``score`` is their target IoU.

    Paper: https://arxiv.org/abs/1907.13124
    """
    variant = check_choice(variant, AsmaVariant, "variant")
    lo, hi = check_bounds(images, bounds)
    steps = check_steps(steps)
    beta, tau = check_non_negative(beta, "beta"), check_non_negative(tau, "tau")
    alpha = beta + tau if alpha is None else check_non_negative(alpha, "alpha")
    if stop_iou is not None and not 0.0 <= stop_iou <= 1.0:
        raise ValueError(f"Argument stop_iou should be a float in [0, 1] or None, got {stop_iou!r}.")
    tgt = index_map(target, images)
    images = images.detach()
    n = images.shape[0]
    # best iterate per sample, kept aligned with the active samples; written to `out` when samples leave
    best = {"adv": images.clone(), "pred": torch.zeros_like(tgt),
            "iou": torch.full((n,), -1.0, device=images.device), "l2": torch.full((n,), float("inf"), device=images.device)}
    out = {k: v.clone() for k, v in best.items()}
    steps_run = torch.zeros(n, dtype=torch.long, device=images.device)
    active = torch.arange(n, device=images.device)
    x, origin, t = images.clone(), images, tgt
    with model_guard(model):
        for step in range(steps + 1):
            x.requires_grad_(step < steps)
            logits = model(x)
            pred = predicted_classes(logits)
            if step == 0:
                check_target_classes(tgt, logits.shape[1])
            iou = paper_iou(pred, t)
            if progress is not None:
                progress(step, active, iou)
            l2 = (x.detach() - origin).flatten(1).norm(dim=1)
            better = (iou > best["iou"]) | ((iou == best["iou"]) & (l2 < best["l2"]))
            for key, value in (("adv", x.detach()), ("pred", pred), ("iou", iou), ("l2", l2)):
                best[key] = torch.where(better.view(-1, *[1] * (value.ndim - 1)), value, best[key])
            if step == steps:
                break
            keep = still_running(iou >= stop_iou if stop_iou is not None else None)
            if keep is not None and not keep.any():
                break
            objective = asma_objective(logits, pred, t, adaptive=variant != AsmaVariant.SSM)
            (grad,) = torch.autograd.grad(objective.sum() if keep is None else objective[keep].sum(), x)
            if keep is not None:  # samples that reached the target leave the batch
                store_rows(out, best, active)
                active, x, grad, iou, origin, t = (v[keep] for v in (active, x, grad, iou, origin, t))
                best = {k: v[keep] for k, v in best.items()}
            multiplier = beta * iou + tau if variant == AsmaVariant.ASMA else torch.full_like(iou, alpha)
            x = (x.detach() + multiplier[:, None, None, None].to(x.dtype) * grad).clamp(lo, hi)
            steps_run[active] += 1
    store_rows(out, best, active)
    return AttackResult(adv=out["adv"], steps=steps_run, pred=out["pred"][:, None], score=out["iou"])


def asma_objective(logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, adaptive: bool = True) -> torch.Tensor:
    """``(B, H, W)`` float32: each pixel's logit of its ``target`` class, times ``pred != target`` when ``adaptive``.

    ``logits`` ``(B, K, H, W)``; ``pred`` and ``target`` ``(B, H, W)`` long. Its gradient, summed over pixels, is
    ASMA's perturbation ``P_n`` (SSM without the adaptive mask).
    """
    objective = logits.float().gather(1, target[:, None])[:, 0]
    return objective * (pred != target) if adaptive else objective

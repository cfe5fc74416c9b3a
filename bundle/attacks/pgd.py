"""Projected gradient descent in the L-infinity ball (Madry et al.), as used by Bortsova et al. for segmentation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

import torch

from bundle.attacks._utils import (AttackResult, Loss, Progress, check_bounds, check_choice, check_classes,
                                   check_non_negative, check_region, check_steps, check_target_classes, class_onehot,
                                   index_map, loss_scale, model_guard, predicted_classes, segmentation_loss,
                                   still_running, store_rows)
from bundle.metrics import paper_iou

__all__ = ["pgd"]


class Schedule(str, Enum):
    """Step sizes over the steps: the papers' constant ``alpha``, or a half cosine from ``alpha`` down to 0."""

    CONSTANT = "constant"
    COSINE = "cosine"


def pgd(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, *, eps: float, alpha: float | None = None,
        steps: int = 100, bounds: Sequence[float], loss: str = "iou", targeted: bool = True,
        classes: Sequence[int] | None = None, region: torch.Tensor | None = None, random_start: bool = False,
        stop_iou: float | None = None, generator: torch.Generator | None = None, momentum: float = 0.0,
        schedule: str = "constant", progress: Progress | None = None) -> AttackResult:
    """L-infinity PGD for segmentation, targeted or untargeted, one forward and one backward pass per step::

        targeted:    x_{t+1} = clip_{x, eps}(x_t - alpha_t * sign(g_t))
        untargeted:  x_{t+1} = clip_{x, eps}(x_t + alpha_t * sign(g_t))
        g_t = grad_x J(x_t, y) / mean|grad_x J(x_t, y)| + momentum * g_{t-1}    (y: target or ground truth)

    ``clip_{x, eps}`` projects onto the eps ball around ``images`` and onto ``bounds``; ``region`` zeroes the
    perturbation outside a mask (the paper's receptive-field and bounding-box experiments). ``J`` is multiplied by
    :func:`loss_scale` before the backward pass so that float16 autocast keeps its gradients. The defaults are the
    heart-attack paper's (``alpha_t = eps / 20``, no momentum); ``momentum`` (Dong et al.'s, each sample's
    gradient scaled by its mean absolute value) with ``schedule="cosine"`` is this bundle's faster variant: at
    the paper's eps and 100 steps it draws the heart symbols that the paper's steps draw only after about 1000
    (docs/attacks.md).

    Args:
        model: segmentation network ``(B, C, H, W) -> (B, K, H, W)`` logits; put in eval mode during the attack.
        images: ``(B, C, H, W)`` float inside ``bounds``.
        target: ``(B, 1, H, W)`` integer classes: the adversarial target (targeted) or the ground truth (untargeted).
        eps: L-infinity radius in model-domain units (0.04 in ``[-1, 1]`` is 2 % of the range).
        alpha: step size, the first one under the cosine schedule; default ``eps / 20`` (the heart-attack
            paper's) for the constant schedule and ``0.4 * eps`` for the cosine one.
        steps: number of steps (100 in the paper).
        bounds: ``(low, high)`` of the model's input domain.
        loss: ``"iou"`` (negative mean soft IoU, the paper's), ``"dice"``, ``"ce"`` or ``"margin"`` (the logit
            margin of the pixels still to flip; the strongest untargeted loss here, docs/attacks.md).
        targeted: minimise the loss to ``target`` (True) or maximise it to the ground truth (False).
        classes: classes the loss covers, e.g. ``[3]`` for the paper's "heart only"; default all but background
            ("attack all" for IoU / Dice; the pixels of an untargeted margin), all classes for cross-entropy
            and a targeted margin.
        region: ``(B, 1, H, W)`` bool, where noise may be added; ``None`` = everywhere.
        random_start: start from a uniform random point of the eps ball (inside ``region``).
        stop_iou: per-sample early stop: targeted when the paper's IoU with ``target`` reaches it, untargeted when
            it falls to it or below; ``None`` runs all steps.
        generator: random generator for ``random_start``.
        momentum: weight of the previous steps' normalised gradient in ``[0, 1)``; 0 is plain PGD.
        schedule: ``"constant"`` (``alpha_t = alpha``) or ``"cosine"`` (``alpha_t = alpha * (1 + cos(pi t /
            steps)) / 2``, large steps first, small ones to settle).
        progress: ``progress(step, active, score)`` after each forward pass (see :data:`Progress`); with it the
            score is computed every step.

    Returns:
        :class:`AttackResult`; ``score`` is the paper's IoU of the final prediction with ``target``.

    Paper: Bortsova et al., https://arxiv.org/abs/2104.00139; Madry et al., https://arxiv.org/abs/1706.06083;
    momentum: Dong et al., https://arxiv.org/abs/1710.06081
    """
    lo, hi = check_bounds(images, bounds)
    eps = check_non_negative(eps, "eps")
    schedule = check_choice(schedule, Schedule, "schedule")
    loss = check_choice(loss, Loss, "loss")
    if alpha is None:
        alpha = eps / 20 if schedule == Schedule.CONSTANT else 0.4 * eps
    alpha = check_non_negative(alpha, "alpha")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"Argument momentum should be a float in [0, 1), got {momentum!r}.")
    steps = check_steps(steps)
    if stop_iou is not None and not 0.0 <= stop_iou <= 1.0:
        raise ValueError(f"Argument stop_iou should be a float in [0, 1] or None, got {stop_iou!r}.")
    tgt = index_map(target, images)
    mask = check_region(region, images)
    images = images.detach()
    sign = -1.0 if targeted else 1.0
    x = images.clone()
    if random_start:
        noise = torch.empty_like(images).uniform_(-eps, eps, generator=generator)
        x = _project(images + (noise if mask is None else noise * mask), images, eps, lo, hi)
    n = images.shape[0]
    out = {"adv": x.clone(), "pred": torch.zeros_like(tgt), "score": torch.zeros(n, device=images.device)}
    steps_run = torch.zeros(n, dtype=torch.long, device=images.device)
    active = torch.arange(n, device=images.device)
    origin, t = images, tgt  # aligned with the active samples
    velocity = None  # the momentum's running gradient
    grad_scale = loss_scale(images)  # keeps float16 autocast's gradients from underflowing
    with model_guard(model):
        for step in range(steps + 1):
            x.requires_grad_(step < steps)
            logits = model(x)
            if step == 0:
                check_target_classes(tgt, logits.shape[1])
                loss_classes = torch.tensor(check_classes(classes, logits.shape[1], loss, targeted),
                                            device=images.device)
                onehot = class_onehot(t, loss_classes)
            if step == steps or stop_iou is not None or progress is not None:  # only to stop and to report
                pred = predicted_classes(logits)
                iou = paper_iou(pred, t)
                if progress is not None:
                    progress(step, active, iou)
            if step == steps:
                break
            done = None if stop_iou is None else (iou >= stop_iou if targeted else iou <= stop_iou)
            keep = still_running(done)
            if keep is not None and not keep.any():
                break
            per_sample = segmentation_loss(logits, t, loss, loss_classes, onehot, targeted=targeted)
            objective = per_sample.sum() if keep is None else per_sample[keep].sum()
            (grad,) = torch.autograd.grad(grad_scale * objective, x)
            if keep is not None:  # finished samples leave the batch
                store_rows(out, {"adv": x.detach(), "pred": pred, "score": iou}, active)
                active, x, grad, origin, t, onehot = (v[keep] for v in (active, x, grad, origin, t, onehot))
                mask = None if mask is None else mask[keep]
                velocity = None if velocity is None else velocity[keep]
            if momentum:
                unit = grad / grad.abs().mean(tuple(range(1, grad.dim())), keepdim=True).clamp_min(1e-30)
                grad = velocity = unit if velocity is None else unit + momentum * velocity
            direction = grad.sign() if mask is None else grad.sign() * mask
            x = _project(x.detach() + sign * _step_size(alpha, step, steps, schedule) * direction, origin, eps, lo, hi)
            steps_run[active] += 1
    store_rows(out, {"adv": x.detach(), "pred": pred, "score": iou}, active)
    return AttackResult(adv=out["adv"], steps=steps_run, pred=out["pred"][:, None], score=out["score"])


def _step_size(alpha: float, step: int, steps: int, schedule: Schedule) -> float:
    """The step size of step ``step`` of ``steps`` (0-based)."""
    if schedule == Schedule.CONSTANT:
        return alpha
    return alpha * 0.5 * (1.0 + math.cos(math.pi * step / steps))


def _project(x: torch.Tensor, origin: torch.Tensor, eps: float, lo: float, hi: float) -> torch.Tensor:
    """Onto the L-infinity ball of radius ``eps`` around ``origin``, then onto ``[lo, hi]``."""
    return torch.min(torch.max(x, origin - eps), origin + eps).clamp(lo, hi)

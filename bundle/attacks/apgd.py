"""APGD for segmentation (Croce and Hein 2020; SEA, Croce, Singh and Hein 2024), batched, per sample."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bundle.attacks._losses import ApgdLoss, Weighting, PIXEL_LOSSES, apgd_loss, fast_mean_iou
from bundle.attacks._utils import (AttackResult, Progress, check_bounds, check_choice, check_classes,
                                   check_non_negative, check_score_classes, check_steps, check_target_classes, class_onehot, index_map,
                                   loss_scale, model_guard, predicted_classes, still_running, store_rows)
from bundle.metrics import paper_iou

__all__ = ["apgd", "checkpoints", "SEA_RADII"]

SEA_RADII = ((2.0, 0.3), (1.5, 0.3), (1.0, 0.4))  # SEA's radius reduction: (radius / eps, share of the steps)


def checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints ``ceil(p_j * steps)``: ``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, up to ``steps``."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 6)) for q in p if q <= 1.0} - {0})  # round: 0.57 * 100 is 57.000...01


def apgd(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, *, eps: float, steps: int = 100,
         bounds: Sequence[float], loss: str = "masked_ce", targeted: bool = True, classes: Sequence[int] | None = None,
         weighting: str = "none", rho: float = 0.75, momentum: float = 0.75, radius_reduction: bool = False,
         stop_score: float | None = None, score_classes: Sequence[int] | None = None, random_start: bool = False,
         generator: torch.Generator | None = None, progress: Progress | None = None) -> AttackResult:
    """Auto-PGD in the L-infinity ball for segmentation, targeted or untargeted; one forward and one backward pass
    per step (``steps`` passes, then one forward pass of the last point), each sample on its own.

    Croce and Hein's schedule, each sample with its own step size ``eta`` (``2 eps`` at first)::

        z = P(x_k + eta * sign(grad f(x_k)))
        x_{k+1} = P(x_k + momentum * (z - x_k) + (1 - momentum) * (x_k - x_{k-1}))     (the first step: x_1 = z)

    ``f`` is the loss (raised when untargeted, lowered when targeted). At each checkpoint (:func:`checkpoints`)
    a sample halves ``eta`` and restarts from its best-loss point when fewer than ``rho`` of its steps since the
    last checkpoint raised ``f``, or when neither ``eta`` nor its best ``f`` changed since then. With
    ``radius_reduction`` the steps run in SEA's three stages of radius ``2 eps``, ``1.5 eps`` and ``eps`` (30, 30
    and 40 % of the steps), each a new schedule started from the last stage's point projected onto its ball.

    Each sample returns its best iterate inside the ``eps`` ball by ``score``: the lowest mean foreground IoU with
    ``target`` (untargeted; :func:`bundle.metrics.mean_iou`) or the highest paper IoU with it (targeted), over
    ``score_classes`` alone when given, and stops once the score reaches ``stop_score`` (at or below when
    untargeted, at or above when targeted).

    Args:
        model: segmentation network ``(B, C, H, W) -> (B, K, H, W)`` logits; put in eval mode during the attack.
        images: ``(B, C, H, W)`` float inside ``bounds``.
        target: ``(B, 1, H, W)`` integer classes: the target (targeted) or the reference, e.g. the ground truth.
        eps: L-infinity radius in model-domain units.
        steps: forward and backward passes (the budget).
        bounds: ``(low, high)`` of the model's input domain.
        loss: ``"masked_ce"`` (SEA's masked cross-entropy), ``"balanced_ce"`` (the same, each class alike),
            ``"js"`` (Jensen-Shannon divergence), ``"ce"``, ``"margin"``, ``"iou"`` or ``"dice"``
            (:func:`bundle.attacks._losses.apgd_loss`).
        targeted: lower the loss to ``target`` (True) or raise it away from the reference (False).
        classes: classes the loss covers; default every class for the pixel losses and as in :func:`pgd` else.
        weighting: ``"none"``, ``"segpgd"`` or ``"cospgd"``: pixel weights of a pixel loss.
        rho: the share of improving steps below which a checkpoint halves the step, in ``(0, 1]``.
        momentum: APGD's ``alpha`` in ``(0, 1]`` (1: no momentum).
        radius_reduction: SEA's progressive radius reduction.
        stop_score: per-sample early exit (see above); ``None`` runs all steps.
        score_classes: the foreground classes the score covers, e.g. ``[3]`` (the heart); ``None``: all.
        random_start: start from a uniform random point of the ball (of the first stage).
        generator: random generator for ``random_start``.
        progress: ``progress(step, active, score)`` after each forward pass (see :data:`Progress`).

    Returns:
        :class:`AttackResult` with the best iterates; ``steps`` counts each sample's passes, ``score`` its score.

    Papers: Croce and Hein, https://arxiv.org/abs/2003.01690; SEA: Croce, Singh and Hein,
    https://arxiv.org/abs/2306.12941; SegPGD: https://arxiv.org/abs/2207.12391; CosPGD: https://arxiv.org/abs/2302.02213
    """
    lo, hi = check_bounds(images, bounds)
    eps = check_non_negative(eps, "eps")
    steps = check_steps(steps)
    loss = check_choice(loss, ApgdLoss, "loss")
    weighting = check_choice(weighting, Weighting, "weighting")
    if weighting != Weighting.NONE and loss not in PIXEL_LOSSES:
        raise ValueError(f"Argument weighting {weighting.value!r} weights pixel losses only "
                         f"({', '.join(p.value for p in PIXEL_LOSSES)}), got loss {loss.value!r}.")
    for name, value in (("rho", rho), ("momentum", momentum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise ValueError(f"Argument {name} should be a float in (0, 1], got {value!r}.")
    if stop_score is not None and (isinstance(stop_score, bool) or not 0.0 <= stop_score <= 1.0):
        raise ValueError(f"Argument stop_score should be a float in [0, 1] or None, got {stop_score!r}.")
    ref = index_map(target, images)
    images = images.detach()
    n, device = images.shape[0], images.device
    stages = SEA_RADII if radius_reduction else ((1.0, 1.0),)
    lengths = [int(share * steps) for _, share in stages[:-1]]
    lengths.append(steps - sum(lengths))
    sign = -1.0 if targeted else 1.0  # f = sign * loss is raised
    grad_scale = loss_scale(images)  # keeps float16 autocast's gradients from underflowing
    x = images.clone()
    if random_start:  # inside the eps ball, so that the starting point counts as an iterate
        x = _project(images + torch.empty_like(images).uniform_(-eps, eps, generator=generator), images, eps, lo, hi)
    # the best iterate inside the eps ball per sample, aligned with the active samples; `out` keeps every sample's
    best = {"adv": x.clone(), "pred": torch.zeros_like(ref), "score": torch.zeros(n, device=device)}
    out = {k: v.clone() for k, v in best.items()}
    steps_run = torch.zeros(n, dtype=torch.long, device=device)
    active = torch.arange(n, device=device)
    origin, t = images, ref
    step, keep = 0, None
    with model_guard(model):
        for stage, ((factor, _), length) in enumerate(zip(stages, lengths)):
            radius, last = factor * eps, stage == len(stages) - 1
            x = _project(x, origin, radius, lo, hi)
            marks = set(checkpoints(length))
            state = None
            for k in range(length + 1 if last else length):
                final = last and k == length
                x.requires_grad_(not final)
                logits = model(x)
                pred = predicted_classes(logits)
                if step == 0 and k == 0:
                    num_classes = logits.shape[1]
                    check_target_classes(ref, num_classes)
                    pixel = loss in PIXEL_LOSSES
                    covered = (list(range(num_classes)) if classes is None and pixel else
                               check_classes(classes, num_classes, "ce" if pixel else loss.value, targeted))
                    loss_classes = torch.tensor(covered, device=device)
                    onehot = class_onehot(t, loss_classes)
                    scored = check_score_classes(score_classes, num_classes)
                    scored_index = None if scored is None else torch.tensor(scored, device=device)
                score = (paper_iou(pred, t, scored) if targeted else fast_mean_iou(pred, t, num_classes, scored_index))
                if progress is not None:
                    progress(step, active, score)
                if last or step == 0:  # only points inside the eps ball count (the first one is)
                    better = (score > best["score"] if targeted else score < best["score"]) | (step == 0)
                    for key, value in (("adv", x.detach()), ("pred", pred), ("score", score)):
                        best[key] = torch.where(better.view(-1, *[1] * (value.ndim - 1)), value, best[key])
                if final:
                    break
                done = None
                if stop_score is not None:
                    done = best["score"] >= stop_score if targeted else best["score"] <= stop_score
                keep = still_running(done)
                if keep is not None and not keep.any():
                    break
                f = sign * apgd_loss(logits, t, pred, loss, loss_classes, onehot, targeted, weighting,
                                     progress=step / max(steps, 1))
                (grad,) = torch.autograd.grad(grad_scale * (f.sum() if keep is None else f[keep].sum()), x)
                f, x = f.detach(), x.detach()
                if keep is not None:  # finished samples leave the batch
                    store_rows(out, best, active)
                    best = {key: v[keep] for key, v in best.items()}
                    active, x, grad, f, origin, t, onehot = (v[keep] for v in (active, x, grad, f, origin, t, onehot))
                    state = None if state is None else {key: v[keep] for key, v in state.items()}
                state, restart = _update(state, x, grad, f, k in marks, radius, rho)
                x = _next_point(state, x, grad, restart, k == 0, origin, radius, momentum, lo, hi)
                steps_run[active] += 1
                step += 1
            if not last and state is not None:  # the next stage starts from this one's best-loss point
                x = state["x_best"]
            if keep is not None and not keep.any():
                break
    store_rows(out, best, active)
    return AttackResult(adv=out["adv"], steps=steps_run, pred=out["pred"][:, None], score=out["score"])


def _update(state: dict | None, x: torch.Tensor, grad: torch.Tensor, f: torch.Tensor, checkpoint: bool,
            radius: float, rho: float) -> tuple[dict, torch.Tensor | None]:
    """APGD's bookkeeping after the loss ``f (A,)`` and gradient ``grad`` at ``x``: the best-loss point, the count
    of improving steps and, at a checkpoint, which samples halve their step and restart from their best point
    (returned as an ``(A, 1, 1, 1)`` mask). On the device, per sample, no host synchronisation."""
    if state is None:  # the stage's first point
        eta = torch.full_like(f, 2.0 * radius)
        zero = torch.zeros_like(f)
        return {"eta": eta, "eta_mark": eta, "f_prev": f, "f_best": f, "f_best_mark": f, "x_best": x, "g_best": grad,
                "x_prev": x, "improved": zero, "since": zero}, None
    s = dict(state)
    s["improved"] = s["improved"] + (f > s["f_prev"]).float()
    s["since"] = s["since"] + 1
    s["f_prev"] = f
    better = f > s["f_best"]
    s["f_best"] = torch.where(better, f, s["f_best"])
    s["x_best"] = torch.where(better[:, None, None, None], x, s["x_best"])
    s["g_best"] = torch.where(better[:, None, None, None], grad, s["g_best"])
    if not checkpoint:
        return s, None
    halve = (s["improved"] < rho * s["since"]) | ((s["eta"] == s["eta_mark"]) & (s["f_best"] <= s["f_best_mark"]))
    s["eta_mark"], s["f_best_mark"] = s["eta"], s["f_best"]
    s["eta"] = torch.where(halve, s["eta"] / 2, s["eta"])
    s["improved"], s["since"] = torch.zeros_like(f), torch.zeros_like(f)
    return s, halve[:, None, None, None]


def _next_point(s: dict, x: torch.Tensor, grad: torch.Tensor, restart: torch.Tensor | None, first: bool,
                origin: torch.Tensor, radius: float, momentum: float, lo: float, hi: float) -> torch.Tensor:
    """APGD's next iterate; samples that restart go on from their best-loss point and gradient, without momentum.
    Records ``x`` as the previous point in ``s``."""
    x_prev = s["x_prev"]
    if restart is not None:
        x = torch.where(restart, s["x_best"], x)
        grad = torch.where(restart, s["g_best"], grad)
        x_prev = torch.where(restart, s["x_best"], x_prev)
    eta = s["eta"][:, None, None, None].to(x.dtype)
    z = _project(x + eta * grad.sign(), origin, radius, lo, hi)
    s["x_prev"] = x
    if first:
        return z
    return _project(x + momentum * (z - x) + (1 - momentum) * (x - x_prev), origin, radius, lo, hi)


def _project(x: torch.Tensor, origin: torch.Tensor, eps: float, lo: float, hi: float) -> torch.Tensor:
    """Onto the L-infinity ball of radius ``eps`` around ``origin``, then onto ``[lo, hi]``."""
    return torch.min(torch.max(x, origin - eps), origin + eps).clamp(lo, hi)

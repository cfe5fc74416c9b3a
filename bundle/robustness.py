"""The worst case over an attack ensemble, per sample and per eps (SEA's protocol with early exit).

For each eps of a sweep the attacks run one after another, each only on the samples that no earlier attack broke;
every sample keeps its worst case (lowest mean IoU with the reference, or highest target IoU when targeted), the
attack that produced it and the forward/backward passes it took. Pure PyTorch: tensors in, results out.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from bundle.attacks._utils import AttackResult, check_score_classes, index_map, model_guard
from bundle.metrics import mean_iou, paper_iou

__all__ = ["WorstCase", "worst_case", "robustness_sweep", "ensemble_score", "imperceptibility", "ensemble_settings"]

Attack = Callable[..., AttackResult]


@dataclass
class WorstCase:
    """One eps of the ensemble, every tensor per sample (``B``) or per attack and sample (``A, B``).

    Attributes:
        eps: the radius.
        adv: ``(B, C, H, W)`` the worst-case images (the clean ones where no attack did better).
        pred: ``(B, 1, H, W)`` the model's prediction on ``adv``.
        score: ``(B,)`` its score: mean foreground IoU with the reference (untargeted) or the paper IoU with the
            target (targeted).
        clean_score: ``(B,)`` the clean images' score.
        winner: ``(B,)`` long, index of the attack that produced ``adv`` (at this radius, or at a smaller one that
            :func:`worst_case` started from); -1 where none beat the clean image.
        passes: ``(B,)`` long, forward/backward passes spent on the sample over all attacks.
        seconds: ``(B,)`` wall time of the attacks the sample took part in.
        attack_scores: ``(A, B)`` each attack's score, NaN where it did not run (the sample was already broken).
        attack_passes: ``(A, B)`` long, each attack's passes (0 where it did not run).
        attack_seconds: ``(A,)`` each attack's wall time.
    """

    eps: float
    adv: torch.Tensor
    pred: torch.Tensor
    score: torch.Tensor
    clean_score: torch.Tensor
    winner: torch.Tensor
    passes: torch.Tensor
    seconds: torch.Tensor
    attack_scores: torch.Tensor
    attack_passes: torch.Tensor
    attack_seconds: torch.Tensor


def ensemble_score(pred: torch.Tensor, reference: torch.Tensor, num_classes: int, targeted: bool,
                   classes: Sequence[int] | None = None) -> torch.Tensor:
    """The ensemble's per-sample score ``(B,)``: paper IoU with the target, or mean foreground IoU with the reference;
    over the foreground ``classes`` alone when given (``[3]``: the heart's IoU)."""
    if targeted:
        return paper_iou(pred, reference, classes)
    return mean_iou(pred, reference, num_classes, classes=classes)


def _check_attacks(attacks: Sequence[tuple[str, Attack]]) -> list[tuple[str, Attack]]:
    attacks = list(attacks.items()) if isinstance(attacks, dict) else list(attacks)
    if not attacks or any(not isinstance(a, (tuple, list)) or len(a) != 2 or not callable(a[1]) for a in attacks):
        raise ValueError("Argument attacks should be a non-empty mapping or sequence of (name, callable) pairs, "
                         f"got {attacks!r}.")
    return [(str(name), attack) for name, attack in attacks]


def _takes(attack: Attack, name: str) -> bool:
    func = getattr(attack, "func", attack)
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def worst_case(model: torch.nn.Module, images: torch.Tensor, reference: torch.Tensor,
               attacks: Sequence[tuple[str, Attack]], *, eps: float, targeted: bool = False,
               stop_score: float | None = None, exit_early: bool = True, score_classes: Sequence[int] | None = None,
               smaller: WorstCase | None = None) -> WorstCase:
    """Each sample's worst case over ``attacks`` at radius ``eps``.

    Every attack is called as ``attack(model, images, reference, eps=eps)`` on the samples still running, with
    ``stop_score=stop_score`` and ``score_classes=score_classes`` when it takes those arguments
    (:func:`bundle.attacks.apgd`), so it drops a sample as soon as the sample is broken. A sample is broken when its worst score is at or below ``stop_score``
    (untargeted) or at or above it (targeted); with ``exit_early`` (the default) later attacks skip broken samples.

    Args:
        model: the segmentation network attacked.
        images: ``(B, C, H, W)`` inside the attacks' bounds.
        reference: ``(B, 1, H, W)`` the ground truth or clean prediction (untargeted), or the target (targeted).
        attacks: ``(name, attack)`` pairs (or a dict) in the order they run, e.g.
            ``functools.partial(bundle.attacks.apgd, steps=300, bounds=(-1, 1), loss="balanced_ce", targeted=False)``.
        eps: the L-infinity radius given to every attack.
        targeted: how scores compare (see :func:`ensemble_score`); the attacks must agree.
        stop_score: the score at which a sample counts as broken; ``None``: never.
        exit_early: skip broken samples in later attacks.
        score_classes: the foreground classes the score covers (:func:`ensemble_score`); ``None``: all.
        smaller: the worst case of the same samples at a radius up to ``eps``: its perturbations lie inside this
            ball, so each sample starts from it (its score, image and attack); a sample it broke is not attacked.

    Returns:
        :class:`WorstCase`.
    """
    attacks = _check_attacks(attacks)
    ref = index_map(reference, images, "reference")[:, None]
    images = images.detach()
    with model_guard(model), torch.no_grad():
        logits = model(images)
    num_classes = logits.shape[1]
    pred = logits.argmax(1, keepdim=True)
    score_classes = check_score_classes(score_classes, num_classes)
    clean = ensemble_score(pred, ref, num_classes, targeted, score_classes)
    n, device = images.shape[0], images.device
    score, adv = clean.clone(), images.clone()
    winner = torch.full((n,), -1, dtype=torch.long, device=device)
    if smaller is not None:
        if smaller.eps > eps or smaller.score.shape != score.shape:
            raise ValueError(f"Argument smaller should be the worst case of the same {n} samples at a radius up to "
                             f"{eps}, got radius {smaller.eps} for {smaller.score.shape[0]} samples.")
        score, adv, pred, winner = (v.clone() for v in (smaller.score, smaller.adv, smaller.pred, smaller.winner))
    attack_scores = torch.full((len(attacks), n), float("nan"), device=device)
    attack_passes = torch.zeros((len(attacks), n), dtype=torch.long, device=device)
    attack_seconds = torch.zeros(len(attacks))
    seconds = torch.zeros(n)
    for a, (name, attack) in enumerate(attacks):
        broken = torch.zeros(n, dtype=torch.bool, device=device)
        if stop_score is not None and exit_early:
            broken = score >= stop_score if targeted else score <= stop_score
        running = (~broken).nonzero().flatten()
        if running.numel() == 0:
            continue
        extra = {"stop_score": stop_score} if stop_score is not None and _takes(attack, "stop_score") else {}
        if score_classes is not None and _takes(attack, "score_classes"):
            extra["score_classes"] = score_classes
        start = time.perf_counter()
        res = attack(model, images[running], ref[running], eps=eps, **extra)
        if images.is_cuda:
            torch.cuda.synchronize(device)
        attack_seconds[a] = time.perf_counter() - start
        seconds[running.cpu()] += attack_seconds[a]
        s = ensemble_score(res.pred, ref[running], num_classes, targeted, score_classes)
        attack_scores[a, running] = s
        attack_passes[a, running] = res.steps.to(device)
        better = s > score[running] if targeted else s < score[running]
        idx = running[better]
        score[idx], winner[idx] = s[better], a
        adv[idx] = res.adv.detach()[better]
        pred[idx] = res.pred[better]
    return WorstCase(eps=float(eps), adv=adv, pred=pred, score=score, clean_score=clean, winner=winner,
                     passes=attack_passes.sum(0), seconds=seconds, attack_scores=attack_scores,
                     attack_passes=attack_passes, attack_seconds=attack_seconds)


def robustness_sweep(model: torch.nn.Module, images: torch.Tensor, reference: torch.Tensor,
                     attacks: Sequence[tuple[str, Attack]], *, eps: Sequence[float], targeted: bool = False,
                     stop_score: float | None = None, exit_early: bool = True,
                     score_classes: Sequence[int] | None = None) -> list[WorstCase]:
    """:func:`worst_case` at each radius of ``eps`` (non-negative, in the model's units), returned in the order given.

    The radii run from the smallest up, each starting from the worst case of the one below it (``smaller``): the
    curve cannot rise with eps, and with ``exit_early`` a sample broken at a radius costs nothing at larger ones.
    """
    radii = [float(e) for e in eps] if isinstance(eps, (list, tuple)) else None
    if not radii or any(not math.isfinite(e) or e < 0 for e in radii):
        raise ValueError(f"Argument eps should be a non-empty list of non-negative floats, got {eps!r}.")
    done: dict[float, WorstCase] = {}
    smaller = None
    for e in sorted(set(radii)):
        smaller = done[e] = worst_case(model, images, reference, attacks, eps=e, targeted=targeted,
                                       stop_score=stop_score, exit_early=exit_early, score_classes=score_classes,
                                       smaller=smaller)
    return [done[e] for e in radii]


def imperceptibility(images: torch.Tensor, adv: torch.Tensor, bounds: Sequence[float]) -> dict[str, torch.Tensor]:
    """How visible each perturbation is, per sample ``(B,)``: ``l2`` and ``linf`` (model units), ``psnr`` (dB, peak
    = the width of ``bounds``; inf for no change) and ``ssim`` (MONAI's :class:`~monai.metrics.SSIMMetric`)."""
    from monai.metrics import SSIMMetric

    width = float(bounds[1]) - float(bounds[0])
    delta = (adv - images).detach().float().flatten(1)
    mse = delta.pow(2).mean(1)
    psnr = torch.where(mse > 0, 10 * torch.log10(width ** 2 / mse.clamp_min(1e-30)), torch.full_like(mse, math.inf))
    ssim = SSIMMetric(spatial_dims=2, data_range=width)(adv.detach().float(), images.detach().float()).mean(1)
    return {"l2": delta.norm(dim=1), "linf": delta.abs().amax(1), "psnr": psnr, "ssim": ssim}


def ensemble_settings(attacks: Sequence[tuple[str, Attack]], eps: Sequence[float], targeted: bool,
                      stop_score: float | None, exit_early: bool, score_classes: Sequence[int] | None = None) -> dict:
    """What decides an ensemble run's results, as its ``settings.json`` records them."""
    members = {}
    for name, attack in _check_attacks(attacks):
        func = getattr(attack, "func", attack)
        members[name] = {"function": f"{func.__module__}.{func.__qualname__}", **getattr(attack, "keywords", {})}
    return {"attacks": members, "eps": [float(e) for e in eps], "targeted": bool(targeted),
            "stop_score": stop_score, "exit_early": bool(exit_early),
            "score_classes": None if score_classes is None else [int(c) for c in score_classes]}

"""Shared pieces of the attacks: argument checks, the model guard, label shapes, per-sample losses."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from bundle._choices import check_choice as _check_choice

__all__ = ["AttackResult", "Progress", "Loss", "model_guard", "index_map", "predicted_classes", "check_bounds",
           "check_non_negative", "check_choice", "check_steps", "check_classes", "check_score_classes", "check_target_classes", "still_running", "store_rows",
           "check_region", "class_onehot", "segmentation_loss", "loss_scale"]


@dataclass
class AttackResult:
    """What every attack returns.

    Attributes:
        adv: ``(B, C, H, W)`` adversarial images, inside ``bounds`` (and the eps ball for PGD / FGSM).
        steps: ``(B,)`` long, gradient steps each sample actually ran (early stopping is per sample).
        pred: ``(B, 1, H, W)`` long, the model's prediction on ``adv``.
        score: ``(B,)`` float, the stopping statistic on ``adv``: the ASMA paper's IoU between ``pred`` and the
            attack's target (targeted) or the ground truth (untargeted).
    """

    adv: torch.Tensor
    steps: torch.Tensor
    pred: torch.Tensor
    score: torch.Tensor


Progress = Callable[[int, torch.Tensor, torch.Tensor], None]
"""An attack's optional observer, ``progress(step, active, score)``: called after the forward pass of every step
(``step`` 0 .. ``steps``) with the batch indices ``(A,)`` of the samples still running and their score ``(A,)``
(target IoU, or IoU with the reference when untargeted), on the images' device. Reading the score synchronises
with the device, so an observer should read it seldom."""


class Loss(str, Enum):
    """Attack losses: negative mean soft IoU (Bortsova et al.), soft Dice, cross-entropy, clipped logit margin."""

    IOU = "iou"
    DICE = "dice"
    CE = "ce"
    MARGIN = "margin"


MARGIN_CLIP = 1.0  # logits: a pixel settled by this margin stops drawing the margin loss's gradient


@contextlib.contextmanager
def model_guard(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters and gradients enabled for the input; everything restored afterwards.

    Works under an evaluator's ``torch.no_grad()`` and with a model left in train mode. Parameters never
    require gradients inside, so no ``.grad`` is accumulated on them.
    """
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


def index_map(label: torch.Tensor, images: torch.Tensor, name: str = "target") -> torch.Tensor:
    """MONAI label ``(B, 1, H, W)`` (or ``(B, H, W)``) integers -> ``(B, H, W)`` long, checked against ``images``."""
    if label.ndim == 4 and label.shape[1] == 1:
        label = label[:, 0]
    expected = (images.shape[0], *images.shape[2:])
    if label.ndim != 3 or tuple(label.shape) != expected:
        raise ValueError(f"Argument {name} should have shape (B, 1, H, W) = {(expected[0], 1, *expected[1:])} "
                         f"to match the images, got {tuple(label.shape)}.")
    if label.is_floating_point() and not torch.equal(label, label.round()):
        raise TypeError(f"Argument {name} should hold integer class indices, got fractional values.")
    return label.long()


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """``(B, K, H, W)`` logits -> ``(B, H, W)`` long, the class of highest logit (the first one on ties).

    Same result as ``logits.argmax(1)``, which on CPU reduces over the strided channel axis about seven times
    more slowly (80 ms against 12 ms for a batch of 8 x 6 x 256 x 256 on one thread, torch 2.13): a seventh of
    a U-Net's forward and backward pass, paid on every attack step.
    """
    return logits.max(1).indices


def check_target_classes(target: torch.Tensor, num_classes: int, name: str = "target") -> None:
    """Raise unless every class index in ``target`` is one of the model's ``num_classes`` outputs."""
    if target.min() < 0 or target.max() >= num_classes:
        raise ValueError(f"Argument {name} should hold classes in 0..{num_classes - 1} (the model's outputs), "
                         f"got values in [{int(target.min())}, {int(target.max())}].")


def still_running(done: torch.Tensor | None) -> torch.Tensor | None:
    """The samples that go on, as a bool mask, or ``None`` when all of them do (or nothing can stop).

    This is the one host synchronisation per step that per-sample early stopping needs.
    """
    if done is None:
        return None
    keep = ~done
    n_keep = int(keep.sum())
    return None if n_keep == keep.numel() else keep


def store_rows(out: dict[str, torch.Tensor], values: dict[str, torch.Tensor], active: torch.Tensor) -> None:
    """Write per-sample ``values`` of the ``active`` samples (aligned with them) into the full-batch ``out``."""
    for key, value in values.items():
        out[key][active] = value


def check_bounds(images: torch.Tensor, bounds: Sequence[float]) -> tuple[float, float]:
    """Validate ``bounds = (low, high)`` and that ``images`` lie inside them."""
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"Argument images should be a float tensor (B, C, H, W), got {images.dtype} "
                         f"of shape {tuple(images.shape)}.")
    if len(bounds) != 2 or not float(bounds[0]) < float(bounds[1]):
        raise ValueError(f"Argument bounds should be (low, high) with low < high, got {bounds}.")
    lo, hi = float(bounds[0]), float(bounds[1])
    if images.numel() and (images.min() < lo - 1e-6 or images.max() > hi + 1e-6):
        raise ValueError(f"Argument images should lie inside bounds {(lo, hi)}, got values in "
                         f"[{float(images.min()):.4g}, {float(images.max()):.4g}]; check the model domain.")
    return lo, hi


def check_non_negative(value: float, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"Argument {name} should be a {kind} float, got {value!r}.")
    return float(value)


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"Argument steps should be a non-negative integer, got {steps!r}.")
    return steps


def check_choice(value: object, choices: type[Enum], name: str) -> Enum:
    """``value`` as a member of the string Enum ``choices``, or a ``ValueError`` naming the argument, the valid
    names and the closest one."""
    return choices(_check_choice(value, [c.value for c in choices], f"Argument {name}"))


def check_score_classes(classes: Sequence[int] | None, num_classes: int) -> list[int] | None:
    """The foreground classes a score covers, checked against the logits; ``None``: every one."""
    if classes is None:
        return None
    chosen = list(classes) if isinstance(classes, (list, tuple)) else []
    if (not chosen or any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c < num_classes for c in chosen)):
        raise ValueError(f"Argument score_classes should list foreground class indices in 1..{num_classes - 1}, "
                         f"got {classes!r}.")
    return chosen


def check_classes(classes: Sequence[int] | None, num_classes: int, loss: str | Loss, targeted: bool = True) -> list[int]:
    """The classes a loss covers: ``classes`` checked against the logits; by default all but background
    (all classes for cross-entropy, and for the margin of a targeted attack, which must also turn pixels into
    background; an untargeted one has nothing to flip there)."""
    if classes is None:
        loss = check_choice(loss, Loss, "loss")
        everything = loss == Loss.CE or (loss == Loss.MARGIN and targeted) or num_classes == 1
        return list(range(0 if everything else 1, num_classes))
    chosen = [int(c) for c in classes]
    if not chosen or any(c < 0 or c >= num_classes for c in chosen):
        raise ValueError(f"Argument classes should list class indices in 0..{num_classes - 1}, got {list(classes)}.")
    return chosen


def check_region(region: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor | None:
    """``(B, 1, H, W)`` bool mask of where noise may go, as a float multiplier, or ``None``."""
    if region is None:
        return None
    expected = (images.shape[0], 1, *images.shape[2:])
    if tuple(region.shape) != expected:
        raise ValueError(f"Argument region should have shape (B, 1, H, W) = {expected}, got {tuple(region.shape)}.")
    return region.to(device=images.device, dtype=images.dtype)


def class_onehot(target: torch.Tensor, classes: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` class indices -> ``(B, len(classes), H*W)`` float one-hot of the listed ``classes``."""
    wanted = torch.as_tensor(classes, device=target.device)[None, :, None]
    return (target.flatten(1)[:, None] == wanted).float()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, loss: str | Loss,
                      classes: Sequence[int] | torch.Tensor, onehot: torch.Tensor | None = None,
                      smooth: float = 1e-5, targeted: bool = True) -> torch.Tensor:
    """Per-sample loss ``(B,)`` of ``logits (B, K, H, W)`` against ``target (B, H, W)``; lower = closer.

    ``iou``: negative mean soft IoU over ``classes`` (the heart-attack paper's loss); ``dice``: one minus the
    mean soft Dice; ``ce``: pixel-mean cross-entropy over all classes when ``classes`` covers every class,
    else the mean binary cross-entropy of the ``classes`` channels (one class against the rest); ``margin``:
    the mean over the pixels whose ``target`` is one of ``classes`` of ``d = max_{k != y} z_k - z_y``, how far the
    pixel's class ``y`` trails the best other logit (Carlini and Wagner's margin), clipped where the attack is
    done with the pixel: below ``-MARGIN_CLIP`` for a targeted attack (which lowers it), above ``MARGIN_CLIP``
    for an untargeted one (``targeted=False``, which raises it), so the gradient comes from the pixels still to
    flip.
    Iterative attacks pass ``classes`` as a long tensor on the logits' device and ``onehot`` as
    ``class_onehot(target, classes)``, so that neither is built (nor copied to the GPU) on every step.
    Computed in float32 whatever the autocast dtype of ``logits``.
    """
    loss = check_choice(loss, Loss, "loss")
    logits = logits.float()
    num_classes = logits.shape[1]
    if loss == Loss.CE and len(classes) == num_classes:
        return F.cross_entropy(logits, target, reduction="none").flatten(1).mean(1)
    onehot = class_onehot(target, classes) if onehot is None else onehot
    if loss == Loss.MARGIN:
        return _margin_loss(logits, target, onehot, targeted)
    probs = logits.softmax(1).index_select(1, torch.as_tensor(classes, device=logits.device)).flatten(2)
    if loss == Loss.CE:
        return F.binary_cross_entropy(probs.clamp(1e-7, 1 - 1e-7), onehot, reduction="none").mean((1, 2))
    inter = (probs * onehot).sum(2)
    total = probs.sum(2) + onehot.sum(2)
    if loss == Loss.IOU:
        return -((inter + smooth) / (total - inter + smooth)).mean(1)
    return 1 - ((2 * inter + smooth) / (total + smooth)).mean(1)


def loss_scale(images: torch.Tensor) -> float:
    """The power of two nearest the pixel count ``H * W`` of ``images (B, C, H, W)``, that PGD multiplies its loss by.

    The losses are means over pixels, so the gradient reaching each pixel is about ``1 / (H W)``: under float16
    autocast many such gradients underflow in the network's backward pass (13 % of the CXR model's input-gradient
    signs wrong at 256 x 256, docs/benchmarks.md). Scaled, they have the size of a sum over pixels, as ASMA's
    objective has. A power of two is exact in float32, so the sign step and the normalised momentum do not change.
    """
    return 2.0 ** round(math.log2(images[0, 0].numel()))


def _margin_loss(logits: torch.Tensor, target: torch.Tensor, onehot: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The clipped margin of :func:`segmentation_loss`, per sample ``(B,)``; 0 for a sample with no covered pixel."""
    if logits.shape[1] < 2:
        raise ValueError("Loss 'margin' needs logits of at least 2 classes; use 'iou', 'dice' or 'ce'.")
    index = target[:, None]
    own = logits.gather(1, index)[:, 0]
    best_other = logits.scatter(1, index, float("-inf")).amax(1)
    trail = best_other - own
    trail = trail.clamp(min=-MARGIN_CLIP) if targeted else trail.clamp(max=MARGIN_CLIP)
    covered = onehot.sum(1)  # (B, H*W): 1 where the target is one of the loss's classes
    return (trail.flatten(1) * covered).sum(1) / covered.sum(1).clamp_min(1.0)

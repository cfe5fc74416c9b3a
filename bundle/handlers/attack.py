"""Ignite handler: run the configured attack on every batch of an evaluator and keep what the savers need."""

from __future__ import annotations

import difflib
import functools
import inspect
import time
from collections.abc import Callable

import torch
from ignite.engine import Engine, Events
from tqdm import tqdm

from bundle.attacks._utils import AttackResult, model_guard
from bundle.handlers.attack_metrics import CLEAN_PREDICTION

__all__ = ["AttackHandler", "StepClock", "AMP_DTYPES"]

AMP_DTYPES = {None: None, "bfloat16": torch.bfloat16, "float16": torch.float16}


class AttackHandler:
    """Attack each evaluator batch; results go into ``engine.state.output`` for metric writers and savers.

    The evaluator must run with ``decollate=False`` and no post-processing so that its output holds the
    batched ``image`` (B, C, H, W), ``label`` (B, 1, H, W) and ``pred`` logits (B, K, H, W); without a label
    (the user's own files) the clean prediction becomes ``label`` and ``reference`` says so. Added keys:
    ``clean_pred`` / ``adv_pred`` (B, 1, H, W) long predictions of the evaluated network, ``target``
    (B, 1, H, W), ``adv`` (B, C, H, W), ``steps`` (B,) and ``seconds`` (B,): each case's time from the start of
    its batch's attack until it stopped (attacks that stop samples early report when; others run all to the end).

    Args:
        attack: ``attack(model, images, target) -> AttackResult``, e.g. ``functools.partial(bundle.attacks.pgd,
            eps=0.04, bounds=(-1, 1))`` built by the config with ``_mode_: callable``.
        make_target: ``make_target(label) -> target`` for targeted attacks (e.g. ``heart_symbol_target``);
            ``None`` attacks the ground truth itself (untargeted attacks) unless ``target_key`` is set.
        target_key: batch key holding a ready target label map (e.g. another case's label for ASMA).
        make_region: ``make_region(label) -> (B, 1, H, W) bool`` where noise may go, passed as ``region=``.
        attack_network: network the attack's gradients come from; ``None`` = the evaluated network (white box),
            the surrogate for black-box transfer.
        amp: ``"bfloat16"`` or ``"float16"`` runs the attack's forward and backward passes under
            ``torch.autocast`` of the images' device (the attack losses stay in float32); ``None`` = float32.
        progress: show a progress bar over the attack's steps (step, samples still running, mean target IoU).
    """

    def __init__(self, attack: Callable[..., AttackResult], make_target: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 target_key: str | None = None, make_region: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 attack_network: torch.nn.Module | None = None, amp: str | None = None, progress: bool = True) -> None:
        if not callable(attack):
            raise TypeError(f"Argument attack should be callable (use `_mode_: callable` in the config), got {type(attack)}.")
        if make_target is not None and not callable(make_target):
            raise TypeError(f"Argument make_target should be callable or None, got {type(make_target)}.")
        if make_target is not None and target_key is not None:
            raise ValueError("Arguments make_target and target_key exclude each other; set one of them.")
        if amp not in AMP_DTYPES:
            raise ValueError(f"Option amp should be one of {', '.join(map(str, AMP_DTYPES))}, got {amp!r} "
                             "(e.g. --amp bfloat16).")
        _check_options(attack)
        self.attack = attack
        self.make_target = make_target
        self.target_key = target_key
        self.make_region = make_region
        self.attack_network = attack_network
        self.amp = amp
        self.progress = progress
        self._observable = isinstance(attack, functools.partial) and "progress" in inspect.signature(attack.func).parameters

    def attach(self, engine: Engine) -> None:
        if getattr(engine, "decollate", False) or getattr(engine, "postprocessing", None) is not None:
            raise ValueError("AttackHandler needs the evaluator's batched output: set `decollate: false` and "
                             "`postprocessing: null` on the evaluator (configs/attack.yaml does).")
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        images, network = out["image"], engine.network
        clean_pred = out["pred"].argmax(1, keepdim=True)
        if out.get("label") is None:  # the user's own unlabelled files: the clean prediction is the reference
            out.update(label=clean_pred, reference=CLEAN_PREDICTION)
        label = out["label"].long()
        if self.target_key is not None:
            target = engine.state.batch[self.target_key].to(label.device).long()
        else:
            target = label if self.make_target is None else self.make_target(label).to(label.device)
        region = {} if self.make_region is None else {"region": self.make_region(label)}
        clock = StepClock(images.shape[0], self.attack, show=self.progress)
        if self._observable:
            region["progress"] = clock
        with torch.autocast(images.device.type, dtype=AMP_DTYPES[self.amp], enabled=self.amp is not None):
            result = self.attack(self.attack_network or network, images, target, **region)
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        seconds = clock.finish()
        with model_guard(network), torch.no_grad():
            adv_pred = network(result.adv).argmax(1, keepdim=True)
        out.update(
            clean_pred=clean_pred,
            adv_pred=adv_pred,
            target=target,
            adv=result.adv.detach(),
            steps=result.steps,
            seconds=seconds,
        )


class StepClock:
    """The ``progress`` observer of one batch's attack (:data:`bundle.attacks._utils.Progress`): when each sample
    stopped, and a progress bar over the steps with the samples still running and their mean score so far."""

    def __init__(self, batch: int, attack: Callable, show: bool = True, refresh_seconds: float = 0.5) -> None:
        steps = attack.keywords.get("steps") if isinstance(attack, functools.partial) else None
        self.start = time.perf_counter()
        self.stopped = [None] * batch
        self.running = list(range(batch))
        self.score: torch.Tensor | None = None
        self.refresh, self.shown = refresh_seconds, self.start
        self.bar = tqdm(total=steps, desc="  steps", unit="step", leave=False, disable=not show or steps is None)

    def __call__(self, step: int, active: torch.Tensor, score: torch.Tensor) -> None:
        if self.score is None:
            self.score = torch.zeros(len(self.stopped), device=score.device)
        self.score[active] = score.detach().float()
        now = time.perf_counter()
        if active.numel() < len(self.running):  # samples left the batch: when (one sync, only then)
            for i in set(self.running) - set(active.tolist()):
                self.stopped[i] = now
            self.running = active.tolist()
        if now - self.shown >= self.refresh:
            self.shown = now
            self.bar.set_postfix(running=active.numel(), mean_score=f"{float(self.score.mean()):.4f}")
        self.bar.update(step + 1 - self.bar.n)

    def finish(self) -> torch.Tensor:
        """Seconds from the start to each sample's stop ``(B,)``; samples that ran to the end stop now."""
        end = time.perf_counter()
        self.bar.close()
        return torch.tensor([(end if t is None else t) - self.start for t in self.stopped])


def _check_options(attack: Callable) -> None:
    """Name an unknown option of a configured attack (``--attack::epss``) and the closest valid one."""
    if not isinstance(attack, functools.partial):
        return
    valid = [n for n, p in inspect.signature(attack.func).parameters.items()
             if p.kind == p.KEYWORD_ONLY and n != "progress"]  # the handler's own observer
    for name in attack.keywords:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = (f" Did you mean {close[0]!r}? Fix the override (e.g. --attack::{close[0]})." if close else
                    " Drop the override, or the config file that sets it.")
            raise ValueError(f"Unknown option {name!r} for attack {attack.func.__name__}; valid options: "
                             f"{', '.join(valid)}.{hint}")

"""Ignite handler: the worst case over an attack ensemble for every batch and eps, its tables and its report.

Writes into ``output_dir``: ``metrics.csv`` (one row per case and eps, rewritten atomically after every batch, so a
rerun resumes with the cases not done, as attack runs do), ``settings.json``, ``summary.csv`` (means per eps) and
``report.md`` with ``robustness_miou.png`` and ``robustness_structures.png``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from tqdm import tqdm

from bundle._files import atomic_path
from bundle.handlers.attack_metrics import (CLEAN_PREDICTION, GROUND_TRUTH, METRICS_FILE, SETTINGS_FILE, case_names,
                                           implausible_warning)
from bundle.handlers.tables import write_csv
from bundle.metrics import class_iou, implausible_structures
from bundle.robustness import imperceptibility, robustness_sweep

__all__ = ["RobustnessWriter"]

SIZE_BINS = ((0.0, 0.01, "under 1 %"), (0.01, 0.05, "1-5 %"), (0.05, 1.01, "5 % and more"))


class RobustnessWriter:
    """Run :func:`bundle.robustness.robustness_sweep` on each evaluator batch and report it.

    The evaluator runs as for :class:`~bundle.handlers.AttackHandler` (``decollate: false``, no post-processing).
    Untargeted, the reference is the label (or the clean prediction for unlabelled files); targeted, the target
    comes from ``make_target(label)`` or the batch key ``target_key``.

    Columns of ``metrics.csv``: ``case, task, reference, clean_warning`` (as in attack runs: the structures the
    clean prediction misses or splits into many pieces), ``eps, winner`` (the attack that produced the worst case,
    ``clean`` if none beat the clean image), ``passes, seconds, clean_score, worst_score`` (mean foreground IoU with
    the reference, or the paper IoU with the target when targeted; over ``score_classes`` alone when given),
    ``score_<attack>`` and ``passes_<attack>`` (NaN
    and 0 where a sample was broken before the attack), ``l2, linf, psnr, ssim`` of the worst case's perturbation,
    then per class ``clean_iou_<class>``, ``worst_iou_<class>`` (with the reference or target) and ``size_<class>``
    (its share of the reference's pixels).

    Args:
        attacks: ``{name: attack}`` in the order they run (``_mode_: callable`` partials without ``eps``).
        eps: the radii, model units.
        output_dir, task, class_names: where, what task, the model's classes in label order.
        bounds: the model's input domain (PSNR's peak is its width).
        targeted: attack a target instead of the reference.
        stop_score: a sample counts as broken at this score (see :func:`bundle.robustness.worst_case`).
        exit_early: later attacks skip broken samples.
        score_classes: the foreground classes the score covers, e.g. ``[3]`` for a heart-symbol run; ``None``: all.
        make_target, target_key: the target of a targeted run.
        settings: written to ``settings.json`` (a rerun with others into the same folder is refused).
        progress: show a progress bar over the cases.
    """

    def __init__(self, attacks: Mapping[str, Callable], eps: Sequence[float], output_dir: str | Path, task: str,
                 class_names: Sequence[str], bounds: Sequence[float], targeted: bool = False,
                 stop_score: float | None = None, exit_early: bool = True, score_classes: Sequence[int] | None = None,
                 make_target: Callable[[torch.Tensor], torch.Tensor] | None = None, target_key: str | None = None,
                 settings: dict | None = None, total_cases: int | None = None, progress: bool = True) -> None:
        if not isinstance(attacks, Mapping) or not attacks or not all(callable(a) for a in attacks.values()):
            raise TypeError("Argument attacks should be a non-empty mapping of names to callables "
                            "(`_mode_: callable` in the config).")
        self.attacks = dict(attacks)
        self.eps = [float(e) for e in eps]
        self.output_dir, self.task = Path(output_dir), task
        self.class_names, self.bounds = list(class_names), (float(bounds[0]), float(bounds[1]))
        self.targeted, self.stop_score, self.exit_early = bool(targeted), stop_score, exit_early
        self.score_classes = None if score_classes is None else list(score_classes)
        self.make_target, self.target_key = make_target, target_key
        self.settings = None if settings is None else json.loads(json.dumps(settings, default=str))
        self.total_cases, self.progress = total_cases, progress
        self.rows: list[dict] = []
        self._bar = None

    def attach(self, engine: Engine) -> None:
        if getattr(engine, "decollate", False) or getattr(engine, "postprocessing", None) is not None:
            raise ValueError("RobustnessWriter needs the evaluator's batched output: set `decollate: false` and "
                             "`postprocessing: null` on the evaluator (configs/attack.yaml does).")
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.report())

    def _start(self, engine: Engine) -> None:
        self.rows = _read_rows(self.output_dir / METRICS_FILE)
        self._bar = tqdm(total=self.total_cases, desc=f"robustness on {self.task}", unit="case",
                         disable=not self.progress)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        images, network = out["image"], engine.network
        n = len(self.class_names)
        clean_pred = out["pred"].argmax(1, keepdim=True)
        reference = GROUND_TRUTH
        label = out.get("label")
        if label is None:
            label, reference = clean_pred, CLEAN_PREDICTION
        label = label.long()
        if self.target_key is not None:
            goal = engine.state.batch[self.target_key].to(label.device).long()
        elif self.make_target is not None:
            goal = self.make_target(label).to(label.device)
        else:
            goal = label
        results = robustness_sweep(network, images, goal, self.attacks, eps=self.eps, targeted=self.targeted,
                                   stop_score=self.stop_score, exit_early=self.exit_early,
                                   score_classes=self.score_classes)
        sizes = torch.stack([(goal == c).flatten(1).float().mean(1) for c in range(n)], 1).cpu()
        clean_iou = class_iou(clean_pred, goal, n).cpu()
        warnings = implausible_structures(clean_pred, self.class_names)
        names = list(self.attacks)
        for res in results:
            seen = imperceptibility(images, res.adv, self.bounds)
            worst_iou = class_iou(res.pred, goal, n).cpu()
            for i, case in enumerate(case_names(engine)):
                w = int(res.winner[i])
                row = {"case": case, "task": self.task, "reference": reference, "clean_warning": warnings[i],
                       "eps": res.eps,
                       "winner": "clean" if w < 0 else names[w], "passes": int(res.passes[i]),
                       "seconds": float(res.seconds[i]), "clean_score": float(res.clean_score[i]),
                       "worst_score": float(res.score[i])}
                for a, name in enumerate(names):
                    row[f"score_{name}"] = float(res.attack_scores[a, i])
                    row[f"passes_{name}"] = int(res.attack_passes[a, i])
                row.update({k: float(v[i]) for k, v in seen.items()})
                for c, cname in enumerate(self.class_names):
                    row[f"clean_iou_{cname}"] = float(clean_iou[i, c])
                    row[f"worst_iou_{cname}"] = float(worst_iou[i, c])
                    row[f"size_{cname}"] = float(sizes[i, c])
                self.rows.append(row)
        write_csv(self.output_dir / METRICS_FILE, self.rows)
        if self.settings is not None:
            with atomic_path(self.output_dir / SETTINGS_FILE) as tmp:
                tmp.write_text(json.dumps(self.settings, indent=1))
        if self._bar is not None:
            self._bar.update(images.shape[0])

    def report(self) -> None:
        """``summary.csv``, ``report.md`` and its figures from every row so far; prints the main table."""
        if self._bar is not None:
            self._bar.close()
        rows = self.rows or _read_rows(self.output_dir / METRICS_FILE)
        if not rows:
            raise RuntimeError(f"No case was attacked and {self.output_dir / METRICS_FILE} has no row; "
                               f"check dataset_dir, input_files and num_cases.")
        text, summary = robustness_report(rows, self.class_names, list(self.attacks), self.task, self.targeted,
                                          self.output_dir, self.score_classes)
        warning = implausible_warning(rows)
        write_csv(self.output_dir / "summary.csv", summary)
        with atomic_path(self.output_dir / "report.md") as tmp:
            tmp.write_text(text + warning)
        print(f"\n{text.split(chr(10) + chr(10), 2)[1]}{warning}\n\n(report: {self.output_dir / 'report.md'})",
              flush=True)


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _mean(values: Sequence[float]) -> float:
    values = [float(v) for v in values if not math.isnan(float(v))]
    return sum(values) / len(values) if values else math.nan


def robustness_report(rows: Sequence[dict], class_names: Sequence[str], attacks: Sequence[str], task: str,
                      targeted: bool, folder: Path, score_classes: Sequence[int] | None = None) -> tuple[str, list[dict]]:
    """The Markdown report of ``metrics.csv``'s rows and the per-eps ``summary.csv`` rows; draws the figures
    into ``folder``."""
    score = "target IoU" if targeted else "mean IoU with the reference"
    if score_classes is not None:
        score += " (" + ", ".join(class_names[c] for c in score_classes) + ")"
    radii = sorted({float(r["eps"]) for r in rows})
    by_eps = {e: [r for r in rows if float(r["eps"]) == e] for e in radii}
    cases = len({r["case"] for r in rows})
    reference = rows[0]["reference"]
    summary = []
    for e, group in by_eps.items():
        line = {"eps": e, "cases": len(group), "clean_score": _mean(r["clean_score"] for r in group),
                "worst_score": _mean(r["worst_score"] for r in group)}
        for a in attacks:
            line[f"score_{a}"] = _mean(r[f"score_{a}"] for r in group)
            line[f"ran_{a}"] = sum(not math.isnan(float(r[f"score_{a}"])) for r in group)
            line[f"won_{a}"] = sum(r["winner"] == a for r in group)
        line.update({k: _mean(r[k] for r in group) for k in ("passes", "seconds", "l2", "linf", "psnr", "ssim")})
        for c in class_names[1:]:
            line[f"worst_iou_{c}"] = _mean(r[f"worst_iou_{c}"] for r in group)
        summary.append(line)
    head = f"# Worst case over {len(attacks)} attacks on {task}: {cases} cases (reference: {reference})"
    lines = [head, "",
             f"| eps | clean {score} | " + " | ".join(f"{a} (cases it ran on)" for a in attacks) +
             " | **worst case** | mean passes | mean seconds |",
             "|---" * (len(attacks) + 5) + "|"]
    for s in summary:
        cells = [f"{s[f'score_{a}']:.4f} ({s[f'ran_{a}']})" for a in attacks]
        lines.append(f"| {s['eps']:g} | {s['clean_score']:.4f} | " + " | ".join(cells) +
                     f" | **{s['worst_score']:.4f}** | {s['passes']:.0f} | {s['seconds']:.1f} |")
    lines += ["", "Each attack runs only on the cases that no earlier one broke (column: on how many); the worst "
              "case is each case's lowest score" + (" (highest, targeted)" if targeted else "") + " over all.", "",
              "![score against eps](robustness_miou.png)", "", "## Which attack won", "",
              "| eps | " + " | ".join(attacks) + " | none (clean) |", "|---" * (len(attacks) + 2) + "|"]
    for s, group in zip(summary, by_eps.values()):
        lines.append(f"| {s['eps']:g} | " + " | ".join(str(s[f"won_{a}"]) for a in attacks) +
                     f" | {sum(r['winner'] == 'clean' for r in group)} |")
    lines += ["", "## Per structure (worst case, IoU with the " + ("target" if targeted else "reference") + ")", "",
              "| eps | " + " | ".join(class_names[1:]) + " |", "|---" * len(class_names) + "|"]
    lines.append("| clean | " + " | ".join(f"{_mean(r[f'clean_iou_{c}'] for r in by_eps[radii[0]]):.4f}"
                                           for c in class_names[1:]) + " |")
    for s in summary:
        lines.append(f"| {s['eps']:g} | " + " | ".join(f"{s[f'worst_iou_{c}']:.4f}" for c in class_names[1:]) + " |")
    lines += ["", "![per structure](robustness_structures.png)", "", "## By structure size", "",
              "Each structure of each case by its share of the image's pixels in the reference; mean worst-case IoU "
              "(number of structures).", "", "| eps | " + " | ".join(b[2] for b in SIZE_BINS) + " |",
              "|---" * (len(SIZE_BINS) + 1) + "|"]
    for e, group in by_eps.items():
        cells = []
        for lo, hi, _ in SIZE_BINS:
            vals = [float(r[f"worst_iou_{c}"]) for r in group for c in class_names[1:]
                    if lo <= float(r[f"size_{c}"]) < hi and float(r[f"size_{c}"]) > 0]
            cells.append(f"{_mean(vals):.4f} ({len(vals)})" if vals else "-")
        lines.append(f"| {e:g} | " + " | ".join(cells) + " |")
    lines += ["", "## The worst case's perturbation and cost", "",
              "| eps | L2 | L-inf | PSNR (dB) | SSIM | mean passes | mean seconds per case |", "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['eps']:g} | {s['l2']:.3f} | {s['linf']:.4f} | {s['psnr']:.1f} | {s['ssim']:.4f} | "
                     f"{s['passes']:.0f} | {s['seconds']:.1f} |")
    lines.append("\nL2 and L-inf in model units; PSNR with the model domain's width as peak; SSIM is MONAI's. The "
                 "seconds of a case are those of the attacks it took part in (a batch's attack time, shared).\n")
    _figures(summary, class_names, attacks, score, folder)
    return "\n".join(lines), summary


def _figures(summary: list[dict], class_names: Sequence[str], attacks: Sequence[str], score: str,
             folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    radii = [s["eps"] for s in summary]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(radii, [s["clean_score"] for s in summary], "k--", label="clean")
    for a in attacks:
        ax.plot(radii, [s[f"score_{a}"] for s in summary], marker=".", alpha=0.7, label=f"{a} (cases it ran on)")
    ax.plot(radii, [s["worst_score"] for s in summary], "r-o", lw=2, label="worst case")
    ax.set(xlabel="eps (model units)", ylabel=score, ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(folder / "robustness_miou.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in class_names[1:]:
        ax.plot(radii, [s[f"worst_iou_{c}"] for s in summary], marker="o", label=c)
    ax.set(xlabel="eps (model units)", ylabel="worst-case IoU", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(folder / "robustness_structures.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

"""Ignite handler: the per-case attack table ``metrics.csv`` and its ``summary.csv`` / ``summary.md``.

``metrics.csv`` is rewritten atomically after every batch, so an interrupted run keeps every finished case;
:func:`pending_cases` drops those cases from the next run's datalist, which makes a rerun into the same
``output_dir`` resume. A case is never written twice. Under ``torchrun`` each rank keeps its own
``metrics.rank<r>.csv`` during the run and rank 0 merges them into ``metrics.csv`` at the end.

Beside the rows, ``settings.json`` records what decides them (the attack and its arguments, the weights' digest,
the grid, ...): a rerun with other settings into a folder that holds results is refused, not resumed, so a
changed eps or model never hides behind the cases of an earlier run.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from tqdm import tqdm

from bundle._files import atomic_path
from bundle.handlers.tables import markdown_table, summarise, write_csv
from bundle.metrics import (class_iou, implausible_structures, l2_norm, linf_norm, mean_iou, paper_iou,
                            pixel_accuracy)

__all__ = ["AttackMetricsWriter", "pending_cases", "case_names", "METRICS_FILE", "SETTINGS_FILE"]

METRICS_FILE = "metrics.csv"
SETTINGS_FILE = "settings.json"
TEXT_COLUMNS = ("case", "task", "attack", "reference", "clean_warning")
# the exported file, read back, may differ from the in-memory adversarial image by this much target IoU before
# the summary warns (docs/export.md: the round trip keeps at least 0.95 of a target IoU near 1)
ROUNDTRIP_TOLERANCE = 0.05
GROUND_TRUTH, CLEAN_PREDICTION = "ground truth", "clean prediction"  # what a run's IoU columns compare with


def implausible_warning(rows: Sequence[dict]) -> str:
    """The warning that ends a summary when some cases' clean prediction looks unlike the training images (their
    ``clean_warning``, once per case), or ``""``."""
    odd = dict.fromkeys(f"- {r['case']}: {r['clean_warning']}" for r in rows if r.get("clean_warning"))
    return ("" if not odd else "\n\nWarning: the clean prediction of these cases looks unlike the images the model "
            "was trained on (a structure missing or in many pieces); their results may mean little:\n" + "\n".join(odd))


def case_names(engine: Engine) -> list[str]:
    """Case ids of the engine's batch: its ``case`` key (unique per input, :mod:`bundle.inputs`), else the file
    stems of the batched image's sources (``meta["filename_or_obj"]``)."""
    batch = engine.state.batch
    if isinstance(batch, dict) and "case" in batch:
        return [str(c) for c in batch["case"]]
    names = engine.state.output["image"].meta["filename_or_obj"]
    return [Path(str(n)).stem for n in ([names] if isinstance(names, str) else names)]


def _numeric_columns(rows: Sequence[dict]) -> list[str]:
    """The columns of ``rows`` that hold numbers (not text, not left empty like ``eps`` of an attack without one)."""
    return [k for k in rows[0] if k not in TEXT_COLUMNS and str(rows[0][k]) != ""]


def _case(item: dict) -> str:
    return str(item.get("case") or Path(str(item["image"])).stem)


def _round_trip_drift(row: dict) -> float:
    """``|roundtrip_target_iou - target_iou|`` of a metrics row; 0 when the run exported nothing or an IoU is NaN."""
    if "roundtrip_target_iou" not in row:
        return 0.0
    drift = abs(float(row["roundtrip_target_iou"]) - float(row["target_iou"]))
    return 0.0 if math.isnan(drift) else drift


def _read_rows(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def _finished_rows(output_dir: Path) -> dict[str, dict]:
    """Rows of ``metrics.csv`` and of any rank file an interrupted multi-process run left."""
    rows = {}
    for path in [output_dir / METRICS_FILE, *sorted(output_dir.glob("metrics.rank*.csv"))]:
        rows.update(_read_rows(path))
    return rows


def _as_json(settings: dict) -> dict:
    """``settings`` as they read back from ``settings.json`` (tuples become lists, other objects strings)."""
    return json.loads(json.dumps(settings, default=str))


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every setting that differs, nested dicts by dotted key."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += _changed(before, after, f"{prefix}{key}.")
        elif before != after:
            changes.append(f"{prefix}{key}: {before!r} -> {after!r}")
    return changes


def pending_cases(items: Sequence[dict], output_dir: str | Path, settings: dict | None = None) -> list[dict]:
    """The datalist ``items`` whose case has no row yet in ``output_dir``'s metrics files.

    With ``settings``, a folder whose rows were written with other settings (its ``settings.json``) is an error
    that names the changed ones: resuming it would report the earlier run's cases as this run's.
    """
    output_dir = Path(output_dir)
    done = _finished_rows(output_dir)
    recorded = output_dir / SETTINGS_FILE
    if settings is not None and done and recorded.is_file():
        try:
            before = json.loads(recorded.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{recorded} is not valid JSON ({err}); delete {output_dir} to start the run over, or "
                             f"pass --output_dir with a new folder.") from err
        changes = _changed(before, _as_json(settings))
        if changes:
            raise ValueError(f"{output_dir} holds the results of {len(done)} cases attacked with other settings "
                             f"({'; '.join(changes)}); pass --output_dir with a new folder for this run, or delete "
                             f"{output_dir} to start it over.")
    return [item for item in items if _case(item) not in done]


class AttackMetricsWriter:
    """Per-case metrics of an attack run (after :class:`~bundle.handlers.AttackHandler` and the savers).

    Columns: ``case, task, attack, reference, clean_warning, eps, steps, seconds, target_iou`` (the ASMA paper's
    IoU of the adversarial prediction with the target), ``pixel_accuracy`` (with the target), ``l2, linf`` (perturbation in
    model units), ``clean_miou_gt, adv_miou_gt`` (mean foreground IoU with the ground truth), then per class
    ``iou_<class>`` (adversarial prediction vs target), ``gt_iou_<class>`` (vs ground truth) and
    ``clean_iou_<class>`` (clean prediction vs ground truth, the papers' "no attack" columns).
    Cases without a label map (the user's own files) are compared with the clean prediction instead: ``reference``
    says ``clean prediction`` and the columns are ``adv_miou_ref`` and ``ref_iou_<class>``. ``clean_warning`` names
    the structures the clean prediction misses or splits into many pieces (:func:`bundle.metrics.implausible_structures`).

    Args:
        output_dir: folder of ``metrics.csv``, ``summary.csv``, ``summary.md``.
        task: task id written in every row.
        attack_name: attack label written in every row (e.g. ``pgd_heart_small``).
        class_names: class names in label order.
        eps: the attack's eps (written as given; empty for attacks without one).
        total_cases: number of cases for the progress bar (None hides the total).
        progress: show a progress bar.
        settings: what decides the results, written to ``settings.json`` with the rows (see :func:`pending_cases`).
    """

    def __init__(self, output_dir: str | Path, task: str, attack_name: str, class_names: Sequence[str],
                 eps: float | None = None, total_cases: int | None = None, progress: bool = True,
                 settings: dict | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.settings = None if settings is None else _as_json(settings)
        self.task, self.attack_name, self.eps = task, attack_name, eps
        self.class_names = list(class_names)
        self.total_cases, self.progress = total_cases, progress
        self.rows: dict[str, dict] = {}
        self.rank, self.world = 0, 1
        self._bar: tqdm | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._to_state)
        engine.add_event_handler(Events.COMPLETED, self._finish)

    def _start(self, engine: Engine) -> None:
        self.rank, self.world = idist.get_rank(), idist.get_world_size()
        self.rows = _finished_rows(self.output_dir) if self.world == 1 else {}
        self._bar = tqdm(total=self.total_cases, desc=f"{self.attack_name} on {self.task}", unit="case",
                         disable=not self.progress or self.rank != 0)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        missing = [k for k in ("adv", "adv_pred", "clean_pred", "target", "steps", "seconds") if k not in out]
        if missing:
            raise KeyError(f"AttackMetricsWriter needs {missing} in the engine output; attach AttackHandler first.")
        n = len(self.class_names)
        label, target = out["label"].long(), out["target"]
        clean, adv_pred = out["clean_pred"], out["adv_pred"]
        reference = out.get("reference", GROUND_TRUTH)
        delta = out["adv"] - out["image"]
        columns = {
            "steps": out["steps"], "seconds": out["seconds"],
            "target_iou": paper_iou(adv_pred, target), "pixel_accuracy": pixel_accuracy(adv_pred, target),
            "l2": l2_norm(delta), "linf": linf_norm(delta),
        }
        to_target, to_reference = class_iou(adv_pred, target, n), class_iou(adv_pred, label, n)
        if reference == GROUND_TRUTH:
            columns.update(clean_miou_gt=mean_iou(clean, label, n), adv_miou_gt=mean_iou(adv_pred, label, n))
            clean_to_truth = class_iou(clean, label, n)
        else:  # the reference is the clean prediction itself: its "clean" columns would all be 1
            columns.update(adv_miou_ref=mean_iou(adv_pred, label, n))
        for i, name in enumerate(self.class_names):
            columns[f"iou_{name}"] = to_target[:, i]
            if reference == GROUND_TRUTH:
                columns[f"gt_iou_{name}"], columns[f"clean_iou_{name}"] = to_reference[:, i], clean_to_truth[:, i]
            else:
                columns[f"ref_iou_{name}"] = to_reference[:, i]
        columns.update(out.get("extra_metrics", {}))  # e.g. the round trip through the written files
        columns = {k: v.detach().cpu() for k, v in columns.items()}
        warnings = implausible_structures(clean, self.class_names)
        for i, case in enumerate(case_names(engine)):
            row = {"case": case, "task": self.task, "attack": self.attack_name, "reference": reference,
                   "clean_warning": warnings[i], "eps": "" if self.eps is None else self.eps}
            row.update({k: (int(v[i]) if k == "steps" else float(v[i])) for k, v in columns.items()})
            self.rows[case] = row
        self._write_rows()
        if self._bar is not None:
            self._bar.update(len(columns["steps"]))
            self._bar.set_postfix(mean_target_iou=f"{self._mean('target_iou'):.4f}")

    def _to_state(self, engine: Engine) -> None:
        """The mean of every numeric column (``target_iou``, ``linf``, ``iou_<class>``, ...) over this process's rows into
        ``engine.state.metrics``, where MONAI's MLflow and TensorBoard handlers (``--tracking mlflow``) read them."""
        rows = list(self.rows.values())
        if rows:
            means = {k: sum(float(r[k]) for r in rows) / len(rows) for k in _numeric_columns(rows)}
            engine.state.metrics.update(means)

    def _mean(self, column: str) -> float:
        values = [float(r[column]) for r in self.rows.values()]
        return sum(values) / len(values)

    def _write_rows(self) -> None:
        name = METRICS_FILE if self.world == 1 else f"metrics.rank{self.rank}.csv"
        write_csv(self.output_dir / name, list(self.rows.values()))
        if self.settings is not None and self.rank == 0:
            with atomic_path(self.output_dir / SETTINGS_FILE) as tmp:
                tmp.write_text(json.dumps(self.settings, indent=1))

    def _finish(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.world > 1:  # rank 0 merges every rank's rows with those of earlier runs
            gathered = [None] * self.world
            torch.distributed.all_gather_object(gathered, self.rows)
            if self.rank == 0:
                self.rows = _finished_rows(self.output_dir)
                for rows in gathered:
                    self.rows.update(rows)
                self.rows = dict(sorted(self.rows.items()))
                write_csv(self.output_dir / METRICS_FILE, list(self.rows.values()))
                for path in self.output_dir.glob("metrics.rank*.csv"):
                    path.unlink()
            torch.distributed.barrier()
            if self.rank != 0:
                return
        self.report()

    def report(self) -> None:
        """Write ``summary.csv`` / ``summary.md`` from every row so far and print the table.

        Runs at the end of an attack run, and on its own when a resumed run finds every case done.
        """
        if not self.rows:
            self.rows = _finished_rows(self.output_dir)
        if not self.rows:
            raise RuntimeError(f"No case was attacked and {self.output_dir / METRICS_FILE} has no row; "
                               f"check dataset_dir and num_cases.")
        rows = list(self.rows.values())
        summary = summarise(rows, _numeric_columns(rows))
        write_csv(self.output_dir / "summary.csv", summary)
        table = markdown_table(summary)
        reference = rows[0].get("reference") or GROUND_TRUTH
        title = f"{self.attack_name} on {self.task}: {len(rows)} cases (reference: {reference})"
        warning = implausible_warning(rows)
        drifted = [f"- {r['case']}: {float(r['target_iou']):.4f} in memory, {float(r['roundtrip_target_iou']):.4f} "
                   f"from the file" for r in rows if _round_trip_drift(r) > ROUNDTRIP_TOLERANCE]
        warning += ("" if not drifted else "\n\nWarning: the exported files of these cases do not carry the attack "
                    "as it was measured (target IoU of the adversarial image in memory and read back from its file; "
                    "docs/export.md, \"The VOI window and the file\"):\n" + "\n".join(drifted))
        with atomic_path(self.output_dir / "summary.md") as tmp:
            tmp.write_text(f"# {title}\n\n{table}{warning}\n")
        print(f"\n{title} -> {self.output_dir}\n{table}{warning}", flush=True)


"""Ignite handler: per-case, per-class Dice and IoU of an evaluator's predictions, written as CSV and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ignite.engine import Engine, Events

from bundle._files import atomic_path
from bundle.handlers.tables import markdown_table, summarise, write_csv
from bundle.metrics import class_dice, class_iou

__all__ = ["SegmentationMetricsWriter"]


class SegmentationMetricsWriter:
    """Collect per-case Dice and IoU of every foreground class; on completion write and print the tables.

    Expects the evaluator's post-processed output: a list of per-case dicts whose ``pred`` and ``label`` are
    one-hot ``(C, H, W)`` and whose image carries ``meta["filename_or_obj"]``.

    Args:
        output_dir: folder for ``<prefix>metrics.csv``, ``<prefix>summary.csv`` and ``<prefix>summary.md``.
        class_names: names of the classes in label order; index 0 is background and is not reported.
        prefix: file-name prefix (``clean_`` by default).
        print_table: print the summary table when the run completes.
    """

    def __init__(self, output_dir: str | Path, class_names: Sequence[str], prefix: str = "clean_",
                 print_table: bool = True) -> None:
        if len(class_names) < 2:
            raise ValueError(f"Argument class_names should name background and at least one class, got {class_names}.")
        self.output_dir = Path(output_dir)
        self.class_names = list(class_names)
        self.prefix = prefix
        self.print_table = print_table
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def __call__(self, engine: Engine) -> None:
        n = len(self.class_names)
        for out, batch in zip(engine.state.output, engine.state.batch):
            pred = out["pred"].argmax(0)[None, None]
            label = out["label"].argmax(0)[None, None]
            dice, iou = class_dice(pred, label, n)[0], class_iou(pred, label, n)[0]
            row = {"case": Path(str(batch["image"].meta["filename_or_obj"])).name}
            row.update({f"dice_{c}": float(dice[i]) for i, c in enumerate(self.class_names) if i})
            row.update({f"iou_{c}": float(iou[i]) for i, c in enumerate(self.class_names) if i})
            row["mean_dice"] = float(dice[1:].mean())
            row["mean_iou"] = float(iou[1:].mean())
            self.rows.append(row)

    def _write(self, engine: Engine) -> None:
        if not self.rows:
            raise RuntimeError("The evaluator produced no case; check the dataset and num_cases.")
        columns = [k for k in self.rows[0] if k != "case"]
        summary = summarise(self.rows, columns)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_csv(self.output_dir / f"{self.prefix}metrics.csv", self.rows)
        write_csv(self.output_dir / f"{self.prefix}summary.csv", summary)
        table = markdown_table(summary)
        with atomic_path(self.output_dir / f"{self.prefix}summary.md") as tmp:
            tmp.write_text(table)
        if self.print_table:
            print(f"\n{len(self.rows)} cases, {self.output_dir}\n{table}", flush=True)


"""Ignite handler: one overlay picture per attacked case (PNG), see :func:`bundle.visualize.render_overlay`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ignite.engine import Engine, Events
from PIL import Image

from bundle._files import atomic_path, safe_name
from bundle.handlers.attack_metrics import GROUND_TRUTH, case_names
from bundle.visualize import render_overlay

__all__ = ["OverlaySaver"]


class OverlaySaver:
    """Write ``<output_dir>/overlays/<case>.png`` for every case of every batch (after ``AttackHandler``).

    Args:
        output_dir: run folder; pictures go to its ``overlays/`` subfolder.
        class_names: class names in label order.
        bounds: ``(low, high)`` of the model domain, to display images.
        max_cases: stop drawing after this many cases (``None`` = all).
    """

    def __init__(self, output_dir: str | Path, class_names: Sequence[str], bounds: Sequence[float],
                 max_cases: int | None = None) -> None:
        self.folder = Path(output_dir) / "overlays"
        self.class_names, self.bounds = list(class_names), tuple(bounds)
        self.max_cases = max_cases
        self.count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        for i, case in enumerate(case_names(engine)):
            if self.max_cases is not None and self.count >= self.max_cases:
                return
            rgb = render_overlay(out["image"][i], out["adv"][i], out["label"][i], out["adv_pred"][i], out["target"][i],
                                 bounds=self.bounds, class_names=self.class_names, title=case,
                                 reference=out.get("reference", GROUND_TRUTH))
            with atomic_path(self.folder / f"{safe_name(case)}.png") as tmp:
                Image.fromarray(rgb).save(tmp)
            self.count += 1

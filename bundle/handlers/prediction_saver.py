"""Ignite handler: the clean segmentation of every case as files, at the source image's own size.

Every case gets ``<output_dir>/<case>/label.png`` (class indices, lossless); a DICOM source also gets
``seg.dcm``, a DICOM SEG in the source's study that a viewer shows over the radiograph. A case whose prediction
has a structure missing or in many pieces (``bundle.metrics.implausible_structures``, the check attack runs make on
their clean predictions) also gets ``warning.txt`` naming them, and the run ends with a warning listing such cases:
an image unlike the ones the model was trained on (another kind of image, or one the model does not work on).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from ignite.engine import Engine, Events

from bundle._files import safe_name
from bundle.handlers.attack_metrics import case_names
from bundle.inputs import is_dicom
from bundle.io import label_to_native, write_png, write_seg
from bundle.metrics import implausible_structures
from bundle.transforms import photo_size

__all__ = ["PredictionSaver", "WARNING_FILE"]

WARNING_FILE = "warning.txt"


def native_size(source: Path) -> tuple[int, int]:
    """``(rows, columns)`` of a DICOM image or a photograph, from its header."""
    if is_dicom(source):
        ds = pydicom.dcmread(source, stop_before_pixels=True)
        return int(ds.Rows), int(ds.Columns)
    return photo_size(source)


class PredictionSaver:
    """Write each case's predicted label map (the evaluator's ``pred`` logits, argmax) beside its source's size.

    Args:
        output_dir: folder of the ``<case>/`` folders.
        class_names: class names in label order (the SEG's segments).
        algorithm_version: recorded in the SEG's algorithm identification.
    """

    def __init__(self, output_dir: str | Path, class_names: Sequence[str], algorithm_version: str = "0.1.0") -> None:
        self.output_dir = Path(output_dir)
        self.class_names, self.algorithm_version = list(class_names), algorithm_version
        self.implausible: list[str] = []  # "- <case>: <what>" of this run

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.implausible.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.report)

    def report(self, engine: Engine) -> None:
        """Print the cases whose prediction looks unlike the training images, if any."""
        if self.implausible:
            print("\nWarning: the prediction of these cases looks unlike the images the model was trained on (a "
                  "structure missing or in many pieces): they may be another kind of image than this task's, or "
                  f"images the model does not work on (each case's {WARNING_FILE} says the same):\n"
                  + "\n".join(self.implausible), flush=True)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        preds = out["pred"].argmax(1, keepdim=True)
        notes = implausible_structures(preds, self.class_names)
        sources = out["image"].meta["filename_or_obj"]
        for i, case in enumerate(case_names(engine)):
            source = Path(str(sources[i]))
            folder = self.output_dir / safe_name(case)
            label = label_to_native(preds[i], native_size(source))
            write_png(label.astype(np.uint8), folder / "label.png")
            if notes[i]:
                (folder / WARNING_FILE).write_text(notes[i] + "\n")
                self.implausible.append(f"- {case}: {notes[i]}")
            else:  # a rerun into the same folder
                (folder / WARNING_FILE).unlink(missing_ok=True)
            if is_dicom(source):
                write_seg(source, label, folder / "seg.dcm", class_names=self.class_names,
                          algorithm_name="bundle U-Net", algorithm_version=self.algorithm_version,
                          series_description="bundle U-Net segmentation")

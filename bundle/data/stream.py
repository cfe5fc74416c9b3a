"""An endless, seeded stream of freshly rendered phantoms for training.

A fixed set of 100-160 phantoms is too small to teach a network everything the renderer varies (exposure,
framing, devices, texture...): it learns the cases instead. The stream renders a new case for every
training sample, drawn from ``numpy.random.default_rng([seed, task_number, STREAM_KEY, k])`` for
``k = 0, 1, 2, ...``, a seed space disjoint from the fixed splits (which stay for validation, tests and the
papers' reproduction). Samples come out as a file of the fixed set reads: display intensities in ``[0, 1]``
with the label at the same size, ready for the task's model-grid transforms.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import look_up_option

from bundle.data.dicom_writer import default_window
from bundle.data.phantoms import TASKS
from bundle.transforms import voi_range

__all__ = ["PhantomStream", "STREAM_KEY", "rendered_display"]

STREAM_KEY = 7_000_003  # third element of the stream's seed sequence; the fixed splits have none


def rendered_display(task: str, image: np.ndarray, info: dict) -> np.ndarray:
    """A rendered phantom as its file of the fixed set reads: ``(C, H, W)`` float32 display intensities in [0, 1]."""
    if task == "cxr":  # as read_xray_dicom shows the DX the fixed set stores
        lo, hi = voi_range(*(info.get("window") or default_window(image)))
        return np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)[None]
    return np.moveaxis(image.astype(np.float32) / 255.0, -1, 0)


class PhantomStream(torch.utils.data.IterableDataset):
    """Endless stream of ``{"image": (C, H, W) float32 in [0, 1], "label": (1, H, W) uint8}`` phantoms.

    Args:
        task: ``fundus``, ``dermoscopy`` or ``cxr``.
        size: render size passed to ``generate_<task>`` (an int, or ``(H, W)`` for dermoscopy); render near
            the model grid (for example 512 for a 256 grid) to keep each sample cheap.
        seed: stream seed; the same seed gives the same sequence. DataLoader workers take every n-th case.
        transform: applied to each sample (the model-grid transforms and the training augmentation).
        render_options: keyword arguments of ``generate_<task>`` that widen its randomisation for training
            (for example ``{"anterior_ribs": [0.2, 1.5]}`` for cxr); the fixed splits keep the defaults.
    """

    def __init__(self, task: str, size: int | tuple[int, int], seed: int = 0,
                 transform: Callable[[dict], dict] | None = None, render_options: dict | None = None) -> None:
        super().__init__()
        self.task = look_up_option(task, TASKS)
        self.size = size
        self.seed = int(seed)
        self.transform = transform
        self.render_options = dict(render_options or {})
        self.generate = getattr(importlib.import_module(f"bundle.data.{self.task}"), f"generate_{self.task}")
        known = [name for name in inspect.signature(self.generate).parameters if name not in ("rng", "size")]
        unknown = sorted(set(self.render_options) - set(known))
        if unknown:  # named here, not by the first sample deep in a DataLoader worker
            raise ValueError(f"stream_render_options: generate_{self.task} has no option {', '.join(unknown)}; "
                             f"its options are: {', '.join(known) or 'none'}.")
        try:  # one case rendered here, so that a bad size or option value is named now, not by a DataLoader worker
            self.case(0)
        except ValueError as error:
            raise ValueError(f"The training stream cannot render a {self.task} phantom with stream_render_size "
                             f"{size!r} and stream_render_options {self.render_options!r}: {error}") from error

    def case(self, k: int) -> dict:
        """Case ``k`` of the stream, before ``transform``."""
        rng = np.random.default_rng([self.seed, TASKS.index(self.task), STREAM_KEY, k])
        image, label, info = self.generate(rng, self.size, **self.render_options)
        display = rendered_display(self.task, image, info)
        meta = {"filename_or_obj": f"stream:{self.task}:{self.seed}:{k}", "spatial_shape": np.asarray(label.shape)}
        return {"image": MetaTensor(torch.from_numpy(np.ascontiguousarray(display)), meta=meta),
                "label": MetaTensor(torch.from_numpy(label[None].copy()), meta=dict(meta))}

    def __iter__(self) -> Iterator[dict]:
        worker = torch.utils.data.get_worker_info()
        k, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        while True:
            item = self.case(k)
            yield self.transform(item) if self.transform is not None else item
            k += step

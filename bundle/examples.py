"""``load_examples``: a ready batch of preprocessed cases for Python users and tests."""

from __future__ import annotations

from pathlib import Path

import torch

from bundle.config import BUNDLE_ROOT, bundle_config, case_list, work_root

__all__ = ["load_examples"]


def load_examples(task: str, split: str = "test", n: int | None = 8, dataset_dir: str | Path | None = None,
                  **overrides) -> dict:
    """The first ``n`` cases of ``split`` through the task's bundle preprocessing, as one batch.

    ``overrides`` replace config values, e.g. ``model_grid=[512, 512]``.

    The phantoms are generated into ``data/phantoms/<task>`` first if that folder is empty.

    Returns:
        ``{"image": (B, C, H, W) float in the model domain (``intensity_bounds``: [0, 1] photos, [-1, 1] CXR),
        "label": (B, 1, H, W) long, "case": [B names], "image_path": [B paths]}``.
    """
    parser = bundle_config(task, **overrides)
    dataset_dir = Path(dataset_dir) if dataset_dir is not None else Path(work_root(BUNDLE_ROOT)) / "data" / "phantoms" / task
    preprocessing = parser.get_parsed_content("preprocessing")
    items = [preprocessing(item) for item in case_list(task, dataset_dir, split, n)]
    paths = [str(item["image"].meta["filename_or_obj"]) for item in items]
    return {
        "image": torch.stack([item["image"].as_tensor() for item in items]),
        "label": torch.stack([item["label"].as_tensor() for item in items]).long(),
        "case": [Path(p).stem for p in paths],
        "image_path": paths,
    }

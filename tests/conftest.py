import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

BUNDLE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def bundle_root() -> Path:
    return BUNDLE_ROOT


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory) -> dict[str, Path]:
    """Small phantom datasets of every task (4 training, 2 validation, 2 test cases; cxr adds surrogate splits)."""
    from bundle.data import generate_phantom_dataset

    root = tmp_path_factory.mktemp("phantoms")
    sizes = {"training": 4, "validation": 2, "test": 2}
    return {task: generate_phantom_dataset(task, root / task, sizes=sizes, progress=False).parent
            for task in ("fundus", "dermoscopy", "cxr")}

import os
import sys
from pathlib import Path

import pytest
import torch

from _util import checkout_mismatch

torch.set_num_threads(min(2, os.cpu_count() or 1))

BUNDLE_ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionstart(session):
    """The subprocess tests (``python -m bundle``, ``python scripts/...``) must run this checkout's code."""
    mismatch = checkout_mismatch(sys.executable, BUNDLE_ROOT)
    if mismatch:
        raise pytest.UsageError(f"{mismatch}: run `bash scripts/setup.sh` in {BUNDLE_ROOT} (it installs it "
                                f"editable), then the tests")


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

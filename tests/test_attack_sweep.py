"""scripts/attack_sweep.py: the measurement script of docs/attacks.md reads the data it claims to read."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bundle import load_examples
from bundle.config import BUNDLE_ROOT

sys.path.insert(0, str(BUNDLE_ROOT / "scripts"))
import attack_sweep  # noqa: E402


def test_heart_lung_contrast_is_the_step_between_the_medians():
    label = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    label[:, :, :4, :4], label[:, :, :4, 4:], label[:, :, 4:, 2:6] = 1, 2, 3
    image = torch.full((2, 1, 8, 8), 0.9)
    image[label == 1], image[label == 2] = -0.3, -0.3
    image[label == 3] = 0.5
    image[1] *= 0.5
    image[0, 0, 0, 0] = -1.0  # one outlier moves a mean, not a median
    assert attack_sweep.heart_lung_contrast(image, label) == pytest.approx((0.8 + 0.4) / 2)


def test_model_range_reaches_the_loading_transform(tiny_datasets):
    """``--model_range`` overrides the CXR loading's ``ScaleIntensityRanged`` by position; moving it breaks this."""
    default = load_examples("cxr", "test", n=1, dataset_dir=tiny_datasets["cxr"])["image"]
    quarter = load_examples("cxr", "test", n=1, dataset_dir=tiny_datasets["cxr"],
                            **attack_sweep.loading_overrides((-0.25, 0.25)))["image"]
    assert torch.allclose(quarter, default / 4, atol=1e-6)


def run_sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUNDLE_ROOT / "scripts" / "attack_sweep.py"), "pgd", *args],
                          capture_output=True, text=True)


def test_dataset_dir_without_datalist_is_refused_and_left_empty(tmp_path):
    result = run_sweep("--dataset_dir", str(tmp_path), "untargeted,iou,0.02")
    assert result.returncode == 2
    assert f"--dataset_dir {tmp_path} has no datalist.json" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_reversed_model_range_is_refused():
    result = run_sweep("--model_range", "0.25", "-0.25", "untargeted,iou,0.02")
    assert result.returncode == 2
    assert "--model_range 0.25 -0.25 is empty; give the low bound first" in result.stderr

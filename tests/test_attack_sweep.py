"""scripts/attack_sweep.py: the measurement script of docs/attacks.md reads the data it claims to read."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

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


def run_sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUNDLE_ROOT / "scripts" / "attack_sweep.py"), "pgd", *args],
                          capture_output=True, text=True)


def test_dataset_dir_without_datalist_is_refused_and_left_empty(tmp_path):
    result = run_sweep("--dataset_dir", str(tmp_path), "untargeted,iou,0.02")
    assert result.returncode == 2
    assert f"--dataset_dir {tmp_path} has no datalist.json" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_reversed_intensity_bounds_are_refused(tmp_path):
    result = run_sweep("--intensity_bounds", "0.25", "-0.25", "untargeted,iou,0.02")
    assert result.returncode == 2
    assert "Option intensity_bounds should be [low, high], two finite numbers with low < high" in result.stderr

"""scripts/attack_sweep.py: the measurement script of docs/attacks.md reads the data it claims to read."""

from __future__ import annotations

import subprocess
import sys

from bundle.config import BUNDLE_ROOT


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


def test_a_grid_the_u_nets_cannot_halve_is_refused():
    result = run_sweep("--model_grid", "500", "500", "untargeted,iou,0.02")
    assert result.returncode == 2
    assert "Option model_grid should be [H, W], two positive multiples of 16" in result.stderr

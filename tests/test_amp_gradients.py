"""scripts/amp_gradients.py: the mixed-precision gradient table of docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bundle.config import BUNDLE_ROOT


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUNDLE_ROOT / "scripts" / "amp_gradients.py"), *args],
                          capture_output=True, text=True)


def test_scaled_float16_gradients_keep_their_signs_and_unscaled_ones_do_not():
    result = run_script("--cases", "2")
    assert result.returncode == 0, result.stderr
    rows = [line.strip("|").split("|") for line in result.stdout.splitlines() if line.startswith("| pgd")]
    assert len(rows) == 12  # 3 losses x 2 dtypes x (unscaled, scaled)
    for attack, dtype, factor, zeros, _, agreement, _ in (map(str.strip, row) for row in rows):
        if dtype == "float16" and factor == "65536":
            assert float(zeros) < 0.001 and float(agreement) >= 0.97, (attack, zeros, agreement)
        if dtype == "float16" and factor == "1":  # what loss_scale is for: underflow to 0, wrong signs
            assert float(zeros) > 0.01 and float(agreement) < 0.95, (attack, zeros, agreement)
    assert sum(line.startswith("| asma") for line in result.stdout.splitlines()) == 2


def test_a_single_case_is_refused():
    result = run_script("--cases", "1")
    assert result.returncode == 2 and "--cases should be at least 2 (ASMA's target is another case's label), got 1" \
        in result.stderr


def test_a_device_torch_does_not_know_is_refused():
    result = run_script("--device", "gpu")
    assert result.returncode == 2 and "--device gpu is not a torch device; use cpu or cuda" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_cuda_without_a_cuda_device_is_refused():
    result = run_script("--device", "cuda")
    assert result.returncode == 2 and "--device cuda: this torch sees no CUDA device; use --device cpu" in result.stderr

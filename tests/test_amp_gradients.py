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


def test_scaled_float16_gradients_keep_their_signs_and_are_no_worse_than_unscaled_ones():
    """What holds on any processor: with ``loss_scale`` float16 gradients have no more zeros than bfloat16's (which
    has float32's exponent range, so its zeros are the loss's own, e.g. the margin's satisfied pixels, not underflow)
    and keep their signs, and scaling never makes them worse (a power-of-two factor is exact unless something
    underflows). The share of signs kept depends on the model's gradients: 98.2 % for the version-2 CXR model,
    96.9 % for version 3, whose gradients are eight times larger, so float16's rounding sets it (docs/benchmarks.md);
    97.0 % for version 4. The margin's own zeros (its satisfied pixels) depend on the forward pass's precision, so
    float16's may differ from bfloat16's by a few pixels (0.20 % against 0.19 % on the version-4 model): 0.1 % of
    slack, against 0.7 to 6.5 % of zeros for unscaled float16 on the processors measured.
    How wrong the unscaled ones are depends on the processor's float16 kernels (3.6 % zeros on the machine of
    docs/benchmarks.md, 0.73 % on another), so that figure is in the benchmarks, not asserted here."""
    result = run_script("--cases", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| pgd")]
    assert len(rows) == 12 and all(len(r) == 7 for r in rows)  # 3 losses x 2 dtypes x (unscaled, scaled)
    table = {(attack, dtype, factor): (float(zeros), float(agreement))
             for attack, dtype, factor, zeros, _, agreement, _ in rows}
    assert all(0 <= z <= 1 and 0 <= a <= 1 for z, a in table.values())
    for attack in ("pgd, iou", "pgd, ce", "pgd, margin"):
        (zeros, agreement), (zeros_1, agreement_1) = table[attack, "float16", "65536"], table[attack, "float16", "1"]
        zeros_bf16 = table[attack, "bfloat16", "65536"][0]
        assert zeros <= zeros_bf16 + 0.001 and agreement >= 0.96, (attack, zeros, zeros_bf16, agreement)
        assert zeros <= zeros_1 and agreement >= agreement_1, (attack, zeros, zeros_1, agreement, agreement_1)
    assert sum(line.startswith("| asma") for line in lines) == 2


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

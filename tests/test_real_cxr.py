"""scripts/real_cxr.py: the real-radiograph measures on known answers, and one real run of the script."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from bundle.config import BUNDLE_ROOT

SCRIPT = BUNDLE_ROOT / "scripts" / "real_cxr.py"
_spec = importlib.util.spec_from_file_location("real_cxr", SCRIPT)
real_cxr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_cxr)

SHAPE = (1955, 1841)


@pytest.fixture(scope="module")
def reference():
    return json.loads(real_cxr.REFERENCE.read_text())


def _label(masks):
    pred = np.zeros(SHAPE, np.uint8)
    for name, value in real_cxr.CLASSES.items():
        pred[masks[name]] = value
    return pred


def test_reference_against_itself(reference):
    masks = real_cxr.reference_masks(reference, SHAPE)
    result = real_cxr.measures(_label(masks), reference)
    for name in ("right_lung", "left_lung"):
        assert result[name]["dice"] > 0.99 and result[name]["correct_side_share"] == 1.0  # shared borders: heart wins
        assert result[name]["components"] == 1
    assert result["heart"]["centroid_side"] == "patient's left" and result["heart"]["dice"] > 0.99


def test_swapped_lungs_are_on_the_wrong_side(reference):
    """A model that labels each lung field with the other lung's value: Dice 0 and no pixel on its side."""
    masks = real_cxr.reference_masks(reference, SHAPE)
    swapped = {"right_lung": masks["left_lung"], "left_lung": masks["right_lung"], "heart": masks["heart"]}
    result = real_cxr.measures(_label(swapped), reference)
    for name in ("right_lung", "left_lung"):
        assert result[name]["dice"] == 0.0 and result[name]["correct_side_share"] == 0.0


def test_fragments_are_counted(reference):
    masks = real_cxr.reference_masks(reference, SHAPE)
    pred = _label(masks)
    pred[::200, :] = 0  # cut every structure by horizontal lines
    result = real_cxr.measures(pred, reference)
    assert result["right_lung"]["components"] >= 6 and result["right_lung"]["largest_component_share"] < 0.4


def test_script_runs_on_the_real_radiograph(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--output", str(tmp_path), "--name", "t"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "real_cxr_t.json").read_text())
    assert set(result) == {"right_lung", "left_lung", "heart"} and (tmp_path / "real_cxr_t.png").is_file()
    assert "| t | heart |" in done.stdout


def test_a_missing_model_is_named_and_nothing_written(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tmp_path / "none.pt"), "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Option --model: " in done.stderr and "none.pt does not exist" in done.stderr
    assert not (tmp_path / "out").exists()

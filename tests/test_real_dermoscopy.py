"""scripts/real_dermoscopy.py: the measures, the reference outline and one run on the real skin photograph."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bundle.config import BUNDLE_ROOT

sys.path.insert(0, str(BUNDLE_ROOT / "scripts"))
import real_dermoscopy  # noqa: E402


def disc_at(cx: float, cy: float, r: float, shape=(200, 200)) -> np.ndarray:
    yy, xx = np.indices(shape)
    return np.hypot(xx - cx, yy - cy) < r


def test_measures_known_answers():
    lesion = disc_at(100, 100, 40)
    same = real_dermoscopy.measures(lesion, lesion)
    assert same["dice"] == pytest.approx(1.0) and same["centre_error"] == pytest.approx(0.0, abs=1e-9)
    assert same["area_ratio"] == pytest.approx(1.0) and same["pieces"] == 1 and same["outside"] == 0.0
    two = disc_at(100, 100, 40) | disc_at(20, 20, 10)  # the lesion and a blob in the skin
    m = real_dermoscopy.measures(two, lesion)
    assert m["pieces"] == 2 and m["outside"] == pytest.approx(disc_at(20, 20, 10).mean())
    shifted = real_dermoscopy.measures(disc_at(120, 100, 40), lesion)
    assert shifted["centre_error"] == pytest.approx(0.5, abs=0.02)  # 20 px of a 40 px radius
    empty = real_dermoscopy.measures(np.zeros_like(lesion), lesion)
    assert empty["dice"] == 0.0 and empty["pieces"] == 0 and np.isnan(empty["centre_error"])


def test_reference_outline():
    annotation = json.loads(real_dermoscopy.ANNOTATION.read_text())
    for key in ("description", "how", "by", "uncertainty"):
        assert annotation[key]
    lesion = real_dermoscopy.reference_mask(annotation)
    assert lesion.shape == (1360, 1528)
    diameter = 2 * np.sqrt(lesion.sum() / np.pi)
    assert 50 < diameter < 62  # the naevus is about 56 pixels across
    cy, cx = np.argwhere(lesion).mean(0)
    assert abs(cy - 693) < 10 and abs(cx - 616) < 10


def test_real_photograph_run(tmp_path, capsys):
    """The shipped model on the whole photograph and on naevus-centred crops (needs bash scripts/setup.sh's copy)."""
    figure = tmp_path / "overlay.png"
    assert real_dermoscopy.main(["--crops", "3", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "| whole photograph | 0.1 % |" in out and "| naevus crop (3 diameters) |" in out
    assert figure.is_file()


def test_a_missing_photograph_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVSEG_REAL_IMAGES", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        real_dermoscopy.main(["--figure", "none"])
    assert exit_.value.code == 2
    assert "bash scripts/setup.sh unpacks it from the dermapred 0.0.3 wheel" in capsys.readouterr().err

"""scripts/real_fundus.py: the measures, the reference annotation and one run on the real photograph."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bundle.config import BUNDLE_ROOT

sys.path.insert(0, str(BUNDLE_ROOT / "scripts"))
import real_fundus  # noqa: E402


def disc_at(cx: float, cy: float, r: float, shape=(200, 200)) -> np.ndarray:
    yy, xx = np.indices(shape)
    return np.hypot(xx - cx, yy - cy) < r


def test_measures_known_answers():
    disc, cup = disc_at(100, 100, 40), disc_at(100, 100, 15)
    pred = disc.astype(np.uint8) + cup
    m = real_fundus.measures(pred, disc, cup)
    assert m["disc_dice"] == pytest.approx(1.0) and m["cup_dice"] == pytest.approx(1.0)
    assert m["centre_error"] == pytest.approx(0.0, abs=1e-9) and m["area_ratio"] == pytest.approx(1.0)
    shifted = real_fundus.measures(disc_at(120, 100, 40).astype(np.uint8), disc, cup)
    assert shifted["centre_error"] == pytest.approx(0.5, abs=0.02)  # 20 px of a 40 px radius
    assert shifted["cup_dice"] == 0.0
    empty = real_fundus.measures(np.zeros_like(pred), disc, cup)
    assert empty["disc_dice"] == 0.0 and np.isnan(empty["centre_error"])


def test_crop_pads_outside_with_zeros():
    a = np.arange(1, 101, dtype=np.uint8).reshape(10, 10)
    out = real_fundus.crop(a, (-2, 5, 6))
    assert out.shape == (6, 6)
    assert (out[:, :2] == 0).all() and (out[5:] == 0).all()
    np.testing.assert_array_equal(out[:5, 2:], a[5:10, 0:4])


def test_reference_annotation():
    annotation = json.loads(real_fundus.ANNOTATION.read_text())
    for key in ("description", "how", "by", "uncertainty"):
        assert annotation[key]
    disc, cup = real_fundus.reference_masks(annotation, tuple(annotation["image_size"]))
    radius = np.sqrt(disc.sum() / np.pi)
    assert 70 < radius < 110  # the disc is about 13 % of the 1393-pixel field
    assert cup.sum() < disc.sum() and (cup & ~disc).sum() == 0
    x0, y0, side = real_fundus.crop_box(disc, 2.5)
    assert side == round(5 * radius)


@pytest.mark.slow
def test_real_photograph_run(tmp_path, capsys):
    figure = tmp_path / "overlay.png"
    assert real_fundus.main(["--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "| whole field |" in out and "| disc crop (2.5 disc diameters) |" in out
    assert figure.stat().st_size > 10_000

"""Procedural fundus and dermoscopy phantoms: determinism, label structure, and threshold-hardness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bundle.data.dermoscopy import generate_dermoscopy
from bundle.data.fundus import FRAMINGS, generate_fundus

SEEDS = range(8)  # seeds 0-7 hold both framings and both eyes
FUNDUS_SIZE = 384  # smaller than the default 512 to keep the suite fast; geometry scales with size
DERM_SIZE = (288, 384)


@pytest.fixture(scope="module")
def fundus_cases():
    return [generate_fundus(np.random.default_rng(s), size=FUNDUS_SIZE) for s in SEEDS]


@pytest.fixture(scope="module")
def derm_cases():
    return [generate_dermoscopy(np.random.default_rng(s), size=DERM_SIZE) for s in SEEDS]


def best_threshold_dice(image: np.ndarray, mask: np.ndarray) -> float:
    """Best Dice of ``gray < t`` or ``gray >= t`` against ``mask`` over all 256 thresholds."""
    gray = np.rint(image.astype(np.float64).mean(-1)).astype(np.int64)
    fg = np.bincount(gray[mask], minlength=256)
    bg = np.bincount(gray[~mask], minlength=256)
    best = 0.0
    for f, b in ((fg, bg), (fg[::-1], bg[::-1])):  # dark-is-foreground, bright-is-foreground
        tp = np.cumsum(f)
        predicted = tp + np.cumsum(b)
        best = max(best, float((2 * tp / (mask.sum() + predicted)).max()))
    return best


def test_best_threshold_dice_known_answer():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:5] = 200
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    assert best_threshold_dice(img, mask) == pytest.approx(1.0)
    assert best_threshold_dice(img, ~mask) == pytest.approx(1.0)
    mask[:, :5] = ~mask[:, :5]  # checkerboard of quadrants: no threshold does better than 2/3
    assert best_threshold_dice(img, mask) == pytest.approx(2 / 3)


@pytest.mark.parametrize("gen, size", [(generate_fundus, 128), (generate_dermoscopy, (96, 128))])
def test_deterministic_by_seed(gen, size):
    a = gen(np.random.default_rng(7), size=size)
    b = gen(np.random.default_rng(7), size=size)
    c = gen(np.random.default_rng(8), size=size)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_fundus_arrays(fundus_cases):
    for image, label, info in fundus_cases:
        assert image.shape == (FUNDUS_SIZE, FUNDUS_SIZE, 3) and image.dtype == np.uint8
        assert label.shape == (FUNDUS_SIZE, FUNDUS_SIZE) and label.dtype == np.uint8
        assert set(np.unique(label)) == {0, 1, 2}
        assert info["eye"] in ("left", "right") and info["framing"] in FRAMINGS
        # disc size relative to the field: RIM-ONE-like crops and REFUGE-like whole fields
        low, high = (0.17, 0.45) if info["framing"] == "disc" else (0.08, 0.16)
        assert low <= info["disc_diameter"] * (1 if info["framing"] == "disc" else 1 / info["field_diameter"]) <= high
        disc_area = (label > 0).sum() / FUNDUS_SIZE ** 2
        assert disc_area == pytest.approx(np.pi / 4 * info["disc_diameter"] ** 2, rel=0.35)
        if info["framing"] == "field":
            assert image[0, 0].max() < 20 and image[-1, -1].max() < 20  # black outside the field of view


def test_fundus_both_framings_and_eyes(fundus_cases):
    assert {info["framing"] for _, _, info in fundus_cases} == set(FRAMINGS)
    assert {info["eye"] for _, _, info in fundus_cases} == {"left", "right"}


def test_fundus_default_size():
    image, label, _ = generate_fundus(np.random.default_rng(0))
    assert image.shape == (512, 512, 3) and label.shape == (512, 512)


def test_fundus_cup_inside_disc_and_cdr(fundus_cases):
    for _, label, info in fundus_cases:
        cup, disc = label == 2, label > 0
        # the cup never touches background: a rim separates them everywhere
        assert not (ndimage.binary_dilation(cup) & (label == 0)).any()
        assert ndimage.label(cup)[1] == 1 and ndimage.label(disc)[1] == 1
        cup_rows, disc_rows = np.flatnonzero(cup.any(1)), np.flatnonzero(disc.any(1))
        cdr = (cup_rows[-1] - cup_rows[0] + 1) / (disc_rows[-1] - disc_rows[0] + 1)
        assert info["cdr"] == pytest.approx(cdr, abs=1e-3)
        assert 0.2 <= info["cdr"] <= 0.8


def test_fundus_disc_nasal_of_macula(fundus_cases):
    for _, label, info in fundus_cases:
        disc_x = np.nonzero(label > 0)[1].mean()
        # right eye: disc on the image right of the macula; left eye: mirrored
        side = 1 if info["eye"] == "right" else -1
        assert side * (disc_x - info["macula_center"][0]) > 0
        if info["framing"] == "field":
            assert side * (disc_x - FUNDUS_SIZE / 2) > 0


def test_fundus_cdr_spread():
    cdrs = [generate_fundus(np.random.default_rng(100 + s), size=96)[2]["cdr"] for s in range(12)]
    assert min(cdrs) < 0.4 and max(cdrs) > 0.6


def test_fundus_not_threshold_solvable(fundus_cases):
    disc = [best_threshold_dice(im, lb > 0) for im, lb, _ in fundus_cases]
    cup = [best_threshold_dice(im, lb == 2) for im, lb, _ in fundus_cases]
    assert np.mean(disc) < 0.85, disc
    assert np.mean(cup) < 0.85, cup


def test_dermoscopy_arrays(derm_cases):
    for image, label, info in derm_cases:
        assert image.shape == DERM_SIZE + (3,) and image.dtype == np.uint8
        assert label.shape == DERM_SIZE and label.dtype == np.uint8
        assert set(np.unique(label)) == {0, 1}
        assert 0.03 <= label.mean() <= 0.62  # renderer 2: lesions from 5 % of the field (less where a frame cuts them)
        assert info["area_fraction"] == pytest.approx(label.mean(), abs=1e-3)


def test_dermoscopy_default_size():
    image, label, _ = generate_dermoscopy(np.random.default_rng(0))
    assert image.shape == (384, 512, 3) and label.shape == (384, 512)


def test_dermoscopy_small_pictures_enlarged_are_smoother():
    """Renderer 2 renders some cases as a small picture enlarged (as a crop of a phone photograph is): those keep
    less of their power at fine scales than the cases rendered at full size."""
    def fine_share(image):
        gray = image.mean(2) - image.mean()
        power = np.abs(np.fft.fft2(gray)) ** 2
        fy, fx = np.meshgrid(np.fft.fftfreq(gray.shape[0]), np.fft.fftfreq(gray.shape[1]), indexing="ij")
        return power[np.hypot(fy, fx) > 0.125].sum() / power.sum()

    shares = {True: [], False: []}
    for seed in range(24):
        image, _, info = generate_dermoscopy(np.random.default_rng(seed), size=(192, 256))
        shares[info["enlarged"] > 2].append(fine_share(image))
    assert shares[True] and shares[False]
    assert max(shares[True]) < np.median(shares[False]), shares


def test_dermoscopy_lesion_area_and_shift_are_options_checked_and_followed():
    """The training stream's keywords (docs/training.md): the lesion's share of the field and its centre's spread."""
    size = (96, 128)
    for bad in ({"lesion_area": (0.3, 0.1)}, {"lesion_area": (0.0, 0.5)}, {"lesion_area": 0.2},
                {"lesion_shift": -0.1}, {"lesion_shift": (0.1, 0.2)}):
        with pytest.raises(ValueError, match=f"Argument {next(iter(bad))} should be"):
            generate_dermoscopy(np.random.default_rng(0), size=size, **bad)
    small = [generate_dermoscopy(np.random.default_rng(s), size=size, lesion_area=(0.01, 0.02))[1].mean()
             for s in range(4)]
    assert all(0.005 <= share <= 0.025 for share in small), small
    centre = (np.array(size) - 1) / 2
    offsets = {}
    for shift in (0.0, 0.2):
        labels = [generate_dermoscopy(np.random.default_rng(s), size=size, lesion_area=(0.05, 0.05),
                                      lesion_shift=shift)[1] for s in range(6)]
        offsets[shift] = [np.hypot(*(np.array(ndimage.center_of_mass(lb)) - centre)) for lb in labels]
    assert max(offsets[0.0]) < 6 < np.median(offsets[0.2]), offsets


def test_dermoscopy_not_threshold_solvable(derm_cases):
    dice = [best_threshold_dice(im, lb > 0) for im, lb, _ in derm_cases]
    assert np.mean(dice) < 0.85, dice


@pytest.mark.parametrize("gen, bad", [(generate_fundus, 32), (generate_fundus, 100.0),
                                      (generate_dermoscopy, (32, 64)), (generate_dermoscopy, 256)])
def test_bad_size(gen, bad):
    with pytest.raises(ValueError, match="Argument size should be"):
        gen(np.random.default_rng(0), size=bad)

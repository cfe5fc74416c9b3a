"""Tests of bundle.targets on tiny synthetic CXR-like label maps (64 x 64)."""

from __future__ import annotations

import pytest
import torch

from bundle.targets import derangement, heart_symbol_target, resize_target, swap_targets

BG, R_LUNG, L_LUNG, HEART, R_CLAV, L_CLAV = range(6)


def _ellipse(h: int, w: int, centre: tuple[float, float], axes: tuple[float, float]) -> torch.Tensor:
    r = torch.arange(h, dtype=torch.float64)[:, None]
    c = torch.arange(w, dtype=torch.float64)[None, :]
    return ((r - centre[0]) / axes[0]) ** 2 + ((c - centre[1]) / axes[1]) ** 2 <= 1


def _cxr(shift: int = 0, heart_axes: tuple[float, float] = (10, 12)) -> torch.Tensor:
    """(1, 1, 64, 64) label painted like SCR: lungs, then heart, then clavicles (crossing the lung apices)."""
    lab = torch.zeros(64, 64, dtype=torch.long)
    lab[8:56, 4:28] = R_LUNG
    lab[8:56, 36:60] = L_LUNG
    lab[_ellipse(64, 64, (38.5 + shift, 31.5 + shift), heart_axes)] = HEART
    lab[22:27, 8:29] = R_CLAV
    lab[22:27, 35:56] = L_CLAV
    return lab[None, None]


@pytest.fixture
def cxr() -> torch.Tensor:
    return _cxr()


def _bbox(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _centroid(mask: torch.Tensor) -> torch.Tensor:
    return mask.nonzero().double().mean(0)


def _runs(row: torch.Tensor) -> int:
    """Number of separate runs of true pixels in a 1-D bool tensor."""
    padded = torch.cat((torch.zeros(1, dtype=torch.bool), row))
    return int((padded[1:] & ~padded[:-1]).sum())


# ---------------------------------------------------------------- heart symbol


def test_small_symbol_inside_heart_bbox_and_heart_shaped(cxr):
    out = heart_symbol_target(cxr, "small")
    assert out.shape == cxr.shape and out.dtype == torch.long
    symbol, heart = out[0, 0] == HEART, cxr[0, 0] == HEART
    r0, r1, c0, c1 = _bbox(heart)
    s0, s1, t0, t1 = _bbox(symbol)
    assert r0 <= s0 and s1 <= r1 and c0 <= t0 and t1 <= c1
    assert symbol.sum() > 0.4 * (s1 - s0 + 1) * (t1 - t0 + 1)  # a filled shape, not an outline
    assert _runs(symbol[s0]) == 2  # two lobes on top
    assert not symbol[s0 : s0 + 2, (t0 + t1) // 2 : (t0 + t1 + 1) // 2 + 1].any()  # notch at the top centre
    height = s1 - s0
    top, bottom = symbol[s0 + height // 4].sum(), symbol[s1 - height // 4].sum()
    assert top > bottom  # the point is at the bottom
    assert symbol[s1].sum() <= 2
    # its bounding-box centre sits on the heart centroid
    centre = torch.tensor([(s0 + s1) / 2, (t0 + t1) / 2], dtype=torch.float64)
    assert torch.allclose(centre, _centroid(heart), atol=1.0)


def test_small_symbol_keeps_other_classes_and_vacates_heart(cxr):
    out = heart_symbol_target(cxr, "small")
    symbol, heart = out == HEART, cxr == HEART
    assert (out[heart & ~symbol] == BG).all() and (heart & ~symbol).any()
    assert torch.equal(out[~heart & ~symbol], cxr[~heart & ~symbol])


def test_large_symbol_reaches_into_lungs_but_not_clavicles(cxr):
    out = heart_symbol_target(cxr, "large")
    heart, clavicle = cxr == HEART, (cxr == R_CLAV) | (cxr == L_CLAV)
    lung = (cxr == R_LUNG) | (cxr == L_LUNG)
    full = heart_symbol_target(torch.where(clavicle, 0, cxr), "large") == HEART  # the symbol without clavicles
    r0, r1, c0, c1 = _bbox(heart[0, 0])
    s0, s1, t0, t1 = _bbox(full[0, 0])
    assert s0 < r0 and s1 > r1 and t0 < c0 and t1 > c1
    assert (full & lung).any() and (out[full & lung] == HEART).all()
    assert (full & clavicle).any() and torch.equal(out[clavicle], cxr[clavicle])
    assert torch.equal(out == HEART, full & ~clavicle)
    assert (out[heart & ~full] == BG).all()
    assert torch.equal(out[~heart & ~full], cxr[~heart & ~full])


def test_float_size_sets_symbol_width(cxr):
    _, _, c0, c1 = _bbox(cxr[0, 0] == HEART)
    for size in (0.5, 1.2):
        _, _, t0, t1 = _bbox(heart_symbol_target(cxr, size)[0, 0] == HEART)
        assert abs((t1 - t0 + 1) - size * (c1 - c0 + 1)) <= 2


def test_heart_symbol_batch_matches_single_samples():
    labels = torch.cat([_cxr(0), _cxr(3, (8, 9)), _cxr(-2, (11, 14))])
    for size in ("small", "large", 0.9):
        out = heart_symbol_target(labels, size)
        for i in range(3):
            assert torch.equal(out[i : i + 1], heart_symbol_target(labels[i : i + 1], size))


def test_heart_symbol_custom_class_and_priority():
    lab = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    lab[0, 0, 10:50, 10:50] = 2
    lab[0, 0, _ellipse(64, 64, (30, 30), (8, 8))] = 1  # heart as class 1, drawn over a class-2 region
    wins = heart_symbol_target(lab, "large", heart_class=1, priority=[2, 1])  # 1 has higher priority
    loses = heart_symbol_target(lab, "large", heart_class=1)  # default: 2 beats 1
    assert (wins[lab == 2] == 1).any()
    assert torch.equal(loses[lab == 2], lab[lab == 2])


# ---------------------------------------------------------------- resizing


def _heart_only() -> torch.Tensor:
    lab = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    lab[0, 0, _ellipse(64, 64, (30.2, 33.7), (9, 11))] = HEART
    return lab


def test_resize_identity(cxr):
    for cls in (R_LUNG, HEART, L_CLAV):
        assert torch.equal(resize_target(cxr, cls, 1.0), cxr)


@pytest.mark.parametrize("factor", [0.5, 1.5])
def test_resize_scales_area_and_keeps_centroid(factor):
    lab = _heart_only()
    out = resize_target(lab, HEART, factor)
    before, after = lab[0, 0] == HEART, out[0, 0] == HEART
    assert after.sum() / before.sum() == pytest.approx(factor**2, rel=0.12)
    assert torch.allclose(_centroid(after), _centroid(before), atol=0.75)
    assert (out[0, 0][before & ~after] == BG).all()


def test_resize_priority_and_vacated_pixels(cxr):
    heart, clavicle = cxr == HEART, (cxr == R_CLAV) | (cxr == L_CLAV)
    big = resize_target(cxr, HEART, 1.6)
    grown = (resize_target(torch.where(clavicle, 0, cxr), HEART, 1.6) == HEART) & ~heart
    assert (grown & (cxr == R_LUNG)).any() and (big[grown & (cxr == R_LUNG)] == HEART).all()
    assert (grown & clavicle).any() and torch.equal(big[clavicle], cxr[clavicle])
    small = resize_target(cxr, R_LUNG, 0.5)
    lung = cxr == R_LUNG
    assert (small[lung & (small != R_LUNG)] == BG).all()
    assert torch.equal(small[~lung], cxr[~lung])  # a shrunken lung never covers heart or clavicle


def test_resize_fill_and_priority_for_fundus():
    lab = torch.zeros(1, 1, 48, 48, dtype=torch.long)
    lab[0, 0, _ellipse(48, 48, (24, 24), (16, 16))] = 1  # disc rim
    lab[0, 0, _ellipse(48, 48, (24, 24), (8, 8))] = 2  # cup
    shrunk = resize_target(lab, 2, 0.5, fill=1)
    assert torch.equal(shrunk != 0, lab != 0)  # the disc keeps its outline, the cup's old pixels become rim
    assert (shrunk == 2).sum() < (lab == 2).sum()
    blocked = resize_target(lab, 2, 1.5, priority=[2, 1])  # rim outranks cup: the cup cannot grow
    assert torch.equal(blocked, lab)


def test_resize_batch_matches_single_samples_with_per_sample_factor():
    labels = torch.cat([_cxr(0), _cxr(3, (8, 9)), _cxr(-2, (11, 14))])
    factors = torch.tensor([0.4, 1.0, 1.8])
    out = resize_target(labels, HEART, factors)
    for i in range(3):
        assert torch.equal(out[i : i + 1], resize_target(labels[i : i + 1], HEART, float(factors[i])))
    assert torch.equal(out[1], labels[1])


# ---------------------------------------------------------------- swapping


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_derangement_is_seeded_derangement(n):
    perm = derangement(n, seed=7)
    assert perm.dtype == torch.long and torch.equal(perm.sort().values, torch.arange(n))
    assert not (perm == torch.arange(n)).any()
    assert torch.equal(perm, derangement(n, seed=7))


def test_derangement_depends_on_seed():
    assert not torch.equal(derangement(8, seed=0), derangement(8, seed=1))


def test_swap_targets_takes_other_cases():
    labels = torch.stack([torch.full((1, 8, 8), i, dtype=torch.long) for i in range(6)])
    out = swap_targets(labels, seed=3)
    taken = out[:, 0, 0, 0]
    assert torch.equal(taken, derangement(6, seed=3))
    assert not (taken == torch.arange(6)).any()
    assert torch.equal(swap_targets(labels, seed=3), out)
    assert not torch.equal(swap_targets(labels, seed=4), out)


# ---------------------------------------------------------------- inputs untouched, errors


def test_inputs_are_not_modified():
    labels = torch.cat([_cxr(0), _cxr(2, (9, 10))])
    before = labels.clone()
    outputs = [
        heart_symbol_target(labels, "large"),
        resize_target(labels, HEART, 1.0),
        resize_target(labels, R_LUNG, 0.6),
        swap_targets(labels),
    ]
    assert torch.equal(labels, before)
    assert all(o.data_ptr() != labels.data_ptr() for o in outputs)


def test_heart_symbol_errors(cxr):
    message = r"Argument size should be 'small', 'large' or a positive float, got 'medium'\."
    with pytest.raises(ValueError, match=message):
        heart_symbol_target(cxr, "medium")
    with pytest.raises(ValueError, match=r"did you mean 'small'"):
        heart_symbol_target(cxr, "smal")
    with pytest.raises(ValueError, match=r"Argument size should be .* got -1\.0\."):
        heart_symbol_target(cxr, -1.0)
    with pytest.raises(TypeError, match=r"Argument size should be .* got None\."):
        heart_symbol_target(cxr, None)
    no_heart = torch.cat([cxr, torch.where(cxr == HEART, 0, cxr)])
    with pytest.raises(ValueError, match=r"Sample 1 has no pixel of class 3 \(heart\)"):
        heart_symbol_target(no_heart)
    with pytest.raises(ValueError, match=r"Argument heart_class should be a positive int"):
        heart_symbol_target(cxr, heart_class=0)
    with pytest.raises(ValueError, match=r"Argument priority should list every class .* missing \[4, 5\]"):
        heart_symbol_target(cxr, priority=[1, 2, 3])


def test_resize_errors(cxr):
    for bad in (0.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match=r"Argument factor should be a positive float, got"):
            resize_target(cxr, HEART, bad)
    with pytest.raises(ValueError, match=r"Argument factor should be a positive float, got \[1.0, -1.0\]"):
        resize_target(torch.cat([cxr, cxr]), HEART, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"Argument factor should be .* tensor of shape \(1,\), .* shape \(2,\)"):
        resize_target(cxr, HEART, torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"Argument factor should be a positive float, got 'big'"):
        resize_target(cxr, HEART, "big")
    with pytest.raises(ValueError, match=r"Sample 0 has no pixel of class 7"):
        resize_target(cxr, 7, 1.2)
    with pytest.raises(ValueError, match=r"Argument fill should be a non-negative int other than cls=3"):
        resize_target(cxr, HEART, 1.2, fill=3)


def test_label_and_swap_errors(cxr):
    with pytest.raises(TypeError, match=r"Argument label should be an integer tensor, got torch.float32"):
        heart_symbol_target(cxr.float())
    with pytest.raises(ValueError, match=r"Argument label should have shape \(B, 1, H, W\), got \(1, 64, 64\)"):
        resize_target(cxr[0], HEART, 1.0)
    with pytest.raises(ValueError, match=r"Argument label should hold values >= 0, got -5\."):
        swap_targets(torch.cat([cxr, -cxr]))
    with pytest.raises(ValueError, match=r"Argument labels should hold at least 2 cases .* got 1\."):
        swap_targets(cxr)
    with pytest.raises(ValueError, match=r"Argument n should be at least 2 .* got 1\."):
        derangement(1)
    with pytest.raises(TypeError, match=r"Argument seed should be an int, got float"):
        derangement(3, seed=0.5)

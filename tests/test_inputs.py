"""A run's cases from the user's own files, edited targets, per-case timing and the clean-prediction warning."""

import functools
import shutil

import pytest
import torch

from bundle.attacks import asma, pgd
from bundle.config import asma_cases, run_cases
from bundle.handlers.attack import StepClock
from bundle.inputs import case_ids, expand_inputs
from bundle.metrics import implausible_structures, structure_pieces
from bundle.targets import edited_target
from test_attacks import linear_segmenter, make_case

FUNDUS = ["background", "disc_rim", "cup"]


def test_case_ids_are_stems_unless_two_inputs_share_one():
    assert case_ids(["/d/x/a.dcm", "/d/y/b.dcm"]) == ["a", "b"]
    assert case_ids(["/d/x/scan.dcm", "/d/y/scan.dcm", "/d/y/other.dcm"]) == ["x_scan", "y_scan", "other"]
    assert case_ids(["/d/scan.dcm", "/d/scan.png"]) == ["scan_dcm", "scan_png"]
    assert case_ids(["/d/a b/scan 1.dcm"]) == ["scan_1"]  # safe for a folder name


def test_inputs_are_files_globs_and_folders_each_once(tmp_path):
    for name in ("a/1.png", "a/sub/2.jpg", "a/notes.txt", "a/.hidden.png", "b/3.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    shutil.copy(__import__("pydicom.data", fromlist=["x"]).get_testdata_file("CT_small.dcm"), tmp_path / "a" / "IM0001")
    found = expand_inputs([tmp_path / "a", str(tmp_path / "b" / "*.png"), tmp_path / "a" / "1.png"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/1.png", "a/IM0001", "a/sub/2.jpg", "b/3.png"]
    with pytest.raises(FileNotFoundError, match=r"Option input_files: folder .*empty holds no image file"):
        (tmp_path / "empty").mkdir()
        expand_inputs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"Option input_files: pattern '.*\*.bmp' matches no file"):
        expand_inputs(str(tmp_path / "*.bmp"))


def test_unlabelled_inputs_need_a_target_for_asma_and_get_one_per_input(tmp_path):
    for name in ("x.png", "y.png", "tx.png", "ty.png"):
        (tmp_path / name).write_bytes(b"x")
    items = run_cases("fundus", tmp_path, "test", None, [str(tmp_path / "x.png"), str(tmp_path / "y.png")])
    assert [i["case"] for i in items] == ["x", "y"] and "label" not in items[0]
    with pytest.raises(ValueError, match="ASMA on your own images needs a target"):
        asma_cases(items)
    paired = asma_cases(items, [str(tmp_path / "tx.png"), str(tmp_path / "ty.png")])
    assert [p["target"].endswith(t) for p, t in zip(paired, ("tx.png", "ty.png"))] == [True, True]
    with pytest.raises(ValueError, match="Option target_files: 1 target for 2 inputs"):
        asma_cases(items, str(tmp_path / "tx.png"))
    with pytest.raises(ValueError, match="Options target_files and target_edit exclude each other"):
        asma_cases(items, str(tmp_path / "tx.png"), "remove:cup")
    assert asma_cases(items, None, "remove:cup") == items


def disc_with_cup():
    label = torch.zeros(2, 1, 32, 32, dtype=torch.long)
    label[:, :, 6:26, 6:26] = 1
    label[0, :, 12:20, 12:20] = 2
    label[1, :, 10:16, 14:20] = 2
    return label


def test_edits_remove_shift_and_scale_a_structure_sample_by_sample():
    label = disc_with_cup()
    removed = edited_target(label, "remove:cup", FUNDUS)
    assert set(removed.unique().tolist()) == {0, 1} and torch.equal(removed == 0, label == 0)  # the rim fills it
    shifted = edited_target(label, "shift:cup:0.125,-0.0625", FUNDUS)  # 4 rows down, 2 columns left
    assert torch.equal(shifted[0, 0, 16:24, 10:18], torch.full((8, 8), 2)) and (shifted[0] == 2).sum() == 64
    scaled = edited_target(label, "scale:2:1.5", FUNDUS)
    assert ((scaled == 2).sum((1, 2, 3)).float() / (label == 2).sum((1, 2, 3)).float() > 2.0).all()
    assert torch.equal(edited_target(label[1:], "scale:cup:1.5", FUNDUS), scaled[1:])  # batch invariance
    assert torch.equal(label, disc_with_cup())  # the input is not modified
    with pytest.raises(ValueError, match=r"Sample 1 has no pixel of class 2 \(cup\)"):
        edited_target(torch.stack([label[0], (label[1] > 0).long()]), "remove:cup", FUNDUS)


@pytest.mark.parametrize("attack", [functools.partial(pgd, eps=0.9, alpha=0.05, loss="ce", stop_iou=1.0),
                                    functools.partial(asma, beta=0.005, tau=0.005, stop_iou=1.0)])
def test_each_case_is_timed_until_it_stopped(attack):
    """Sample 0 already shows its target and stops at once; sample 1 needs steps: their seconds differ."""
    net = linear_segmenter(3)
    images, target = make_case(3, 2)
    with torch.no_grad():
        target[0] = net(images[:1]).argmax(1)
    attack = functools.partial(attack, steps=40, bounds=(0.0, 1.0))
    clock = StepClock(2, attack, show=False)
    result = attack(net, images, target, progress=clock)
    seconds = clock.finish()
    assert result.steps[0] == 0 and result.steps[1] > 2
    assert clock.stopped[0] is not None and clock.stopped[1] is None and seconds[0] < seconds[1]
    assert float(clock.score[0]) == 1.0


def test_a_prediction_unlike_training_images_is_named():
    pred = torch.zeros(2, 1, 64, 64, dtype=torch.long)
    pred[0, 0, 10:50, 10:50] = 1
    pred[0, 0, 20:30, 20:30] = 2
    for k in range(5):  # sample 1: the rim in five pieces, no cup
        pred[1, 0, 5 + 12 * k:12 + 12 * k, 5:20] = 1
    assert structure_pieces(pred, 3).tolist() == [[1, 1, 1], [1, 5, 0]]
    assert implausible_structures(pred, FUNDUS) == ["", "disc_rim in 5 pieces; cup missing"]

"""Real-dataset converters (JSRT + SCR, ISIC 2018, RIM-ONE / REFUGE fundus folders) on small files
written here in the datasets' own formats."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from bundle.data.fundus_folder import convert_fundus_folder
from bundle.data.isic import convert_isic
from bundle.data.jsrt import JSRT_BYTES, SCR_STRUCTURES, convert_jsrt, jsrt_splits

REPO = Path(__file__).resolve().parents[1]
JSRT_SPLITS = ("training", "validation", "test", "training_surrogate", "validation_surrogate")


# ---------------------------------------------------------------- helpers

def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (to prove inputs stay untouched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def output_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def load_datalist(folder: Path) -> dict[str, list[dict]]:
    return json.loads((folder / "datalist.json").read_text())


def cases_of(items: list[dict]) -> set[str]:
    return {Path(item["image"]).stem for item in items}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_gray(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)
    return path


def box(shape: tuple[int, int], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


# ---------------------------------------------------------------- JSRT + SCR

# SCR-style masks at 1024 x 1024 (rows, cols), overlapping so that the painting order matters
SCR_BOXES = {
    "right lung": (100, 800, 100, 480),
    "left lung": (100, 800, 540, 920),
    "heart": (500, 850, 350, 750),  # over both lungs' lower inner corners
    "right clavicle": (80, 160, 80, 500),  # over the right lung's top
    "left clavicle": (80, 160, 520, 940),
}


def write_jsrt_case(images: Path, masks: Path, case: str, rng: np.random.Generator, shift: int = 0) -> np.ndarray:
    raw = rng.integers(0, 4096, size=(2048, 2048), dtype=np.uint16)
    images.mkdir(parents=True, exist_ok=True)
    raw.astype(">u2").tofile(images / f"{case}.IMG")  # JSRT: raw big-endian 16-bit words, no header
    for structure, (r0, r1, c0, c1) in SCR_BOXES.items():
        mask = box((1024, 1024), r0 + shift, r1 + shift, c0, c1)
        (masks / structure).mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(masks / structure / f"{case}.gif")
    return raw


@pytest.fixture(scope="module")
def jsrt_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsrt")
    rng = np.random.default_rng(0)
    raws = {c: write_jsrt_case(root / "All247images", root / "masks", c, rng, shift=4 * i)
            for i, c in enumerate(["JPCLN001", "JPCLN002", "JPCNN001", "JPCNN002"])}
    (root / "All247images" / "CLNDAT_EN.txt").write_text("not an image\n")
    before = snapshot(root)
    datalist = convert_jsrt(root / "All247images", root / "masks", root / "out", test_fraction=0.25, seed=3)
    return root, raws, before, datalist


def test_jsrt_dicom_pixels_are_inverted_raw(jsrt_run):
    root, raws, _, _ = jsrt_run
    for case, raw in raws.items():
        ds = pydicom.dcmread(root / "out" / "images" / f"{case}.dcm")
        assert ds.Modality == "DX" and ds.PhotometricInterpretation == "MONOCHROME2"
        assert [float(v) for v in ds.PixelSpacing] == [0.175, 0.175]
        assert ds.PatientID == case
        np.testing.assert_array_equal(ds.pixel_array, 4095 - raw.astype(np.int32))


def test_jsrt_label_values_painting_order_and_upsampling(jsrt_run):
    root, raws, _, _ = jsrt_run
    label = np.asarray(Image.open(root / "out" / "labels" / "JPCLN001.png"))
    assert label.shape == (2048, 2048) and label.dtype == np.uint8
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3, 4, 5}
    # expected map at mask resolution, painted lung -> heart -> clavicle, then nearest-neighbour x2
    small = np.zeros((1024, 1024), dtype=np.uint8)
    for value, structure in enumerate(SCR_STRUCTURES, start=1):
        small[box((1024, 1024), *SCR_BOXES[structure])] = value
    np.testing.assert_array_equal(label, np.kron(small, np.ones((2, 2), dtype=np.uint8)))
    # spot checks in full-resolution coordinates (mask coordinate x 2)
    assert label[2 * 300, 2 * 200] == 1  # right lung only
    assert label[2 * 300, 2 * 700] == 2  # left lung only
    assert label[2 * 600, 2 * 400] == 3  # right lung under heart: heart wins
    assert label[2 * 120, 2 * 200] == 4  # right lung under right clavicle: clavicle wins
    assert label[2 * 120, 2 * 600] == 5
    assert label[2 * 900, 2 * 50] == 0


def test_jsrt_datalist_surrogate_splits(jsrt_run):
    root, raws, _, datalist = jsrt_run
    assert datalist == root / "out" / "datalist.json"
    dl = load_datalist(root / "out")
    assert set(dl) == set(JSRT_SPLITS)
    for items in dl.values():
        for item in items:
            assert not Path(item["image"]).is_absolute() and (root / "out" / item["image"]).is_file()
            assert Path(item["label"]).stem == Path(item["image"]).stem
    s = {k: cases_of(v) for k, v in dl.items()}
    assert len(s["test"]) == 1 and not s["test"] & (s["training"] | s["validation"])
    assert s["training"] | s["validation"] == s["training_surrogate"] | s["validation_surrogate"] == set(raws) - s["test"]
    assert not s["validation"] & s["validation_surrogate"]
    assert not s["training"] & s["validation"] and not s["training_surrogate"] & s["validation_surrogate"]


def test_jsrt_inputs_untouched(jsrt_run):
    root, _, before, _ = jsrt_run
    assert {k: v for k, v in snapshot(root).items() if not k.startswith("out")} == before


def test_jsrt_splits_reproduce_paper_sizes():
    s = jsrt_splits(143, test_fraction=20 / 143, seed=1)  # paper: 20 test, pool of 123
    sets = {k: set(v) for k, v in s.items()}
    assert [len(s[k]) for k in JSRT_SPLITS] == [100, 23, 20, 100, 23]
    assert len(sets["training"] & sets["training_surrogate"]) == 77
    assert not sets["validation"] & sets["validation_surrogate"]
    assert sets["training"] | sets["validation"] == sets["training_surrogate"] | sets["validation_surrogate"]
    assert not sets["test"] & (sets["training"] | sets["validation"])
    assert s == jsrt_splits(143, test_fraction=20 / 143, seed=1) != jsrt_splits(143, test_fraction=20 / 143, seed=2)
    with pytest.raises(ValueError, match="too few for two disjoint validation sets"):
        jsrt_splits(3, test_fraction=0.5)


def test_jsrt_wrong_file_size(tmp_path):
    rng = np.random.default_rng(1)
    write_jsrt_case(tmp_path / "img", tmp_path / "masks", "JPCLN001", rng)
    (tmp_path / "img" / "JPCLN002.IMG").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match=rf"JPCLN002\.IMG has 1000 bytes.*{JSRT_BYTES} bytes"):
        convert_jsrt(tmp_path / "img", tmp_path / "masks", tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_jsrt_missing_mask(tmp_path):
    rng = np.random.default_rng(2)
    write_jsrt_case(tmp_path / "img", tmp_path / "masks", "JPCLN001", rng)
    write_jsrt_case(tmp_path / "img", tmp_path / "masks", "JPCLN002", rng)
    (tmp_path / "masks" / "heart" / "JPCLN002.gif").unlink()
    missing = tmp_path / "masks" / "heart" / "JPCLN002.gif"
    with pytest.raises(FileNotFoundError, match=f"heart mask for JPCLN002: {missing}"):
        convert_jsrt(tmp_path / "img", tmp_path / "masks", tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_jsrt_label_size_mismatch(tmp_path):
    rng = np.random.default_rng(3)
    write_jsrt_case(tmp_path / "img", tmp_path / "masks", "JPCLN001", rng)
    for structure in SCR_STRUCTURES:  # 1000 x 1000 masks cannot be upsampled onto 2048 x 2048
        save_gray(tmp_path / "masks" / structure / "JPCLN001.gif", np.zeros((1000, 1000)))
    with pytest.raises(ValueError, match="Label map size 1000x1000 of JPCLN001 does not match its image size 2048x2048"):
        convert_jsrt(tmp_path / "img", tmp_path / "masks", tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_jsrt_failure_while_writing_leaves_nothing(tmp_path):
    rng = np.random.default_rng(4)
    write_jsrt_case(tmp_path / "img", tmp_path / "masks", "JPCLN001", rng)
    write_jsrt_case(tmp_path / "img", tmp_path / "masks", "JPCLN002", rng)
    # the second image is written little-endian: right size, values far above 12 bits
    np.full((2048, 2048), 4095, dtype="<u2").tofile(tmp_path / "img" / "JPCLN002.IMG")
    with pytest.raises(ValueError, match=r"JPCLN002\.IMG has values up to 65295; JSRT pixels are 12-bit"):
        convert_jsrt(tmp_path / "img", tmp_path / "masks", tmp_path / "out", test_fraction=0.0, val_fraction=0.5)
    assert output_files(tmp_path / "out") == []  # JPCLN001's DICOM and label were removed again


# ---------------------------------------------------------------- ISIC 2018 task 1

def write_isic(root: Path, n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    images, masks = root / "ISIC2018_Task1-2_Training_Input", root / "ISIC2018_Task1_Training_GroundTruth"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    (images / "LICENSE.txt").write_text("CC-BY-NC\n")
    truth = {}
    for i in range(n):
        case = f"ISIC_{i:07d}"
        h, w = 24 + 2 * i, 32
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{case}.jpg", quality=90)
        lesion = box((h, w), 4, h - 4, 6 + i, 26)
        save_gray(masks / f"{case}_segmentation.png", lesion * 255)
        truth[case] = lesion
    return truth


def test_isic_labels_copies_and_splits(tmp_path):
    truth = write_isic(tmp_path)
    images, masks = tmp_path / "ISIC2018_Task1-2_Training_Input", tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    before = snapshot(tmp_path)
    convert_isic(images, masks, tmp_path / "out", fractions=(0.6, 0.2, 0.2), seed=7)
    for case, lesion in truth.items():
        label = np.asarray(Image.open(tmp_path / "out" / "labels" / f"{case}.png"))
        np.testing.assert_array_equal(label, lesion.astype(np.uint8))  # 0/255 -> 0/1
        assert (tmp_path / "out" / "images" / f"{case}.jpg").read_bytes() == (images / f"{case}.jpg").read_bytes()
    dl = load_datalist(tmp_path / "out")
    s = {k: cases_of(v) for k, v in dl.items()}
    assert set(dl) == {"training", "validation", "test"} and [len(s[k]) for k in dl] == [3, 1, 1]
    assert s["training"] | s["validation"] | s["test"] == set(truth)
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("out")} == before
    # same seed, same split; existing outputs are refused unless overwrite
    with pytest.raises(FileExistsError, match="Output files already exist"):
        convert_isic(images, masks, tmp_path / "out", fractions=(0.6, 0.2, 0.2), seed=7)
    convert_isic(images, masks, tmp_path / "out", fractions=(0.6, 0.2, 0.2), seed=7, overwrite=True)
    assert load_datalist(tmp_path / "out") == dl


def test_isic_hardlink(tmp_path):
    write_isic(tmp_path, n=2)
    images = tmp_path / "ISIC2018_Task1-2_Training_Input"
    convert_isic(images, tmp_path / "ISIC2018_Task1_Training_GroundTruth", tmp_path / "out",
                 fractions=(0.5, 0.5, 0.0), link="hardlink")
    assert os.stat(tmp_path / "out" / "images" / "ISIC_0000001.jpg").st_ino == os.stat(images / "ISIC_0000001.jpg").st_ino


def test_isic_missing_mask(tmp_path):
    write_isic(tmp_path, n=3)
    mask = tmp_path / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000001_segmentation.png"
    mask.unlink()
    with pytest.raises(FileNotFoundError, match=f"ISIC_0000001.jpg: {mask} does not exist"):
        convert_isic(tmp_path / "ISIC2018_Task1-2_Training_Input", mask.parent, tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_isic_mask_size_mismatch(tmp_path):
    write_isic(tmp_path, n=3)
    masks = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    save_gray(masks / "ISIC_0000002_segmentation.png", np.zeros((10, 12)))
    with pytest.raises(ValueError, match=r"ISIC_0000002_segmentation\.png is 12x10 but its image .*ISIC_0000002\.jpg is 32x28"):
        convert_isic(tmp_path / "ISIC2018_Task1-2_Training_Input", masks, tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_isic_non_binary_mask(tmp_path):
    truth = write_isic(tmp_path, n=3)
    masks = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    save_gray(masks / "ISIC_0000002_segmentation.png", truth["ISIC_0000002"] * 128)  # last case: others already written
    with pytest.raises(ValueError, match=r"ISIC_0000002_segmentation\.png is not binary: it has the values \[0, 128\]"):
        convert_isic(tmp_path / "ISIC2018_Task1-2_Training_Input", masks, tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_isic_image_with_an_exif_orientation_is_refused(tmp_path):
    """Orientation 3 (upside down) keeps the size, so the mask's size cannot tell which pixels it was drawn on;
    converting anyway would train on a mask turned against its image as the bundle reads it."""
    write_isic(tmp_path, n=3)
    image = tmp_path / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000001.jpg"
    upside_down = Image.Exif()
    upside_down[0x0112] = 3
    Image.open(image).save(image, quality=90, exif=upside_down)
    with pytest.raises(ValueError, match=r"ISIC_0000001\.jpg has EXIF orientation 3: .*Save the image upright"):
        convert_isic(image.parent, tmp_path / "ISIC2018_Task1_Training_GroundTruth", tmp_path / "out")
    assert output_files(tmp_path / "out") == []


# ---------------------------------------------------------------- fundus folders

def disc_cup(h: int, w: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    return box((h, w), 8, 32, 10 + i, 38 + i), box((h, w), 14, 24, 18 + i, 30 + i)


def write_rimone(root: Path, n: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """RIM-ONE r3 layout: <group>/Stereo Images/N-1-L.jpg, <group>/Average_masks/N-1-L-{Disc,Cup}-Avg.png."""
    rng = np.random.default_rng(6)
    truth = {}
    for i in range(n):
        group, stem = ("Healthy", f"N-{i + 1}-L") if i % 2 else ("Glaucoma and suspects", f"G-{i + 1}-R")
        (root / group / "Stereo Images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / group / "Stereo Images" / f"{stem}.jpg")
        disc, cup = disc_cup(40, 56, i)
        save_gray(root / group / "Average_masks" / f"{stem}-Disc-Avg.png", disc * 255)
        save_gray(root / group / "Average_masks" / f"{stem}-Cup-Avg.png", cup * 255)
        truth[stem] = disc, cup
    return truth


def write_refuge(root: Path, n: int = 4) -> dict[str, np.ndarray]:
    """REFUGE layout: Training400/<class>/g0001.jpg, Disc_Cup_Masks/<class>/g0001.bmp (0 cup, 128 disc, 255 else)."""
    rng = np.random.default_rng(7)
    truth = {}
    for i in range(n):
        group, stem = ("Glaucoma", f"g{i + 1:04d}") if i % 2 else ("Non-Glaucoma", f"n{i + 1:04d}")
        (root / "Training400" / group).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / "Training400" / group / f"{stem}.jpg")
        disc, cup = disc_cup(40, 56, i)
        mask = np.full((40, 56), 255, dtype=np.uint8)
        mask[disc], mask[cup] = 128, 0
        save_gray(root / "Disc_Cup_Masks" / group / f"{stem}.bmp", mask)
        truth[stem] = mask
    return truth


def test_fundus_rimone_style(tmp_path):
    truth = write_rimone(tmp_path / "RIM-ONE")
    before = snapshot(tmp_path / "RIM-ONE")
    convert_fundus_folder(tmp_path / "RIM-ONE", tmp_path / "out", fractions=(0.5, 0.25, 0.25), seed=1)
    for stem, (disc, cup) in truth.items():
        label = np.asarray(Image.open(tmp_path / "out" / "labels" / f"{stem}.png"))
        expected = np.where(cup, 2, np.where(disc, 1, 0))
        np.testing.assert_array_equal(label, expected)
        assert set(np.unique(label).tolist()) == {0, 1, 2}
    dl = load_datalist(tmp_path / "out")
    assert sorted(len(v) for v in dl.values()) == [1, 1, 2]
    assert set().union(*(cases_of(v) for v in dl.values())) == set(truth)
    assert snapshot(tmp_path / "RIM-ONE") == before


def test_fundus_refuge_style(tmp_path):
    truth = write_refuge(tmp_path)
    convert_fundus_folder(tmp_path / "Training400", tmp_path / "out", style="refuge",
                          mask_dir=tmp_path / "Disc_Cup_Masks", fractions=(0.5, 0.25, 0.25))
    for stem, mask in truth.items():
        label = np.asarray(Image.open(tmp_path / "out" / "labels" / f"{stem}.png"))
        np.testing.assert_array_equal(label, np.select([mask == 0, mask == 128], [2, 1], 0))
        assert (tmp_path / "out" / "images" / f"{stem}.jpg").is_file()


def test_fundus_cup_outside_disc(tmp_path):
    write_rimone(tmp_path / "R", n=2)
    disc = box((40, 56), 8, 32, 10, 38)
    cup = box((40, 56), 8, 32, 24, 52)  # 14 of 28 columns inside the disc
    save_gray(tmp_path / "R" / "Healthy" / "Average_masks" / "N-2-L-Cup-Avg.png", cup * 255)
    save_gray(tmp_path / "R" / "Healthy" / "Average_masks" / "N-2-L-Disc-Avg.png", disc * 255)
    with pytest.raises(ValueError, match=r"Cup not inside disc for .*N-2-L-Cup-Avg\.png.*only 50\.0% of its 672 pixels"):
        convert_fundus_folder(tmp_path / "R", tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_fundus_size_mismatch_and_missing_mask(tmp_path):
    write_rimone(tmp_path / "R", n=2)
    masks = tmp_path / "R" / "Healthy" / "Average_masks"
    save_gray(masks / "N-2-L-Cup-Avg.png", np.zeros((40, 28)))
    with pytest.raises(ValueError, match=r"N-2-L-Cup-Avg\.png is 28x40 but its image .*N-2-L\.jpg is 56x40.*stereo pair"):
        convert_fundus_folder(tmp_path / "R", tmp_path / "out")
    (masks / "N-2-L-Cup-Avg.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Missing cup mask for .*N-2-L\.jpg: no file named N-2-L-Cup-Avg\.png"):
        convert_fundus_folder(tmp_path / "R", tmp_path / "out")
    assert output_files(tmp_path / "out") == []


def test_fundus_refuge_bad_values(tmp_path):
    truth = write_refuge(tmp_path, n=2)
    save_gray(tmp_path / "Disc_Cup_Masks" / "Non-Glaucoma" / "n0001.bmp", np.where(truth["n0001"] == 128, 100, truth["n0001"]))
    with pytest.raises(ValueError, match=r"REFUGE mask .*n0001\.bmp has values \[100\]"):
        convert_fundus_folder(tmp_path / "Training400", tmp_path / "out", style="refuge", mask_dir=tmp_path / "Disc_Cup_Masks")
    assert output_files(tmp_path / "out") == []


# ---------------------------------------------------------------- command-line scripts

@pytest.mark.parametrize(
    "script, words",
    [("convert_jsrt", ["right clavicle", "8388608 bytes", "4095 - raw"]),
     ("convert_isic", ["ISIC_0000000_segmentation.png", "0 background, 1 lesion"]),
     ("convert_fundus", ["--style refuge", "0 cup, 128 disc rim, 255 background"])],
)
def test_script_help_explains_layout(script, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in out


def test_scripts_convert_and_report_bad_input(tmp_path, capsys):
    write_refuge(tmp_path, n=2)
    fundus = load_script("convert_fundus")
    assert fundus.main(["--style", "refuge", "--images", str(tmp_path / "Training400"), "--masks",
                        str(tmp_path / "Disc_Cup_Masks"), "--output", str(tmp_path / "out"), "--fractions", "0.5", "0.5", "0"]) == 0
    assert (tmp_path / "out" / "datalist.json").is_file()
    assert fundus.main(["--style", "refuge", "--images", str(tmp_path / "Training400"), "--output", str(tmp_path / "out2")]) == 1
    assert "convert_fundus: error: Missing disc/cup mask for" in capsys.readouterr().err
    # as a real process: non-zero exit, the message, no traceback
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_isic.py"), "--images", str(tmp_path / "nowhere"),
                           "--masks", str(tmp_path), "--output", str(tmp_path / "out3")], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert f"convert_isic: error: Input folder {tmp_path / 'nowhere'} does not exist." in proc.stderr
    assert "Traceback" not in proc.stderr

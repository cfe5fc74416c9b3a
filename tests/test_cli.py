"""The front door: `advseg` / `python -m bundle` on a user's own files and models, as a new user runs it."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import run as bundle_run
from monai.networks.nets import SegResNet
from PIL import Image
from pydicom.data import get_testdata_file

from bundle.cli import bundle_overrides, main
from bundle.config import BUNDLE_ROOT

SEGRESNET = "$monai.networks.nets.SegResNet(spatial_dims=2, in_channels=1, out_channels=6, init_filters=8)"


def advseg(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bundle", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def rows(folder):
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def snapshot(*paths):
    return {p: p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def two_scans(tiny_datasets, tmp_path_factory):
    """Two phantom radiographs with the same file name in two folders, as a user's own (unlabelled) files."""
    root = tmp_path_factory.mktemp("scans")
    sources = sorted((tiny_datasets["cxr"] / "images").glob("*.dcm"))[:2]
    for folder, source in zip(("a", "b"), sources):
        (root / folder).mkdir()
        shutil.copy(source, root / folder / "scan.dcm")
    return root


def test_options_are_read_as_monai_bundle_reads_them():
    assert bundle_overrides(["--attack::eps", "0.02", "--model_grid", "[512, 512]", "--amp", "null",
                             "--network_def", "$torch.nn.Identity()", "--heart_size=large"]) == {
        "attack::eps": 0.02, "model_grid": [512, 512], "amp": None, "network_def": "$torch.nn.Identity()",
        "heart_size": "large"}


def test_an_attack_gives_the_results_of_the_monai_bundle_run_it_wraps(tiny_datasets, tmp_path):
    """The same recipe, options and cases through the command line and through `monai.bundle.run` (what
    `python -m monai.bundle run` calls): the same rows, but for the seconds."""
    common = {"dataset_dir": str(tiny_datasets["cxr"]), "num_cases": 2}
    assert main(["attack", "pgd_heart", "--no_export", "--output", str(tmp_path / "cli"), "--attack::steps", "3",
                 "--dataset_dir", common["dataset_dir"], "--num_cases", "2"]) == 0
    configs = [f"configs/{n}.yaml" for n in ("common", "cxr", "attack", "pgd_heart")]
    bundle_run(config_file=[str(BUNDLE_ROOT / c) for c in configs], bundle_root=str(BUNDLE_ROOT), logging_file=False,
               output_dir=str(tmp_path / "bundle"), **{"attack::steps": 3}, **common)
    ours, theirs = rows(tmp_path / "cli"), rows(tmp_path / "bundle")
    assert len(ours) == 2 and [r["case"] for r in ours] == [r["case"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
        assert a["reference"] == "ground truth" and float(a["target_iou"]) > 0


def test_unlabelled_files_with_the_same_name_give_one_result_each(two_scans, tmp_path, capsys):
    out = tmp_path / "out"
    inputs = sorted(two_scans.rglob("*.dcm"))
    before = snapshot(*inputs)
    assert main(["attack", "pgd_heart", "--input", str(two_scans), "--output", str(out), "--attack::steps", "2"]) == 0
    printed = capsys.readouterr().out
    table = rows(out)
    assert sorted(r["case"] for r in table) == ["a_scan", "b_scan"]
    assert all(r["reference"] == "clean prediction" for r in table)
    assert "adv_miou_ref" in table[0] and "ref_iou_heart" in table[0] and "clean_miou_gt" not in table[0]
    assert "(reference: clean prediction)" in (out / "summary.md").read_text()
    for case in ("a_scan", "b_scan"):
        export = out / "export" / case
        assert {"adversarial.dcm", "seg_clean_pred.dcm", "seg_adv_pred.dcm", "seg_target.dcm", "overlay.dcm"} <= \
            {p.name for p in export.iterdir()}
        assert (out / "overlays" / f"{case}.png").is_file()
    assert f"Results in {out}" in printed
    assert "a_scan: target IoU" in printed and "reference: clean prediction" in printed
    assert snapshot(*inputs) == before  # inputs are never modified


def test_asma_attacks_one_photograph_towards_a_given_or_edited_target(tiny_datasets, tmp_path):
    photo = sorted((tiny_datasets["fundus"] / "images").iterdir())[0]
    target = sorted((tiny_datasets["fundus"] / "labels").iterdir())[1]
    assert main(["attack", "asma", "--task", "fundus", "--input", str(photo), "--target", str(target),
                 "--output", str(tmp_path / "given"), "--attack::steps", "3"]) == 0
    (row,) = rows(tmp_path / "given")
    assert row["case"] == photo.stem and row["reference"] == "clean prediction" and int(row["steps"]) <= 3
    with Image.open(tmp_path / "given" / "export" / photo.stem / "adversarial.png") as im:
        assert im.format == "PNG" and im.size == Image.open(photo).size
    assert main(["attack", "asma", "--task", "fundus", "--input", str(photo), "--target_edit", "scale:cup:1.5",
                 "--output", str(tmp_path / "edited"), "--attack::steps", "3"]) == 0
    assert len(rows(tmp_path / "edited")) == 1


def test_train_on_the_stream_and_a_bad_render_option(tiny_datasets, tmp_path, capsys):
    """--stream trains on new phantoms (here 2 cases); a render option the renderer refuses is one line, exit 2,
    before any training."""
    common = ["train", "--stream", "--task", "cxr", "--dataset_dir", str(tiny_datasets["cxr"]), "--max_epochs", "1",
              "--val_interval", "1", "--cases_per_epoch", "2", "--batch_size", "2", "--num_workers", "0"]
    assert main([*common, "--output", str(tmp_path / "bad"), "--stream_render_options", "{'zoom': [1.3, 0.5]}"]) == 2
    err = capsys.readouterr().err
    assert "stream_render_options {'zoom': [1.3, 0.5]}: Argument zoom should be (low, high)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bad" / "train_target" / "model_best.pt").exists()
    assert main([*common, "--output", str(tmp_path / "good"), "--stream_render_size", "256"]) == 0
    assert (tmp_path / "good" / "train_target" / "model_best.pt").is_file()


def test_a_model_of_ones_own_as_state_dict_torchscript_and_monai_bundle(tiny_datasets, two_scans, tmp_path, capsys):
    """A SegResNet trained by the bundle's own train config, attacked in its three forms with the same result."""
    assert main(["train", "--task", "cxr", "--network_def", SEGRESNET, "--dataset_dir", str(tiny_datasets["cxr"]),
                 "--max_epochs", "1", "--val_interval", "1", "--output", str(tmp_path / "train")]) == 0
    weights = tmp_path / "train" / "train_target" / "model_best.pt"
    scripted = SegResNet(spatial_dims=2, in_channels=1, out_channels=6, init_filters=8)
    scripted.load_state_dict(torch.load(weights, weights_only=True))
    torch.jit.script(scripted.eval()).save(str(tmp_path / "segresnet.ts"))
    folder = tmp_path / "my_bundle"
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps({"network_def": {
        "_target_": "SegResNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 6, "init_filters": 8}}))
    shutil.copy(weights, folder / "models" / "model.pt")
    scan = two_scans / "a" / "scan.dcm"
    results = {}
    for name, model in (("state_dict", ["--model", str(weights), "--network_def", SEGRESNET]),
                        ("torchscript", ["--model", str(tmp_path / "segresnet.ts")]),
                        ("monai_bundle", ["--model", str(folder)])):
        out = tmp_path / name
        assert main(["attack", "pgd_untargeted", "--input", str(scan), "--output", str(out), "--no_export",
                     "--attack::steps", "2", *model]) == 0, name
        (row,) = rows(out)
        results[name] = {k: round(float(v), 4) for k, v in row.items() if k in ("target_iou", "linf", "adv_miou_ref")}
        network = json.loads((out / "settings.json").read_text())["network"]
        assert network["class"].endswith("SegResNet") and network["torchscript"] == (name == "torchscript")
    assert results["state_dict"] == results["torchscript"] == results["monai_bundle"]
    assert main(["attack", "pgd_untargeted", "--input", str(scan), "--output", str(tmp_path / "wrong"),
                 "--model", str(weights)]) == 2
    assert "does not fit this network (UNet:" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists()


def test_this_bundle_as_a_bundle_folder_model_equals_the_shipped_model(two_scans, tmp_path):
    """Its configs/inference.yaml takes network_def from the layered files: read in its own folder, it still gives it."""
    scan = two_scans / "a" / "scan.dcm"
    for name, extra in (("shipped", []), ("folder", ["--model", str(BUNDLE_ROOT)])):
        assert main(["segment", "--input", str(scan), "--output", str(tmp_path / name), *extra]) == 0, name
    labels = [np.asarray(Image.open(tmp_path / name / "scan" / "label.png")) for name in ("shipped", "folder")]
    assert np.array_equal(*labels)


@pytest.mark.parametrize("args, message", [
    (["attack", "asma", "--task", "fundus"], "ASMA on your own images needs a target"),
    (["attack", "pgd_heart", "--target", "t.png"], "Options --target and --target_edit are for the asma recipe"),
    (["segment", "--input", "missing.dcm"], "Option --input (input_files): missing.dcm does not exist"),
    (["attack", "pgd_heart", "--model", "nowhere.pt"], "Option --model: nowhere.pt does not exist"),
    (["attack", "asma", "--task", "fundus", "--target_edit", "grow:cup"], "Option target_edit 'grow:cup'"),
    (["attack", "pgd_heart", "--attack::epss", "0.1"], "Did you mean 'eps'? Fix the override (e.g. --attack::eps)"),
    (["attack", "pgd_heart", "--attack::eps"], "Option --attack::eps needs a value"),
])
def test_a_mistake_gets_one_line_and_exit_status_2(args, message, tiny_datasets, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photo = sorted((tiny_datasets["fundus"] / "images").iterdir())[0]
    extra = [] if "--input" in args else ["--input", str(photo if "fundus" in args else
                                                       sorted((tiny_datasets["cxr"] / "images").iterdir())[0])]
    assert main([*args, *extra, "--output", str(tmp_path / "out")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("advseg: error: ") and message in last, last
    assert not (tmp_path / "out").exists()


def test_a_mistake_in_a_new_process_has_no_traceback(tmp_path):
    result = advseg("segment", "--input", tmp_path / "missing.dcm", "--output", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("advseg: error: Option --input (input_files): ")


def test_a_ct_given_to_the_chest_model_is_refused_before_any_work(tmp_path, capsys):
    ct = tmp_path / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), ct)
    before = ct.read_bytes()
    assert main(["attack", "pgd_heart", "--input", str(ct), "--output", str(tmp_path / "out")]) == 2
    assert "Modality CT" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists() and ct.read_bytes() == before


def test_debug_shows_the_traceback(tmp_path):
    result = advseg("segment", "--input", tmp_path / "missing.dcm", "--output", tmp_path / "out", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "missing.dcm does not exist" in result.stderr


def test_an_output_folder_that_is_a_file_is_refused_before_the_model_runs(tiny_datasets, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    scan = sorted((tiny_datasets["cxr"] / "images").iterdir())[0]
    assert main(["segment", "--input", str(scan), "--output", str(tmp_path / "taken" / "out")]) == 2
    assert f"Option --output (output_dir): {tmp_path / 'taken'} is a file" in capsys.readouterr().err


def test_segment_writes_a_label_map_and_a_seg_per_input(two_scans, tmp_path, capsys):
    assert main(["segment", "--input", str(two_scans), "--output", str(tmp_path / "seg")]) == 0
    assert "Warning" not in capsys.readouterr().out  # phantoms look like the training images
    for case in ("a_scan", "b_scan"):
        assert (tmp_path / "seg" / case / "label.png").is_file()
        assert not (tmp_path / "seg" / case / "warning.txt").exists()
        assert pydicom.dcmread(tmp_path / "seg" / case / "seg.dcm").Modality == "SEG"


def test_segment_warns_about_an_image_unlike_the_tasks_images(tiny_datasets, tmp_path, capsys):
    """A photograph of an astronaut segmented as a fundus got a disc and a cup, exit 0 and no word (issue 24):
    now the run names it, as attack runs name such clean predictions, and its folder says so too."""
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    phantom = sorted((tiny_datasets["fundus"] / "images").iterdir())[0]
    assert main(["segment", "--task", "fundus", "--input", str(tmp_path / "astronaut.png"), str(phantom),
                 "--output", str(tmp_path / "seg")]) == 0
    printed = capsys.readouterr().out
    warning = printed.split("Warning: the prediction of these cases looks unlike the images the model was trained on",
                            1)[1].split("Results in")[0]
    assert "- astronaut: disc_rim in" in warning and phantom.stem not in warning
    assert "disc_rim in" in (tmp_path / "seg" / "astronaut" / "warning.txt").read_text()
    assert not (tmp_path / "seg" / phantom.stem / "warning.txt").exists()
    assert (tmp_path / "seg" / phantom.stem / "label.png").is_file()


def test_a_phone_photograph_is_segmented_as_viewers_show_it(tiny_datasets, tmp_path):
    """An iPhone JPEG (dermapred 0.0.3's example image) was refused as holding "2 frames (pages)": it is a
    multi-picture JPEG whose second picture is an HDR gain map. A portrait photograph is stored sideways with an
    EXIF orientation. Both are segmented as any viewer shows them, with label maps of the size shown."""
    from PIL import ImageOps

    shown = np.asarray(Image.open(sorted((tiny_datasets["dermoscopy"] / "images").iterdir())[0]).convert("RGB"))
    Image.fromarray(shown).save(tmp_path / "upright.png")
    portrait = Image.Exif()
    portrait[0x0112] = 6  # rotate 90 degrees clockwise to show
    Image.fromarray(np.rot90(shown).copy()).save(tmp_path / "sideways.png", exif=portrait)
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "sideways.png"))), shown)
    gain_map = Image.fromarray(shown[::2, ::2, 0])
    Image.fromarray(shown).save(tmp_path / "phone.jpg", format="MPO", quality=95, save_all=True,
                                append_images=[gain_map])
    assert Image.open(tmp_path / "phone.jpg").n_frames == 2
    assert main(["segment", "--task", "dermoscopy", "--input", str(tmp_path / "upright.png"),
                 str(tmp_path / "sideways.png"), str(tmp_path / "phone.jpg"), "--output", str(tmp_path / "seg")]) == 0
    labels = {name: np.asarray(Image.open(tmp_path / "seg" / name / "label.png"))
              for name in ("upright", "sideways", "phone")}
    assert all(label.shape == shown.shape[:2] for label in labels.values())
    assert labels["upright"].any() and np.array_equal(labels["sideways"], labels["upright"])
    agree = (labels["phone"] == labels["upright"]).mean()
    assert agree > 0.98, agree  # the primary picture, JPEG-compressed at quality 95


def test_a_real_chest_radiograph_in_one_command(tmp_path):
    """pydicom-data's PA chest CR (1955 x 1841, MONOCHROME1, Pixel Spacing 0\\0): derived DICOM, SEGs and SC that
    the validator accepts (errors only: the source's own warnings are inherited), and the target IoU printed."""
    source = get_testdata_file("RG1_UNCR.dcm")
    assert source is not None, "pip install pydicom-data (the test extra)"
    result = advseg("attack", "pgd_heart", "--input", source, "--output", tmp_path / "out", "--attack::steps", "2")
    assert result.returncode == 0, result.stderr
    assert "RG1_UNCR: target IoU" in result.stdout
    export = tmp_path / "out" / "export" / "RG1_UNCR"
    adversarial = pydicom.dcmread(export / "adversarial.dcm")
    assert (adversarial.Rows, adversarial.Columns) == (1955, 1841) and "PixelSpacing" not in adversarial
    if shutil.which("dciodvfy"):
        for name in ("adversarial.dcm", "seg_clean_pred.dcm", "seg_adv_pred.dcm", "seg_target.dcm", "overlay.dcm"):
            check = subprocess.run(["dciodvfy", str(export / name)], capture_output=True, text=True)
            assert [line for line in check.stderr.splitlines() if line.startswith("Error")] == [], name


def test_a_run_killed_during_export_is_completed_by_a_rerun(two_scans, tmp_path):
    """SIGKILL while a case's export folder is being written; the rerun resumes, and every case's folder is whole
    with no hidden partial file or folder left anywhere."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bundle", "attack", "pgd_heart", "--input", str(two_scans), "--output", str(out),
               "--attack::steps", "2", "--batch_size", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "export").glob(".*.part")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before its export could be interrupted"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list((out / "export").glob(".*.part"))  # killed half way through a case
    result = advseg(*command[3:])
    assert result.returncode == 0, result.stderr
    assert sorted(r["case"] for r in rows(out)) == ["a_scan", "b_scan"]
    assert [p for p in out.rglob("*") if p.name.startswith(".")] == []
    for case in ("a_scan", "b_scan"):
        assert {"adversarial.dcm", "seg_clean_pred.dcm", "seg_adv_pred.dcm", "seg_target.dcm", "overlay.dcm",
                "target.png", "perturbation.nii.gz"} == {p.name for p in (out / "export" / case).iterdir()}


def test_another_body_part_is_refused_unless_forced(tiny_datasets, tmp_path, capsys):
    ds = pydicom.dcmread(sorted((tiny_datasets["cxr"] / "images").glob("*.dcm"))[0])
    ds.BodyPartExamined = "HAND"
    hand = tmp_path / "hand.dcm"
    ds.save_as(hand)
    assert main(["segment", "--input", str(hand), "--output", str(tmp_path / "refused")]) == 2
    assert "HAND" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "refused").exists()
    assert main(["segment", "--input", str(hand), "--output", str(tmp_path / "forced"), "--force"]) == 0
    assert (tmp_path / "forced" / "hand" / "seg.dcm").is_file()


@pytest.mark.parametrize("option, value, message", [
    ("--variant", "foo", "Option variant should be one of target, surrogate, got 'foo'"),
    ("--architecture", "unetx", "Option architecture should be one of unet, attention_unet, unet_plus_plus"),
    ("--region_kind", "box", "Option region_kind should be one of receptive_field, bbox or null, got 'box'"),
    ("--attack::loss", "foo", "Argument loss should be one of iou, dice, ce, margin, got 'foo'"),
    ("--attack::schedule", "cos", "Did you mean 'cosine'? Set it with --attack::schedule"),
    ("--attack::eps", "nan", "Argument eps should be a non-negative float, got 'nan'. Set it with --attack::eps"),
    ("--export_transfer_syntax", "1.2.3", "Option export_transfer_syntax should be null or a lossless syntax UID"),
    ("--export_beyond_window", "clip", "Option export_beyond_window should be one of edge, keep, got 'clip'"),
    ("--model_grid", "[100, 100]", "Option model_grid should be [H, W], two positive multiples of 16"),
])
def test_a_bad_bundle_option_is_named(option, value, message, two_scans, tmp_path, capsys):
    assert main(["attack", "pgd_heart", "--input", str(two_scans), "--output", str(tmp_path / "out"),
                 "--attack::steps", "1", option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("advseg: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, usage", [("demo", "--attack_cases"), ("reproduce", "--quick")])
def test_demo_and_reproduce_are_the_scripts(command, usage, capsys):
    assert main([command, "--help"]) == 0
    assert usage in capsys.readouterr().out


def test_help_shows_examples():
    result = advseg("attack", "--help")
    assert result.returncode == 0 and "advseg attack asma --task fundus --input photo.jpg --target target.png" in \
        result.stdout


def test_help_and_where_load_neither_torch_nor_monai():
    """They answer at once: importing MONAI (and what it imports) takes about 15 s on a 2-core machine."""
    code = ("import sys; from bundle.cli import main; main(['where']); "
            "print(sorted({'torch', 'monai'} & {m.split('.')[0] for m in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0 and result.stdout.split() == [str(BUNDLE_ROOT), "[]"], result


def test_robustness_gives_the_worst_case_per_eps_on_ones_own_files(two_scans, tmp_path, capsys):
    out = tmp_path / "robust"
    assert main(["robustness", "--input", str(two_scans), "--output", str(out), "--eps", "0.01", "0.02",
                 "--steps", "2"]) == 0
    table = rows(out)
    assert sorted((r["case"], float(r["eps"])) for r in table) == [
        ("a_scan", 0.01), ("a_scan", 0.02), ("b_scan", 0.01), ("b_scan", 0.02)]
    assert all(r["reference"] == "clean prediction" and float(r["worst_score"]) <= float(r["clean_score"])
               for r in table)
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed and "eps 0.02: worst case" in printed
    assert all(r["clean_warning"] == "" for r in table) and "Warning" not in printed  # phantoms look as trained on


def test_robustness_names_a_case_whose_clean_prediction_looks_unlike_the_training_images(tmp_path, capsys):
    """As attack and segment runs do: the real chest CR's lungs and heart come in pieces under the shipped model."""
    out = tmp_path / "robust"
    assert main(["robustness", "--input", get_testdata_file("RG1_UNCR.dcm"), "--output", str(out), "--eps", "0.01",
                 "--steps", "2"]) == 0
    assert "left_lung in" in rows(out)[0]["clean_warning"]
    printed = capsys.readouterr().out
    assert "Warning: the clean prediction of these cases looks unlike" in printed and "- RG1_UNCR: " in printed
    assert "- RG1_UNCR: " in (out / "report.md").read_text()

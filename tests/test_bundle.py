"""The bundle as users run it: metadata, network in/out, training and evaluation through ConfigWorkflow."""

import csv
import json
import re

import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_net_in_out
from monai.bundle.properties import InferProperties, TrainProperties
from monai.utils import BundleProperty, BundlePropertyConfig

from bundle.config import bundle_config
from _util import chain

TASKS = ("fundus", "dermoscopy", "cxr")
MANDATORY = ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
             "required_packages_version", "task", "description", "authors", "copyright", "network_data_format")


def _files(bundle_root, task, workflow):
    return [str(bundle_root / "configs" / n) for n in ("common.yaml", f"{task}.yaml", f"{workflow}.yaml")]


def test_metadata_has_mandatory_keys_and_a_format_per_task(bundle_root):
    meta = json.loads((bundle_root / "configs" / "metadata.json").read_text())
    assert [k for k in MANDATORY if k not in meta] == []
    for task in TASKS:  # configs/metadata.json describes cxr, metadata_<task>.json overrides it for the other tasks
        extra = bundle_root / "configs" / f"metadata_{task}.json"
        fmt = json.loads(extra.read_text())["network_data_format"] if task != "cxr" else meta["network_data_format"]
        names = bundle_config(task).get_parsed_content("class_names")
        assert list(fmt["outputs"]["pred"]["channel_def"].values()) == names


@pytest.mark.parametrize("task", TASKS)
def test_verify_net_in_out(bundle_root, tmp_path, task):
    metas = [str(bundle_root / "configs" / n) for n in ["metadata.json"] + ([] if task == "cxr" else [f"metadata_{task}.json"])]
    files = [str(bundle_root / "configs" / n) for n in ("common.yaml", f"{task}.yaml")]
    verify_net_in_out(net_id="network_def", meta_file=metas, config_file=files,
                      device="cpu", p=2, n=1, any=16, bundle_root=str(bundle_root))


def _workflow(bundle_root, task, workflow, **overrides):
    wf = ConfigWorkflow(config_file=_files(bundle_root, task, workflow), workflow_type="train" if workflow == "train" else "infer",
                        meta_file=str(bundle_root / "configs" / "metadata.json"), bundle_root=str(bundle_root), **overrides)
    wf.initialize()
    return wf


@pytest.mark.parametrize("task", TASKS)
def test_train_then_evaluate_tiny(bundle_root, tiny_datasets, tmp_path, task):
    out = tmp_path / "out"
    train = _workflow(bundle_root, task, "train", dataset_dir=str(tiny_datasets[task]), output_dir=str(out),
                      max_epochs=2, val_interval=1, batch_size=2)
    # MONAI's check_properties() indexes handler lists as inline dicts; ours are lists of references, so the
    # required ids of the bundle specification are checked directly
    required = [v[BundlePropertyConfig.ID] for v in TrainProperties.values() if v[BundleProperty.REQUIRED]]
    assert [i for i in required if i not in train.parser] == []
    train.run()
    train.finalize()
    ckpt = out / "train_target" / "model_best.pt"
    state = torch.load(ckpt, weights_only=True)
    assert "model.0.conv.unit0.conv.weight" in state or any(k.endswith("weight") for k in state)

    ev = _workflow(bundle_root, task, "evaluate", dataset_dir=str(tiny_datasets[task]), output_dir=str(out),
                   model_file=str(ckpt), num_cases=1)
    ev.run()
    ev.finalize()
    required = [v[BundlePropertyConfig.ID] for v in InferProperties.values() if v[BundleProperty.REQUIRED]]
    assert [i for i in required if i not in ev.parser] == []
    rows = list(csv.DictReader(open(out / "clean_target_metrics.csv")))
    names = bundle_config(task).get_parsed_content("class_names")
    assert len(rows) == 1
    assert set(rows[0]) == {"case"} | {f"{m}_{c}" for m in ("dice", "iou") for c in names[1:]} | {"mean_dice", "mean_iou"}
    assert all(0.0 <= float(v) <= 1.0 for k, v in rows[0].items() if k != "case")
    summary = (out / "clean_target_summary.md").read_text()
    assert f"dice_{names[1]}" in summary


@pytest.mark.parametrize("task", ["fundus", "dermoscopy"])
def test_train_on_the_stream_tiny(bundle_root, tiny_datasets, tmp_path, task):
    """configs/train_stream.yaml as docs/training.md runs it, at its default render size for the photographs
    (cxr: tests/test_cli.py, advseg train --stream)."""
    files = [*_files(bundle_root, task, "train"), str(bundle_root / "configs" / "train_stream.yaml")]
    wf = ConfigWorkflow(config_file=files, workflow_type="train", meta_file=str(bundle_root / "configs" / "metadata.json"),
                        bundle_root=str(bundle_root), dataset_dir=str(tiny_datasets[task]), output_dir=str(tmp_path),
                        max_epochs=1, val_interval=1, cases_per_epoch=2, batch_size=2, num_workers=0)
    wf.initialize()
    wf.run()
    wf.finalize()
    assert wf.trainer.state.iteration == 1
    assert (tmp_path / "train_target" / "model_best.pt").is_file()


@pytest.mark.parametrize("variant, architecture, prefix", [("target", "unet", "clean_target_"),
                                                          ("surrogate", "unet", "clean_surrogate_"),
                                                          ("target", "attention_unet", "clean_target_attention_unet_")])
def test_clean_evaluations_of_different_networks_do_not_overwrite_each_other(variant, architecture, prefix):
    parser = bundle_config("cxr", ["evaluate.yaml"])
    parser.update({"variant": variant, "architecture": architecture})
    assert parser.get_parsed_content("segmentation_metrics_writer#prefix") == prefix


def test_surrogate_splits_follow_the_paper(tiny_datasets):
    data = json.loads((tiny_datasets["cxr"] / "datalist.json").read_text())
    train, val = {d["image"] for d in data["training"]}, {d["image"] for d in data["validation"]}
    strain, sval = {d["image"] for d in data["training_surrogate"]}, {d["image"] for d in data["validation_surrogate"]}
    assert not val & sval
    assert train | val == strain | sval
    assert len(train & strain) == len(train) - len(sval)


def test_missing_checkpoint_is_named(bundle_root, tiny_datasets, tmp_path):
    with pytest.raises(Exception) as info:
        _workflow(bundle_root, "fundus", "evaluate", dataset_dir=str(tiny_datasets["fundus"]),
                  output_dir=str(tmp_path), model_file=str(tmp_path / "nothing.pt"))
    assert re.search(r"Checkpoint .*nothing.pt does not exist; set model_file", chain(info.value))


def test_bad_num_cases_and_task_names(tiny_datasets):
    from bundle.config import case_list

    with pytest.raises(ValueError, match="Option num_cases should be a positive integer"):
        case_list("fundus", tiny_datasets["fundus"], "test", 0)
    with pytest.raises(ValueError, match="fundus"):
        bundle_config("fundos")


@pytest.mark.parametrize("task, bounds", [("cxr", [-0.25, 0.25]), ("fundus", [-1.0, 1.0])])
def test_intensity_bounds_is_the_model_domain_the_loading_maps_onto(tiny_datasets, task, bounds):
    """--intensity_bounds moves the image into another model domain (display [0, 1] -> [low, high]) for every task."""
    from bundle import load_examples

    default = load_examples(task, "test", n=1, dataset_dir=tiny_datasets[task])["image"]
    low, high = bundle_config(task).get_parsed_content("intensity_bounds_checked")
    moved = load_examples(task, "test", n=1, dataset_dir=tiny_datasets[task], intensity_bounds=bounds)["image"]
    display = (default - low) / (high - low)
    assert torch.allclose(moved, bounds[0] + (bounds[1] - bounds[0]) * display, atol=1e-6)


def test_foreign_folder_is_not_filled_with_phantoms(tmp_path):
    from bundle.data import ensure_dataset

    (tmp_path / "ISIC_0000000.jpg").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="not empty but has no datalist.json"):
        ensure_dataset("dermoscopy", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ISIC_0000000.jpg"]


def test_phantoms_of_an_older_renderer_are_refused_not_mixed(tmp_path):
    """A cxr folder of an older renderer (no version in phantom.json) or of another task is named, not reused."""
    from bundle.data import ensure_dataset, generate_phantom_dataset

    generate_phantom_dataset("cxr", tmp_path, sizes={"training": 1, "validation": 1, "test": 1}, only=["test"],
                             progress=False)
    assert ensure_dataset("cxr", tmp_path) == tmp_path / "datalist.json"  # the current renderer's folder is used
    marker = tmp_path / "phantom.json"
    meta = json.loads(marker.read_text())
    del meta["version"]  # as the markers of version 1 were written
    marker.write_text(json.dumps(meta))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with pytest.raises(RuntimeError, match=f"{tmp_path} holds cxr phantoms of renderer version 1.*delete {tmp_path}"):
        ensure_dataset("cxr", tmp_path, split="validation")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
    with pytest.raises(RuntimeError, match=f"{tmp_path} holds cxr phantoms, not fundus ones"):
        ensure_dataset("fundus", tmp_path)  # another task's folder is named as such, not as an older version
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
    marker.write_text("{")  # a marker cut short is named too
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with pytest.raises(RuntimeError, match=f"{marker} is not valid JSON.*delete {tmp_path}"):
        ensure_dataset("cxr", tmp_path)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_phantoms_are_generated_split_by_split(tmp_path):
    from bundle.config import case_list

    folder = tmp_path / "derm"
    test = case_list("dermoscopy", folder, "test", 2)
    assert json.loads((folder / "datalist.json").read_text()).keys() == {"test"}
    stamp = (folder / "images" / "dermoscopy_0180.jpg").stat().st_mtime_ns
    validation = case_list("dermoscopy", folder, "validation", 1)
    assert json.loads((folder / "datalist.json").read_text()).keys() == {"test", "validation"}
    assert case_list("dermoscopy", folder, "test", 2) == test and validation[0]["image"].endswith("dermoscopy_0160.jpg")
    assert (folder / "images" / "dermoscopy_0180.jpg").stat().st_mtime_ns == stamp  # existing cases are kept


def test_inference_writes_native_size_label_maps_and_a_valid_seg(bundle_root, tiny_datasets, tmp_path):
    import shutil
    import subprocess

    import numpy as np
    import pydicom
    from PIL import Image

    pattern = str(tiny_datasets["cxr"] / "images" / "*.dcm")
    wf = _workflow(bundle_root, "cxr", "segment", input_files=pattern, num_cases=2, output_dir=str(tmp_path))
    wf.run()
    cases = sorted(p.name for p in tmp_path.iterdir())
    assert len(cases) == 2
    for case in cases:
        source = pydicom.dcmread(sorted(tiny_datasets["cxr"].glob(f"images/{case}.dcm"))[0])
        label = np.asarray(Image.open(tmp_path / case / "label.png"))
        assert label.shape == (source.Rows, source.Columns)
        assert set(np.unique(label)) >= {0, 1, 2, 3}  # the shipped model finds the lungs and the heart
        seg = pydicom.dcmread(tmp_path / case / "seg.dcm")
        assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
        if shutil.which("dciodvfy"):
            out = subprocess.run(["dciodvfy", str(tmp_path / case / "seg.dcm")], capture_output=True, text=True)
            assert not [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def test_inference_names_a_missing_input_file(bundle_root, tmp_path):
    with pytest.raises(Exception) as info:
        _workflow(bundle_root, "fundus", "segment", input_files=[str(tmp_path / "no.png")],
                  output_dir=str(tmp_path)).run()
    assert re.search(r"Option input_files: .*no.png does not exist", chain(info.value))
    with pytest.raises(Exception) as info:
        _workflow(bundle_root, "fundus", "segment", input_files=str(tmp_path / "*.jpg"),
                  output_dir=str(tmp_path)).run()
    assert "matches no file" in chain(info.value)
    assert list(tmp_path.iterdir()) == []

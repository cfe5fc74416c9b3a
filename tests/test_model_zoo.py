"""The checks of the MONAI model zoo (ci/verify_bundle.py of Project-MONAI/model-zoo) that run offline: the files it
requires, metadata against a schema (shipped in tests/data, since nothing may download it), configs/inference.yaml on
its own (the zoo, MONAI Label and MONAI's tools load it alone), network in/out per task, TorchScript and ONNX export
equal to the eager model, and check_properties() of every workflow."""

import json
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, onnx_export, verify_metadata, verify_net_in_out

TASKS = ("cxr", "fundus", "dermoscopy")
SCHEMA = Path(__file__).parent / "data" / "meta_schema.json"
KEYS = ("task", "in_channels", "class_names", "intensity_bounds", "num_classes", "model_file", "dataset_dir",
        "output_dir", "model_grid_checked", "intensity_bounds_checked")


@pytest.fixture(autouse=True)
def at_bundle_root(bundle_root, monkeypatch):
    """MONAI reads the %file#id macros of inference.yaml relative to the current folder: the zoo runs from the root."""
    monkeypatch.chdir(bundle_root)
    warnings.filterwarnings("ignore", message="Can't merge entry ")  # inference.yaml alone starts layered_tasks


def _meta(task):
    return ["configs/metadata.json"] + ([] if task == "cxr" else [f"configs/metadata_{task}.json"])


def test_files_the_zoo_requires():
    for name in ("LICENSE", "configs/metadata.json", "configs/inference.yaml", "models/model.pt", "docs/README.md"):
        assert Path(name).is_file(), name
    assert "Apache License" in Path("LICENSE").read_text()


@pytest.mark.parametrize("task", TASKS)
def test_metadata_validates_against_the_schema(task, tmp_path):
    verify_metadata(meta_file="configs/metadata.json", filepath=str(SCHEMA))  # the zoo's call; the file exists: no download
    merged = ConfigParser.load_config_files(_meta(task))
    (tmp_path / "metadata.json").write_text(json.dumps(merged))
    verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(SCHEMA))
    meta = json.loads(Path("configs/metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert f"{task}_mean_dice" in meta["eval_metrics"]
    names = list(merged["network_data_format"]["outputs"]["pred"]["channel_def"].values())
    parser = ConfigParser()
    parser.read_config("configs/inference.yaml")
    parser["task"] = task
    assert parser.get_parsed_content("class_names") == names


def test_metadata_pins_every_runtime_package_at_the_tested_version():
    meta = json.loads(Path("configs/metadata.json").read_text())
    pinned = dict(line.strip().split("==") for line in open("constraints.txt") if "==" in line)
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    required = {d.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip() for d in project["dependencies"]}
    listed = {k.lower() for k in meta["required_packages_version"]} | {"torch", "monai", "numpy"}
    assert sorted(r for r in required if r.lower() not in listed) == []
    for name, version in meta["required_packages_version"].items():
        assert pinned[name] == version, name
    assert (meta["monai_version"], meta["pytorch_version"], meta["numpy_version"]) == \
        (pinned["monai"], pinned["torch"], pinned["numpy"])


def _resolved(files, **overrides):
    parser = ConfigParser()
    parser.read_config(files)
    parser.update({"bundle_root": ".", **overrides})
    values = {k: parser.get_parsed_content(k) for k in KEYS}
    values["loader"] = type(parser.get_parsed_content("load_transforms")[0]).__name__
    return values


@pytest.mark.parametrize("task", TASKS)
def test_inference_yaml_alone_equals_the_layered_run(task):
    layered = _resolved([f"configs/{n}.yaml" for n in ("common", task, "inference")])
    assert layered["task"] == task
    assert _resolved(["configs/inference.yaml"], task=task) == layered
    assert _resolved(["configs/inference.yaml", f"configs/{task}.yaml"]) == layered
    if task == "cxr":
        assert _resolved(["configs/inference.yaml"]) == layered


def test_inference_yaml_alone_runs(tiny_datasets, tmp_path):
    wf = ConfigWorkflow(config_file="configs/inference.yaml", workflow_type="infer", bundle_root=".",
                        dataset_dir=str(tiny_datasets["cxr"]), num_cases=1, output_dir=str(tmp_path))
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    assert len(list(tmp_path.glob("*/*.png"))) == 1


@pytest.mark.parametrize("task", TASKS)
def test_verify_net_in_out_on_inference_yaml(task):
    verify_net_in_out(net_id="network_def", meta_file=_meta(task), config_file="configs/inference.yaml",
                      device="cpu", n=16, task=task)


@pytest.mark.parametrize("workflow, files, kind", [
    ("train", ["common", "cxr", "train"], "train"),
    ("evaluate", ["common", "fundus", "evaluate"], "infer"),
    ("inference", ["common", "dermoscopy", "inference"], "infer"),
    ("inference alone", ["inference"], "infer"),
    ("attack", ["common", "cxr", "attack", "pgd_heart"], "infer"),
])
def test_check_properties_is_clean(workflow, files, kind, tiny_datasets):
    task = next((t for t in TASKS if t in files), "cxr")
    wf = ConfigWorkflow(config_file=[f"configs/{f}.yaml" for f in files], meta_file="configs/metadata.json",
                        workflow_type=kind, bundle_root=".", dataset_dir=str(tiny_datasets[task]), num_cases=1)
    wf.initialize()
    assert wf.check_properties() == []


@pytest.mark.parametrize("task", TASKS)
def test_torchscript_and_onnx_exports_equal_the_eager_model(task, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    parser = ConfigParser()
    parser.read_config("configs/inference.yaml")
    parser.update({"bundle_root": ".", "task": task})
    net = parser.get_parsed_content("network_def").eval()
    weights = parser.get_parsed_content("model_file")
    net.load_state_dict(torch.load(weights, weights_only=True))
    x = torch.rand(1, parser.get_parsed_content("in_channels"), 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = net(x)

    common = dict(net_id="network_def", ckpt_file=weights, meta_file="configs/metadata.json", config_file="configs/inference.yaml",
                  task=task)
    ckpt_export(filepath=str(tmp_path / "model.ts"), **common)
    with torch.no_grad():
        scripted = torch.jit.load(str(tmp_path / "model.ts"))(x)
    torch.testing.assert_close(scripted, eager, rtol=0, atol=1e-5)

    onnx_export(filepath=str(tmp_path / "model.onnx"), input_shape=[1, x.shape[1], 64, 64], use_trace=True, **common)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert np.abs(out - eager.numpy()).max() < 1e-4

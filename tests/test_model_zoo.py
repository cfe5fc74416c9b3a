"""The checks of the MONAI model zoo (ci/verify_bundle.py of Project-MONAI/model-zoo) that run offline: the files it
requires, metadata against a schema (shipped in tests/data, since nothing may download it), network in/out per task,
TorchScript and ONNX export equal to the eager model, and check_properties() of every workflow; and configs/inference.yaml
on its own, as those tools and MONAI Label read it (one file, any current folder, ``--task`` for the other tasks)."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, onnx_export, verify_metadata, verify_net_in_out
from PIL import Image

from bundle.config import model_file

TASKS = ("cxr", "fundus", "dermoscopy")
SCHEMA = Path(__file__).parent / "data" / "meta_schema.json"


@pytest.fixture(autouse=True)
def at_bundle_root(bundle_root, monkeypatch):
    """The zoo's CI passes paths relative to the bundle root."""
    monkeypatch.chdir(bundle_root)


def _layers(task, *workflows):
    return [f"configs/{n}.yaml" for n in ("common", task, *workflows)]


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
    parser.read_config(_layers(task, "segment"))
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


@pytest.mark.parametrize("task", TASKS)
def test_verify_net_in_out_on_inference_yaml_with_the_task_metadata(task):
    verify_net_in_out(net_id="network_def", meta_file=_meta(task), config_file="configs/inference.yaml",
                      device="cpu", n=16, bundle_root=".", task=task)


def test_inference_yaml_alone_runs_from_another_folder_as_the_layered_run(bundle_root, tiny_datasets, tmp_path):
    data = dict(dataset_dir=str(tiny_datasets["cxr"]), num_cases=2)
    layered = ConfigWorkflow(config_file=_layers("cxr", "segment"), workflow_type="infer", bundle_root=".",
                             output_dir=str(tmp_path / "layered"), **data)
    layered.initialize()
    layered.run()
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                             str(bundle_root / "configs" / "inference.yaml"), "--bundle_root", str(bundle_root),
                             "--output_dir", str(tmp_path / "alone"), *(f"--{k}={v}" for k, v in data.items())],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    cases = sorted(p.parent.name for p in (tmp_path / "layered").glob("*/label.png"))
    assert len(cases) == 2 and cases == sorted(p.parent.name for p in (tmp_path / "alone").glob("*/label.png"))
    for case in cases:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "alone" / case / "label.png")),
                              np.asarray(Image.open(tmp_path / "layered" / case / "label.png")))


@pytest.mark.parametrize("task", TASKS)
def test_inference_yaml_segments_a_request_without_a_label(task, tiny_datasets, tmp_path):
    """What MONAI Label's BundleInferTask does with the file: preprocessing, network, postprocessing on an image
    alone; the label map at the source's size equals the one the bundle's run saves."""
    parser = ConfigParser()
    parser.read_config("configs/inference.yaml")
    parser.update({"task": task, "dataset_dir": str(tiny_datasets[task]), "num_cases": 1,
                   "output_dir": str(tmp_path)})
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("run")  # the bundle's own label.png
    (saved,) = tmp_path.glob("*/label.png")
    source = parser.get_parsed_content("dataset").data[0]["image"]
    request = parser.get_parsed_content("preprocessing")({"image": source})
    network = parser.get_parsed_content("network").eval()
    with torch.no_grad():
        request["pred"] = network(request["image"][None])[0]
    label = parser.get_parsed_content("postprocessing")(request)["pred"]
    assert np.array_equal(label[0].numpy(), np.asarray(Image.open(saved)))


@pytest.mark.parametrize("workflow, files, kind", [
    ("train", ["common", "cxr", "train"], "train"),
    ("evaluate", ["common", "fundus", "evaluate"], "infer"),
    ("segment", ["common", "dermoscopy", "segment"], "infer"),
    ("inference alone", ["inference"], "infer"),
    ("attack", ["common", "cxr", "attack", "pgd_heart"], "infer"),
])
def test_check_properties_is_clean(workflow, files, kind, tiny_datasets, tmp_path):
    task = next((t for t in TASKS if t in files), "cxr")
    wf = ConfigWorkflow(config_file=[f"configs/{f}.yaml" for f in files], meta_file="configs/metadata.json",
                        workflow_type=kind, bundle_root=".", dataset_dir=str(tiny_datasets[task]), num_cases=1,
                        output_dir=str(tmp_path))  # the train workflow makes its checkpoint folder at initialize
    wf.initialize()
    assert wf.check_properties() == []


@pytest.mark.parametrize("task", TASKS)
def test_torchscript_and_onnx_exports_equal_the_eager_model(task, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    parser = ConfigParser()
    parser.read_config("configs/inference.yaml")
    parser.update({"task": task})
    net = parser.get_parsed_content("network_def").eval()
    weights = model_file(".", task)
    net.load_state_dict(torch.load(weights, weights_only=True))
    channels = parser.get_parsed_content("layered").get_parsed_content("in_channels")
    x = torch.rand(1, channels, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = net(x)

    common = dict(net_id="network_def", ckpt_file=weights, meta_file="configs/metadata.json",
                  config_file="configs/inference.yaml", bundle_root=".", task=task)
    ckpt_export(filepath=str(tmp_path / "model.ts"), **common)
    with torch.no_grad():
        scripted = torch.jit.load(str(tmp_path / "model.ts"))(x)
    torch.testing.assert_close(scripted, eager, rtol=0, atol=1e-5)

    onnx_export(filepath=str(tmp_path / "model.onnx"), input_shape=[1, x.shape[1], 64, 64], use_trace=True, **common)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert np.abs(out - eager.numpy()).max() < 1e-4

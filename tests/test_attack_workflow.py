"""Attack runs through `monai.bundle` configs: output tables, overlays, resume, and the errors users hit."""

import csv
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pydicom
import pytest
import torch
from monai.bundle import ConfigWorkflow

import bundle.targets
from bundle.config import bundle_config
from bundle.handlers.attack_metrics import TEXT_COLUMNS
from _util import chain


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory):
    """state_dicts of freshly initialised networks: enough to exercise the pipeline, not its quality."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for task in ("fundus", "cxr"):
        torch.manual_seed(0)
        paths[task] = folder / f"{task}.pt"
        torch.save(bundle_config(task).get_parsed_content("network_def").state_dict(), paths[task])
    return paths


def run_attack(bundle_root, task, recipe, **overrides):
    files = [str(bundle_root / "configs" / n) for n in ("common.yaml", f"{task}.yaml", "attack.yaml", *recipe)]
    wf = ConfigWorkflow(config_file=files, meta_file=str(bundle_root / "configs" / "metadata.json"),
                        workflow_type="infer", bundle_root=str(bundle_root), **overrides)
    wf.initialize()
    wf.run()
    wf.finalize()


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_heart_attack_writes_tables_and_overlays_and_resumes(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    out = tmp_path / "heart"
    args = dict(dataset_dir=str(tiny_datasets["cxr"]), output_dir=str(out), model_file=str(untrained_weights["cxr"]),
                batch_size=2, num_cases=1)
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], **args, **{"attack#steps": 2})
    rows = read_rows(out / "metrics.csv")
    assert [r["case"] for r in rows] == ["cxr_0006"]
    names = bundle_config("cxr").get_parsed_content("class_names")
    required = ["case", "task", "attack", "eps", "steps", "seconds", "target_iou", "pixel_accuracy", "l2", "linf",
                "clean_miou_gt", "adv_miou_gt"] + [f"iou_{c}" for c in names]
    assert [c for c in required if c not in rows[0]] == []
    assert rows[0]["attack"] == "pgd_heart_small" and float(rows[0]["eps"]) == 0.04 and int(rows[0]["steps"]) == 2
    assert float(rows[0]["linf"]) <= 0.04 + 1e-6
    assert (out / "overlays" / "cxr_0006.png").is_file()
    summary = read_rows(out / "summary.csv")
    assert {s["metric"] for s in summary} >= {"target_iou", "l2", "iou_heart"}
    assert "target_iou" in (out / "summary.md").read_text()

    # all cases of the split now: the finished case is skipped, none appears twice
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], **(args | {"num_cases": None}), **{"attack#steps": 2})
    cases = [r["case"] for r in read_rows(out / "metrics.csv")]
    assert sorted(cases) == ["cxr_0006", "cxr_0007"]
    # nothing left to do: the run reports the finished table instead of attacking again
    (out / "summary.md").unlink()
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], **(args | {"num_cases": None}), **{"attack#steps": 2})
    assert len(read_rows(out / "metrics.csv")) == 2 and "2 cases" in (out / "summary.md").read_text()

    # other settings into the same folder are refused, naming the change, not resumed under the old results
    retrained = tmp_path / "retrained.pt"
    torch.manual_seed(1)
    torch.save(bundle_config("cxr").get_parsed_content("network_def").state_dict(), retrained)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*"))
    for change, message in (({"attack#eps": 0.08}, "attack.eps: 0.04 -> 0.08"),
                            ({"model_file": str(retrained)}, "model_sha256: "),
                            ({"model_grid": [128, 128]}, "model_grid: [256, 256] -> [128, 128]")):
        with pytest.raises(Exception) as info:
            run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], **(args | {"attack#steps": 2} | change))
        assert f"{out} holds the results of 2 cases attacked with other settings ({message}" in chain(info.value)
        assert f"pass --output_dir with a new folder for this run, or delete {out}" in chain(info.value)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*")) == before

    # results whose targets were drawn by other code (bundle.targets changed since, e.g. recalibrated symbols) too
    settings = json.loads((out / "settings.json").read_text())
    with open(bundle.targets.__file__, "rb") as source:
        assert settings["targets_sha256"] == hashlib.sha256(source.read()).hexdigest()
    (out / "settings.json").write_text(json.dumps(settings | {"targets_sha256": "0" * 64}))
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], **(args | {"attack#steps": 2}))
    assert f"other settings (targets_sha256: '{'0' * 64}' -> '{settings['targets_sha256']}')" in chain(info.value)


def test_missing_surrogate_is_named_and_nothing_written(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    out = tmp_path / "transfer"
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "cxr", ["pgd_heart.yaml", "transfer.yaml"], dataset_dir=str(tiny_datasets["cxr"]),
                   output_dir=str(out), model_file=str(untrained_weights["cxr"]),
                   surrogate_file=str(tmp_path / "nothing.pt"), **{"attack#steps": 1})
    assert re.search(r"Checkpoint .*nothing.pt does not exist; set model_file \(surrogate_file", chain(info.value))
    assert not out.exists()


def test_settings_record_of_a_resumed_folder(tmp_path):
    """A folder from before settings.json resumes as it did; a record that is not JSON is named, nothing written."""
    from bundle.handlers import pending_cases

    (tmp_path / "metrics.csv").write_text("case,task\ncxr_0006,cxr\n")
    items = [{"image": f"/data/cxr_000{i}.dcm"} for i in (6, 7)]
    assert pending_cases(items, tmp_path, {"seed": 0}) == items[1:]
    (tmp_path / "settings.json").write_text("{")
    with pytest.raises(ValueError, match=f"{tmp_path / 'settings.json'} is not valid JSON.*delete {tmp_path}"):
        pending_cases(items, tmp_path, {"seed": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "settings.json"]


def test_asma_swaps_targets_between_cases(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    run_attack(bundle_root, "fundus", ["asma.yaml"], dataset_dir=str(tiny_datasets["fundus"]), output_dir=str(tmp_path),
               model_file=str(untrained_weights["fundus"]), **{"attack#steps": 2, "attack#variant": "asm"})
    rows = read_rows(tmp_path / "metrics.csv")
    assert len(rows) == 2 and {r["attack"] for r in rows} == {"asm"}
    assert all(r["eps"] == "" for r in rows)


def test_heart_recipe_on_fundus_names_the_fix(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "fundus", ["pgd_heart.yaml"], dataset_dir=str(tiny_datasets["fundus"]),
                   output_dir=str(tmp_path), model_file=str(untrained_weights["fundus"]))
    assert "Recipe 'pgd_heart_small' needs task cxr, got task 'fundus'" in chain(info.value)
    assert not any(tmp_path.iterdir())


def test_unknown_attack_option_is_named(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "cxr", ["pgd_untargeted.yaml"], dataset_dir=str(tiny_datasets["cxr"]),
                   output_dir=str(tmp_path), model_file=str(untrained_weights["cxr"]), **{"attack#epss": 0.1})
    assert re.search(r"Unknown option 'epss' for attack pgd.*Did you mean 'eps'\?", chain(info.value))


def test_momentum_layer_sets_the_step_rule_and_its_own_output_folder():
    config = bundle_config("cxr", ["attack.yaml", "pgd_heart.yaml", "pgd_momentum.yaml"])
    attack = config.get_parsed_content("attack")
    assert attack.keywords | {"momentum": 0.75, "schedule": "cosine", "eps": 0.04, "steps": 100} == attack.keywords
    assert config.get_parsed_content("output_dir").endswith("/outputs/cxr/pgd_heart_small_momentum")


def test_strong_layer_sets_its_settings_relative_to_the_recipes_eps():
    config = bundle_config("cxr", ["attack.yaml", "pgd_untargeted.yaml", "pgd_strong.yaml"])
    config["attack#eps"] = 0.04
    attack = config.get_parsed_content("attack")
    assert attack.keywords | {"loss": "margin", "momentum": 0.75, "schedule": "cosine", "steps": 1000, "eps": 0.04,
                              "alpha": pytest.approx(0.032), "targeted": False} == attack.keywords
    assert config.get_parsed_content("output_dir").endswith("/outputs/cxr/pgd_untargeted_eps0.04_strong")


@pytest.mark.parametrize("layer", ["pgd_momentum.yaml", "pgd_strong.yaml"])
def test_pgd_layer_on_a_recipe_that_is_not_pgd_is_named(bundle_root, tiny_datasets, untrained_weights, tmp_path,
                                                        layer):
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "fundus", ["asma.yaml", layer], dataset_dir=str(tiny_datasets["fundus"]),
                   output_dir=str(tmp_path), model_file=str(untrained_weights["fundus"]))
    assert re.search(rf"Config file {layer} is for pgd recipes, but this recipe runs asma; drop {layer}",
                     chain(info.value))
    assert not any(tmp_path.iterdir())


BAD_DOMAIN_OPTIONS = [("model_grid", value, "Option model_grid should be [H, W], two positive multiples of 16")
                      for value in ([500, 500], [256], "256")]
BAD_DOMAIN_OPTIONS += [("intensity_bounds", value,
                        "Option intensity_bounds should be [low, high], two finite numbers with low < high")
                       for value in ([0.25, -0.25], [-1.0], "[-1, 1]")]


@pytest.mark.parametrize("option, value, message", BAD_DOMAIN_OPTIONS)
def test_bad_model_domain_is_named_and_nothing_written(bundle_root, tiny_datasets, untrained_weights, tmp_path,
                                                       option, value, message):
    out = tmp_path / "run"
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], dataset_dir=str(tiny_datasets["cxr"]), output_dir=str(out),
                   model_file=str(untrained_weights["cxr"]), **{option: value, "attack#steps": 1})
    assert message in chain(info.value)
    assert not out.exists()


def test_attack_runs_under_bfloat16_autocast_and_a_bad_amp_is_named(bundle_root, tiny_datasets, untrained_weights,
                                                                    tmp_path):
    args = dict(dataset_dir=str(tiny_datasets["cxr"]), model_file=str(untrained_weights["cxr"]), num_cases=1)
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], output_dir=str(tmp_path / "bf16"), amp="bfloat16", **args,
               **{"attack#steps": 2})
    rows = read_rows(tmp_path / "bf16" / "metrics.csv")
    assert len(rows) == 1 and float(rows[0]["linf"]) <= 0.04 + 1e-6
    with pytest.raises(Exception) as info:
        run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], output_dir=str(tmp_path / "bad"), amp="half", **args)
    assert "Option amp should be one of None, bfloat16, float16, got 'half'" in chain(info.value)
    assert not (tmp_path / "bad").exists()


def _dciodvfy_errors(path):
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy missing: bash scripts/setup.sh installs dicom3tools")
def test_dicom_export_passes_the_validator_and_round_trips(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml", "export_dicom.yaml"], dataset_dir=str(tiny_datasets["cxr"]),
               output_dir=str(tmp_path), model_file=str(untrained_weights["cxr"]), num_cases=1, deidentify=True,
               **{"attack#steps": 2})
    folder = tmp_path / "export" / "cxr_0006"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["adversarial.dcm", "overlay.dcm", "perturbation.nii.gz", "seg_adv_pred.dcm", "seg_clean_pred.dcm",
                     "seg_target.dcm", "source.dcm", "target.png"]
    for name in files:
        if name.endswith(".dcm"):
            assert _dciodvfy_errors(folder / name) == [], name
        if name.endswith(".dcm") and name != "source.dcm":  # each series the attack made says what it is, and when
            ds = pydicom.dcmread(folder / name)
            assert ds.SeriesDescription.endswith(" - ADVERSARIAL RESEARCH, NOT FOR DIAGNOSIS") and ds.SeriesDate, name
    source = pydicom.dcmread(tiny_datasets["cxr"] / "images" / "cxr_0006.dcm")
    adv = pydicom.dcmread(folder / "adversarial.dcm")
    assert adv.PatientIdentityRemoved == "YES" and str(source.PatientID) not in str(adv.PatientID)
    assert adv.StudyInstanceUID == pydicom.dcmread(folder / "source.dcm").StudyInstanceUID
    row = read_rows(tmp_path / "metrics.csv")[0]
    assert 0.0 <= float(row["roundtrip_target_iou"]) <= 1.0 and float(row["linf_stored"]) > 0


def test_export_keeps_the_perturbation_of_a_narrower_model_domain(bundle_root, tiny_datasets, untrained_weights,
                                                                   tmp_path):
    """With --intensity_bounds "[-0.25, 0.25]" the written DICOM, read back by the same run's preprocessing, differs
    from its source by the attack's L-infinity norm in model units (a default-scale export would give a quarter)."""
    bounds = [-0.25, 0.25]
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml", "export_dicom.yaml"], dataset_dir=str(tiny_datasets["cxr"]),
               output_dir=str(tmp_path), model_file=str(untrained_weights["cxr"]), num_cases=1,
               intensity_bounds=bounds, **{"attack#steps": 4})
    read = bundle_config("cxr", intensity_bounds=bounds).get_parsed_content("preprocessing")
    source = read({"image": str(tiny_datasets["cxr"] / "images" / "cxr_0006.dcm")})["image"]
    adv = read({"image": str(tmp_path / "export" / "cxr_0006" / "adversarial.dcm")})["image"]
    linf = float(read_rows(tmp_path / "metrics.csv")[0]["linf"])
    assert linf > 0.005 and float((adv - source).abs().max()) == pytest.approx(linf, abs=5e-4)


def test_photo_export_writes_lossless_png(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    run_attack(bundle_root, "fundus", ["asma.yaml", "export_dicom.yaml"], dataset_dir=str(tiny_datasets["fundus"]),
               output_dir=str(tmp_path), model_file=str(untrained_weights["fundus"]), **{"attack#steps": 2})
    names = sorted(p.name for p in (tmp_path / "export" / "fundus_0006").iterdir())
    assert names == ["adversarial.png", "perturbation_b.nii.gz", "perturbation_g.nii.gz", "perturbation_r.nii.gz",
                     "target.png"]
    assert "roundtrip_target_iou" in read_rows(tmp_path / "metrics.csv")[0]


def test_two_processes_give_the_single_process_table(bundle_root, tiny_datasets, untrained_weights, tmp_path):
    common = dict(dataset_dir=str(tiny_datasets["cxr"]), model_file=str(untrained_weights["cxr"]), batch_size=1)
    run_attack(bundle_root, "cxr", ["pgd_heart.yaml"], output_dir=str(tmp_path / "single"), **common,
               **{"attack#steps": 2})
    configs = [str(bundle_root / "configs" / n) for n in
               ("common.yaml", "cxr.yaml", "attack.yaml", "pgd_heart.yaml", "multi_gpu_attack.yaml")]
    with socket.socket() as free:  # a port nobody uses, for the ranks to meet on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               "-m", "monai.bundle", "run", "--config_file", repr(configs), "--bundle_root", str(bundle_root),
               "--output_dir", str(tmp_path / "multi"), "--attack::steps", "2"]
    command += [a for k, v in common.items() for a in (f"--{k}", str(v))]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    single, multi = read_rows(tmp_path / "single" / "metrics.csv"), read_rows(tmp_path / "multi" / "metrics.csv")
    assert [r["case"] for r in multi] == [r["case"] for r in single] == ["cxr_0006", "cxr_0007"]
    assert not list((tmp_path / "multi").glob("metrics.rank*.csv"))
    assert (tmp_path / "multi" / "settings.json").read_text() == (tmp_path / "single" / "settings.json").read_text()
    for a, b in zip(single, multi):
        for column in a:
            if column in TEXT_COLUMNS:
                assert a[column] == b[column]
            elif column != "seconds":
                assert float(a[column]) == pytest.approx(float(b[column]), abs=1e-5), column


def test_summary_warns_when_an_exported_file_does_not_carry_the_attack(tmp_path, capsys):
    """A file that, read back, scores more than ROUNDTRIP_TOLERANCE from the in-memory target IoU is named in
    summary.md (what --export_beyond_window keep did to a phantom whose window clips the heart: 0.986 -> 0.843)."""
    from bundle.handlers.attack_metrics import ROUNDTRIP_TOLERANCE, AttackMetricsWriter

    rows = [{"case": "clipped", "target_iou": "0.9864", "roundtrip_target_iou": "0.8429"},
            {"case": "fine", "target_iou": "0.9864", "roundtrip_target_iou": f"{0.9864 - ROUNDTRIP_TOLERANCE / 2:.4f}"}]
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    AttackMetricsWriter(tmp_path, "cxr", "pgd_heart_small", ["background", "heart"], progress=False).report()
    summary = (tmp_path / "summary.md").read_text()
    assert "Warning: the exported files of these cases do not carry the attack" in summary
    assert "- clipped: 0.9864 in memory, 0.8429 from the file" in summary
    assert "- fine:" not in summary
    assert "- clipped: 0.9864 in memory" in capsys.readouterr().out

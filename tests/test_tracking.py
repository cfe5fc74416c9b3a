"""Experiment tracking: an attack run's summary metrics reach Ignite's engine state, where MONAI's MLflow handler
(``python -m monai.bundle run ... --tracking mlflow``) logs them, into a local SQLite store (MLflow 3 refuses a file
store); configs/mlflow_attack.yaml (``advseg attack ... --tracking mlflow``) adds the run's settings as params and its
tables as artefacts; configs/tensorboard.yaml writes TensorBoard event files for training and attack runs."""

import csv

import pytest
from monai.bundle import ConfigWorkflow

from bundle.cli import main

mlflow = pytest.importorskip("mlflow")


def _attack(bundle_root, tiny_datasets, out, **options):
    files = [str(bundle_root / "configs" / f"{n}.yaml") for n in ("common", "cxr", "attack", "fgsm")]
    wf = ConfigWorkflow(config_file=files, meta_file=str(bundle_root / "configs" / "metadata.json"), workflow_type="infer",
                        bundle_root=str(bundle_root), dataset_dir=str(tiny_datasets["cxr"]), output_dir=f"$'{out}'",
                        num_cases=1, **options)
    # output_dir as an expression, as the configs have it: MONAI builds the executed config's path by appending
    # "+ '/config_<time>.json'" to its text
    wf.initialize()
    wf.run()
    wf.finalize()
    (row,) = csv.DictReader(open(out / "metrics.csv"))
    return row


def _only_run(store, experiment):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def test_attack_run_logs_its_summary_metrics_to_mlflow(bundle_root, tiny_datasets, tmp_path):
    store = tmp_path / "mlruns.db"
    row = _attack(bundle_root, tiny_datasets, tmp_path / "fgsm", tracking="mlflow", tracking_uri=f"sqlite:///{store}",
                  experiment_name="attacks", run_name="fgsm_cxr")
    client, run = _only_run(store, "attacks")
    assert run.info.run_name == "fgsm_cxr" and run.info.status == "FINISHED"
    for column in ("target_iou", "linf", "l2", "iou_heart", "adv_miou_gt"):
        assert run.data.metrics[column] == pytest.approx(float(row[column]), abs=1e-4), column  # metrics.csv keeps 4 decimals
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert any(a.startswith("config_") and a.endswith(".json") for a in artifacts)  # the executed config


def test_mlflow_attack_settings_log_params_and_tables(bundle_root, tiny_datasets, tmp_path):
    out = tmp_path / "fgsm"
    row = _attack(bundle_root, tiny_datasets, out, tracking=str(bundle_root / "configs" / "mlflow_attack.yaml"))
    client, run = _only_run(out / "mlruns.db", "monai_experiment")  # the settings' default store and experiment
    assert run.info.run_name == row["attack"] == "fgsm_ce_untargeted" and run.info.status == "FINISHED"
    assert run.data.metrics["target_iou"] == pytest.approx(float(row["target_iou"]), abs=1e-4)
    params = run.data.params
    assert params["attack.function"] == "bundle.attacks.fgsm.fgsm" and float(params["attack.eps"]) == float(row["eps"])
    assert params["attack_name"] == row["attack"] and params["network.class"].endswith("UNet") and len(params["model_sha256"]) == 64
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.csv", "summary.csv", "summary.md"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "metrics.csv", str(tmp_path))
    assert open(local).read() == open(out / "metrics.csv").read()


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_event_files_of_an_attack_and_a_training(bundle_root, tiny_datasets, tmp_path):
    row = _attack(bundle_root, tiny_datasets, tmp_path / "fgsm", tracking=str(bundle_root / "configs" / "tensorboard.yaml"))
    scalars = _scalars(tmp_path / "fgsm" / "tensorboard")
    assert scalars["target_iou"] == [(1, pytest.approx(float(row["target_iou"]), abs=1e-4))]
    assert main(["train", "--task", "cxr", "--dataset_dir", str(tiny_datasets["cxr"]), "--output", str(tmp_path / "train"),
                 "--max_epochs", "2", "--val_interval", "1", "--batch_size", "2", "--tracking", "tensorboard"]) == 0
    scalars = _scalars(tmp_path / "train" / "tensorboard")
    assert len(scalars["train_loss"]) == 4  # 4 training cases in batches of 2, 2 epochs
    assert [step for step, _ in scalars["mean_dice"]] == [1, 2]  # validation after each epoch

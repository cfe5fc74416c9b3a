"""Experiment tracking: an attack run's summary metrics reach Ignite's engine state, where MONAI's MLflow handler
(``python -m monai.bundle run ... --tracking mlflow``) logs them, into a local SQLite store (MLflow 3 refuses a file
store)."""

import csv

import pytest
from monai.bundle import ConfigWorkflow

mlflow = pytest.importorskip("mlflow")


def test_attack_run_logs_its_summary_metrics_to_mlflow(bundle_root, tiny_datasets, tmp_path):
    out, store = tmp_path / "fgsm", tmp_path / "mlruns.db"
    files = [str(bundle_root / "configs" / f"{n}.yaml") for n in ("common", "cxr", "attack", "fgsm")]
    wf = ConfigWorkflow(config_file=files, meta_file=str(bundle_root / "configs" / "metadata.json"), workflow_type="infer",
                        tracking="mlflow", bundle_root=str(bundle_root), dataset_dir=str(tiny_datasets["cxr"]),
                        output_dir=f"$'{out}'", num_cases=1, tracking_uri=f"sqlite:///{store}", experiment_name="attacks",
                        run_name="fgsm_cxr")
    # output_dir as an expression, as the configs have it: MONAI builds the executed config's path by appending
    # "+ '/config_<time>.json'" to its text
    wf.initialize()
    wf.run()
    wf.finalize()

    (row,) = csv.DictReader(open(out / "metrics.csv"))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("attacks").experiment_id])
    assert run.info.run_name == "fgsm_cxr" and run.info.status == "FINISHED"
    for column in ("target_iou", "linf", "l2", "iou_heart", "adv_miou_gt"):
        assert run.data.metrics[column] == pytest.approx(float(row[column]), abs=1e-4), column  # metrics.csv keeps 4 decimals
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert any(a.startswith("config_") and a.endswith(".json") for a in artifacts)  # the executed config

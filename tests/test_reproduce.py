"""scripts/reproduce.py: every planned experiment is a valid bundle run, and the tables carry what the runs measured."""

import sys

import pytest

from bundle.config import BUNDLE_ROOT, bundle_config

sys.path.insert(0, str(BUNDLE_ROOT / "scripts"))
import published  # noqa: E402
import reproduce  # noqa: E402
from result_tables import write_results  # noqa: E402


@pytest.mark.parametrize("mode", [reproduce.FULL, reproduce.QUICK], ids=["full", "quick"])
def test_plan_covers_the_papers_tables_with_valid_configs(mode):
    planned = reproduce.plan(mode)
    keys = [e.key for exps in planned.values() for e in exps]
    assert len(keys) == len(set(keys))
    heart = {e.key for e in planned["heart_attack"]}
    assert {f"untargeted_{b}_eps{e}" for b in ("wb", "bb") for e in mode.eps} <= heart
    assert {f"heart_{s}_{b}_eps{e}" for s in ("small", "large") for b in ("wb", "bb") for e in mode.eps} <= heart
    assert len([k for k in heart if k.startswith("resize_")]) == 5 * len(mode.resize_factors)
    assert len(planned["wang_xu"]) == 3 * 3 * 2 * len(mode.fgsm_eps)
    if mode is reproduce.FULL:
        assert mode.eps == published.EPS and mode.resize_factors == published.RESIZE_FACTORS
    for exp in planned["heart_attack"][:4] + planned["asma"][:1] + planned["wang_xu"][-1:]:
        parser = bundle_config(exp.task, ["attack.yaml", *exp.recipe], **exp.overrides)
        assert callable(parser.get_parsed_content("attack"))  # overrides name real options


@pytest.fixture(scope="module")
def measured(tiny_datasets, tmp_path_factory):
    """Two untargeted runs (white and black box) and one ASMA run, 1 step each, on the tiny phantoms."""
    root = tmp_path_factory.mktemp("reproduce")
    runs = {"heart_attack": {}, "asma": {}}
    for key, recipe in (("untargeted_wb_eps0.02", ("pgd_untargeted.yaml",)),
                        ("untargeted_bb_eps0.02", ("pgd_untargeted.yaml", "transfer.yaml"))):
        exp = reproduce.Experiment(key, "cxr", recipe, {"attack#eps": 0.02, "dataset_dir": str(tiny_datasets["cxr"])})
        runs["heart_attack"][key] = reproduce.run_experiment(exp, root, cases=2, steps=1)
    exp = reproduce.Experiment("fundus_asma", "fundus", ("asma.yaml",), {"dataset_dir": str(tiny_datasets["fundus"])})
    runs["asma"]["fundus_asma"] = reproduce.run_experiment(exp, root, cases=2, steps=1)
    return root, runs


def test_runs_write_their_metrics_and_logs(measured):
    root, runs = measured
    rows = runs["heart_attack"]["untargeted_wb_eps0.02"]
    assert len(rows) == 2 and len({r["case"] for r in rows}) == 2
    assert all(r["steps"] == 1 and 0 < r["linf"] <= 0.02 + 1e-6 for r in rows)
    assert (root / "untargeted_wb_eps0.02" / "run.log").read_text().count("cases") >= 1
    assert runs["asma"]["fundus_asma"][0]["attack"] == "asma"


def test_tables_put_measured_values_next_to_published_ones(measured, tmp_path):
    _, runs = measured
    written = write_results(runs, tmp_path, mode=reproduce.QUICK, cases=2, command="python scripts/reproduce.py",
                            minutes=0.1, example=None)
    assert {p.name for p in written} == {"asma.md", "heart_attack.md", "heart_attack_curves.png"}
    text = (tmp_path / "heart_attack.md").read_text()
    rows = runs["heart_attack"]["untargeted_wb_eps0.02"]
    ours = sum(r["adv_miou_gt"] for r in rows) / len(rows) * 100
    table1 = text.split("## Table 1")[1].split("## Table 2")[0]
    white, white_paper = [line for line in table1.splitlines() if line.startswith("| white-box")]
    assert white.split(" | ")[2].startswith(f"{ours:.1f} ± ")  # column eps 0.02
    assert white.split(" | ")[1] == "-"  # eps 0.01 did not run
    assert white_paper == "| white-box, paper | 30.5 | 0.8 | 0.1 | 0.0 | 0.0 |"
    asma = (tmp_path / "asma.md").read_text()
    assert "| fundus | ASMA |" in asma and "| 2.47 ± 1.05 |" in asma and "| dermoscopy | SSM | - |" in asma

"""The main job: the shipped models on the phantoms, clean and under attack, in a few minutes on a CPU.

    python scripts/demo.py [--output_dir outputs/demo] [--attack_cases 4]

1. Generates the phantom test splits if they are missing.
2. Evaluates the shipped models on their whole test splits and prints a per-class Dice / IoU table.
3. Runs ASMA on fundus photographs and the heart-symbol PGD on the CXR DICOM phantoms (with DICOM export)
   on the first ``--attack_cases`` test cases and prints their summary tables.

Every step is a bundle config run, exactly as ``python -m monai.bundle run --config_file "[...]"`` does it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from monai.bundle import ConfigWorkflow

from bundle.config import work_root
from bundle.handlers.tables import summarise

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("fundus", "dermoscopy", "cxr")
ATTACKS = (("fundus", ["asma.yaml"]), ("cxr", ["pgd_heart.yaml", "export_dicom.yaml"]))


def run_bundle(task: str, files: list[str], **overrides) -> None:
    """Run ``common.yaml``, ``<task>.yaml`` and ``files`` (in configs/) as one bundle workflow."""
    paths = [str(ROOT / "configs" / n) for n in ("common.yaml", f"{task}.yaml", *files)]
    wf = ConfigWorkflow(config_file=paths, meta_file=str(ROOT / "configs" / "metadata.json"), workflow_type="infer",
                        bundle_root=str(ROOT), **overrides)
    wf.initialize()
    wf.run()
    wf.finalize()


def clean_table(output_dir: Path) -> str:
    lines = ["| task | class | Dice (mean ± std) | IoU (mean ± std) | cases |", "|---|---|---|---|---|"]
    for task in TASKS:
        run_bundle(task, ["evaluate.yaml"], output_dir=str(output_dir / task))
        with open(output_dir / task / "clean_target_metrics.csv") as f:
            rows = list(csv.DictReader(f))
        stats = {s["metric"]: s for s in summarise(rows, [c for c in rows[0] if c != "case"])}
        for col in [c[5:] for c in rows[0] if c.startswith("dice_")]:
            d, i = stats[f"dice_{col}"], stats[f"iou_{col}"]
            lines.append(f"| {task} | {col} | {d['mean']:.4f} ± {d['std']:.4f} | {i['mean']:.4f} ± {i['std']:.4f} "
                         f"| {len(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", type=Path, default=Path(work_root(ROOT)) / "outputs" / "demo")
    parser.add_argument("--attack_cases", type=int, default=4, help="test cases per attack (0 skips the attacks)")
    args = parser.parse_args(argv)
    table = clean_table(args.output_dir)
    print("\nClean segmentation of the shipped models on their test splits\n" + table, flush=True)
    (args.output_dir / "clean_summary.md").write_text(table + "\n")
    if args.attack_cases > 0:
        for task, recipe in ATTACKS:
            run_bundle(task, ["attack.yaml", *recipe], num_cases=args.attack_cases,
                       output_dir=str(args.output_dir / task / recipe[0][:-5]))
    print(f"\nAll outputs (tables, overlays/, export/ with DICOM, SEG and NIfTI): {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much of an exported attack survives the lossy routes images take through real archives.

    python scripts/robustness.py outputs/roundtrip/fundus_asma outputs/roundtrip/cxr_pgd_heart_small \\
        [--jpeg_quality 90] [--j2k_ratio 10] [--out docs/results/robustness]

For every case of an attack run made with ``configs/export_dicom.yaml`` this re-segments, with the run's
shipped model and preprocessing, (a) the exported file as written (lossless: PNG or uncompressed DICOM),
(b) the same image re-compressed: JPEG at ``--jpeg_quality`` for photographs, lossy JPEG 2000 at
``--j2k_ratio``:1 for DICOM, and reports the target IoU (the ASMA paper's IoU with the attack target) of each,
next to the in-memory value from ``metrics.csv``. For CXR runs a second line gives the same for the heart
alone (its IoU with the heart of the target), the structure the heart-symbol attack reshapes; the paper IoU
there is dominated by the lungs. Writes ``<out>.md`` and a bar chart ``<out>.png``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pydicom  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pydicom.uid import JPEG2000  # noqa: E402

from bundle import load_network  # noqa: E402
from bundle.config import bundle_config  # noqa: E402
from bundle.metrics import class_iou, paper_iou  # noqa: E402

HEART = 3  # cxr class index


def recompress(path: Path, folder: Path, jpeg_quality: int, j2k_ratio: float) -> Path:
    """A lossy copy of ``path`` in ``folder``: JPEG for a PNG photograph, JPEG 2000 for a DICOM image."""
    if path.suffix == ".png":
        out = folder / f"{path.parent.name}.jpg"
        with Image.open(path) as im:
            im.convert("RGB").save(out, quality=jpeg_quality)
        return out
    ds = pydicom.dcmread(path)
    ds.compress(JPEG2000, j2k_cr=[j2k_ratio])
    out = folder / f"{path.parent.name}.dcm"
    ds.save_as(out)
    return out


def target_iou(net, preprocessing, image: Path, target: Path) -> tuple[float, list[float]]:
    """The paper IoU of the network's prediction on ``image`` with ``target``, and each class's IoU with it."""
    item = preprocessing({"image": str(image), "label": str(target)})
    label = item["label"].as_tensor()[None].long()
    with torch.no_grad():
        logits = net(item["image"].as_tensor()[None])
    pred = logits.argmax(1, keepdim=True)
    return float(paper_iou(pred, label)[0]), class_iou(pred, label, logits.shape[1])[0].tolist()


def measure(run: Path, jpeg_quality: int, j2k_ratio: float) -> list[dict]:
    if not (run / "metrics.csv").is_file() or not (run / "export").is_dir():
        raise SystemExit(f"{run} has no metrics.csv and export/ folder; give the output_dir of an attack run made "
                         f"with configs/export_dicom.yaml (see docs/export.md).")
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    task = rows[0]["task"]
    net = load_network(task)
    preprocessing = bundle_config(task).get_parsed_content("preprocessing")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            folder = run / "export" / row["case"]
            written = next((p for p in (folder / "adversarial.png", folder / "adversarial.dcm") if p.is_file()), None)
            if written is None or not (folder / "target.png").is_file():
                raise SystemExit(f"{folder} lacks adversarial.png / adversarial.dcm or target.png (a run without "
                                 f"export_dicom.yaml, or an older one); rerun the attack with configs/export_dicom.yaml "
                                 f"into a new output_dir.")
            lossy = recompress(written, Path(tmp), jpeg_quality, j2k_ratio)
            file, file_classes = target_iou(net, preprocessing, written, folder / "target.png")
            after, after_classes = target_iou(net, preprocessing, lossy, folder / "target.png")
            out.append({"run": run.name, "case": row["case"], "photo": written.suffix == ".png",
                        "in_memory": float(row["target_iou"]), "file": file, "lossy": after})
            if task == "cxr":
                out[-1].update(heart_in_memory=float(row["iou_heart"]), heart_file=file_classes[HEART],
                               heart_lossy=after_classes[HEART])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--jpeg_quality", type=int, default=90)
    parser.add_argument("--j2k_ratio", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/robustness"))
    args = parser.parse_args()
    results = {run.name: measure(run, args.jpeg_quality, args.j2k_ratio) for run in args.runs}
    lossy_name = {True: f"JPEG q{args.jpeg_quality}", False: f"JPEG 2000 {args.j2k_ratio:g}:1"}
    lines = ["| run | measure | cases | in memory | file as written | ratio | lossy route | after lossy | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        route = lossy_name[rows[0]["photo"]]
        for what, prefix in (("target IoU", ""), ("heart IoU with the symbol", "heart_")):
            if prefix + "file" not in rows[0]:
                continue
            mean = {k: sum(r[prefix + k] for r in rows) / len(rows) for k in ("in_memory", "file", "lossy")}
            std = {k: (sum((r[prefix + k] - mean[k]) ** 2 for r in rows) / len(rows)) ** 0.5 for k in mean}
            lines.append(f"| {name} | {what} | {len(rows)} | {mean['in_memory']:.4f} ± {std['in_memory']:.4f} | "
                         f"{mean['file']:.4f} ± {std['file']:.4f} | {mean['file'] / mean['in_memory']:.3f} | {route} | "
                         f"{mean['lossy']:.4f} ± {std['lossy']:.4f} | {mean['lossy'] / mean['in_memory']:.3f} |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    groups = [(name, prefix) for name, rows in results.items() for prefix in ("", "heart_") if prefix + "file" in rows[0]]
    fig, ax = plt.subplots(figsize=(2.4 * len(groups) + 1, 3.8))
    for k, (key, label) in enumerate((("in_memory", "in memory"), ("file", "file as written"), ("lossy", "lossy copy"))):
        values = [[r[prefix + key] for r in results[name]] for name, prefix in groups]
        ax.bar([i + 0.27 * (k - 1) for i in range(len(groups))], [sum(v) / len(v) for v in values], width=0.27,
               yerr=[(sum((x - sum(v) / len(v)) ** 2 for x in v) / len(v)) ** 0.5 for v in values], capsize=2,
               label=label)
    ax.set_xticks(range(len(groups)), [f"{name}\n({lossy_name[results[name][0]['photo']]})" + ("\nheart only" if prefix else "")
                                       for name, prefix in groups], fontsize=8)
    ax.set_ylabel("IoU with the attack target")
    ax.set_title(f"Attacks through the file and a lossy copy ({', '.join(f'{n}: {len(r)} cases' for n, r in results.items())})",
                 fontsize=8)
    ax.set_ylim(0, 1.2)
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()

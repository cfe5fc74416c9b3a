"""Evaluate a chest X-ray model on the real radiograph that pydicom-data ships, against a drawn reference.

The model segments ``RG1_UNCR.dcm`` (a PA chest CR) exactly as ``advseg segment`` does; the label map at the
file's size is compared with the reference outlines in ``tests/data/real/RG1_UNCR_reference.json`` (drawn by
an engineer, not a radiologist; how and how uncertain is written in the file). The measures do not depend on
exact outlines: per-structure Dice, the share of each lung's predicted pixels on its correct side of the
patient's midline, the side of the heart's centroid, and connected components per structure.

    python scripts/real_cxr.py                        # the shipped models/cxr.pt
    python scripts/real_cxr.py --model outputs/cxr_v3/train_target/model_best.pt --name v3
    python scripts/real_cxr.py --architecture attention_unet --name attention_unet   # a shipped variant
    python scripts/real_cxr.py --stats 40             # appearance: the radiograph against 40 phantoms

Writes ``<output>/real_cxr_<name>.json`` and ``<output>/real_cxr_<name>.png`` (reference outlines over the
prediction) and prints a markdown table. Real images are only evaluated on, never trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from pydicom.data import get_testdata_file
from scipy import ndimage

from bundle.metrics import heart_lung_contrast, structure_pieces
from bundle.networks import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "real" / "RG1_UNCR_reference.json"
CLASSES = {"right_lung": 1, "left_lung": 2, "heart": 3}  # the reference has no clavicles
COLOURS = {1: (230, 60, 60), 2: (60, 200, 60), 3: (70, 110, 255), 4: (240, 200, 0), 5: (0, 210, 230)}


def reference_masks(reference: dict, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The reference polygons rasterised at the image's size: ``{class name: bool (H, W)}``."""
    masks = {}
    for name, polygon in reference["classes"].items():
        canvas = Image.new("1", (shape[1], shape[0]), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in polygon], fill=1)
        masks[name] = np.asarray(canvas, dtype=bool)
    return masks


def midline(reference: dict) -> float:
    """The patient's midline (column): halfway between the two lungs' medial borders in the reference."""
    return (max(x for x, _ in reference["classes"]["right_lung"]) + min(x for x, _ in reference["classes"]["left_lung"])) / 2


def measures(pred: np.ndarray, reference: dict) -> dict:
    """Outline-independent measures of a predicted label map ``(H, W)`` (values 0..5) against the reference.

    Components are counted as the attack runs' warning counts them (:func:`bundle.metrics.structure_pieces`:
    8-connected, specks under 0.02 % of the image left out); the largest one's share is of all the class's pixels."""
    masks = reference_masks(reference, pred.shape)
    mid = midline(reference)
    cols = np.arange(pred.shape[1])[None, :]
    pieces = structure_pieces(torch.from_numpy(pred.astype(np.int64))[None, None], 6)[0]
    out = {}
    for name, value in CLASSES.items():
        p, r = pred == value, masks[name]
        denom = p.sum() + r.sum()
        labels, n = ndimage.label(p, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())[1:] if n else np.zeros(0)
        row = {"dice": float(2 * (p & r).sum() / denom) if denom else 1.0, "pixels": int(p.sum()),
               "components": int(pieces[value]), "largest_component_share": float(sizes.max() / sizes.sum()) if n else 0.0}
        if name != "heart":  # the patient's right lung lies on the image left of the midline
            correct = (cols < mid) if name == "right_lung" else (cols > mid)
            row["correct_side_share"] = float((p & correct).sum() / p.sum()) if p.any() else 0.0
        else:
            row["centroid_side"] = ("patient's left" if (cols * p).sum() / p.sum() > mid else "patient's right") if p.any() else "none"
        out[name] = row
    return out


def segment(image: Path, model: Path | None, architecture: str) -> np.ndarray:
    """The label map ``advseg segment`` writes for ``image`` (at the image's size)."""
    from bundle.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["segment", "--task", "cxr", "--input", str(image), "--output", tmp, "--architecture", architecture]
        status = main(argv + (["--model", str(model)] if model else []))
        if status:  # advseg has said why (a bad --model: status 2)
            raise SystemExit(status)
        return np.asarray(Image.open(next(Path(tmp).glob("*/label.png"))))


def overlay(image: Path, pred: np.ndarray, reference: dict, path: Path) -> None:
    """The radiograph with the prediction in colour and the reference outlines in white, 1/3 size."""
    from bundle.transforms import read_xray_dicom

    gray, _ = read_xray_dicom(image)
    rgb = np.repeat((gray * 255).astype(np.float32)[..., None], 3, axis=2)
    for value, colour in COLOURS.items():
        rgb[pred == value] = 0.55 * rgb[pred == value] + 0.45 * np.asarray(colour, np.float32)
    canvas = Image.fromarray(rgb.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for polygon in reference["classes"].values():
        pts = [tuple(p) for p in polygon]
        draw.line(pts + [pts[0]], fill=(255, 255, 255), width=6)
    canvas.resize((canvas.width // 3, canvas.height // 3), Image.LANCZOS).save(path)


def appearance(display: np.ndarray, label: np.ndarray) -> dict:
    """Appearance of one radiograph: display image ``(H, W)`` in [0, 1] with its label map (0..3 used).

    Intensity quantiles, heart - lung contrast, the slope of the radially averaged power spectrum (on a 512 grid,
    frequencies 4-128 cycles per image) and the lungs' and heart's share of the field and cardiothoracic ratio."""
    small = np.asarray(Image.fromarray(display.astype(np.float32), mode="F").resize((512, 512), Image.BILINEAR))
    power = np.abs(np.fft.fftshift(np.fft.fft2(small - small.mean()))) ** 2
    yy, xx = np.indices(power.shape) - 256
    radius = np.hypot(yy, xx).astype(int)
    radial = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    f = np.arange(4, 129)
    lungs, heart = np.isin(label, (1, 2)), label == 3
    lung_cols, heart_cols = np.flatnonzero(lungs.any(0)), np.flatnonzero(heart.any(0))
    return {"quantiles_5_50_95": np.quantile(display, [0.05, 0.5, 0.95]).round(3).tolist(),
            "heart_minus_lung": float(heart_lung_contrast(*(torch.from_numpy(a)[None, None] for a in (display, label)))),
            "spectrum_slope": float(np.polyfit(np.log(f), np.log(radial[f]), 1)[0]),
            "lung_share": float(lungs.mean()), "heart_share": float(heart.mean()),
            "cardiothoracic_ratio": float(np.ptp(heart_cols) / np.ptp(lung_cols))}


def appearance_table(n: int, reference: dict) -> str:
    """The real radiograph's appearance against ``n`` phantoms of this renderer (mean and range)."""
    from bundle.data.cxr import generate_cxr
    from bundle.transforms import read_xray_dicom, voi_range

    image = Path(get_testdata_file("RG1_UNCR.dcm"))
    display, _ = read_xray_dicom(image)
    masks = reference_masks(reference, display.shape)
    label = np.zeros(display.shape, np.uint8)
    for name, value in CLASSES.items():
        label[masks[name]] = value
    rows = {"RG1_UNCR (real)": appearance(display, label)}
    phantoms = []
    for k in range(n):  # a seed space of its own: neither the fixed splits nor the training stream
        pixels, plabel, info = generate_cxr(np.random.default_rng([0, 2, 5_000_011, k]), 1024)
        lo, hi = voi_range(*info["window"])
        phantoms.append(appearance(np.clip((pixels - lo) / (hi - lo), 0, 1), plabel))
    lines = ["| image | display quantiles 5 / 50 / 95 % | heart - lung | spectrum slope | lung share | heart share | "
             "cardiothoracic ratio |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        q = " / ".join(f"{v:.2f}" for v in r["quantiles_5_50_95"])
        lines.append(f"| {name} | {q} | {r['heart_minus_lung']:.2f} | {r['spectrum_slope']:.2f} | "
                     f"{r['lung_share']:.2f} | {r['heart_share']:.3f} | {r['cardiothoracic_ratio']:.2f} |")

    def span(key: str, fmt: str, index: int | None = None) -> str:
        v = np.array([p[key] if index is None else p[key][index] for p in phantoms])
        return f"{v.mean():{fmt}} ({v.min():{fmt}}-{v.max():{fmt}})"

    q = " / ".join(span("quantiles_5_50_95", ".2f", i) for i in range(3))
    lines.append(f"| {n} phantoms, mean (min-max) | {q} | {span('heart_minus_lung', '.2f')} | {span('spectrum_slope', '.2f')} "
                 f"| {span('lung_share', '.2f')} | {span('heart_share', '.3f')} | {span('cardiothoracic_ratio', '.2f')} |")
    return "\n".join(lines)


def table(name: str, result: dict) -> str:
    """One markdown row per structure."""
    rows = ["| model | structure | Dice | components (largest share) | correct side / heart centroid |",
            "|---|---|---|---|---|"]
    for struct, r in result.items():
        side = f"{r['correct_side_share']:.0%}" if "correct_side_share" in r else r["centroid_side"]
        rows.append(f"| {name} | {struct} | {r['dice']:.3f} | {r['components']} ({r['largest_component_share']:.0%}) | {side} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped models/cxr.pt)")
    parser.add_argument("--architecture", default="unet", choices=ARCHITECTURES,
                        help="network family of the model (default unet; the shipped attention_unet and "
                             "unet_plus_plus without --model)")
    parser.add_argument("--name", default="shipped", help="name of the model in the table and file names")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--stats", type=int, default=0, metavar="N",
                        help="only print the appearance of the real radiograph against N phantoms")
    args = parser.parse_args(argv)
    if args.stats:
        print(appearance_table(args.stats, json.loads(REFERENCE.read_text())))
        return 0
    image = Path(get_testdata_file("RG1_UNCR.dcm"))
    reference = json.loads(REFERENCE.read_text())
    pred = segment(image, args.model, args.architecture)
    result = measures(pred, reference)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"real_cxr_{args.name}.json").write_text(json.dumps(result, indent=1))
    overlay(image, pred, reference, args.output / f"real_cxr_{args.name}.png")
    print(table(args.name, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A fundus model on a real photograph: optic disc Dice and centre error against a hand-drawn reference.

    python scripts/real_fundus.py                                  # the shipped models/fundus.pt
    python scripts/real_fundus.py --model outputs/fundus_v3/train_target/model_best.pt --name v2
    python scripts/real_fundus.py --stats 60                       # appearance: the photograph against phantoms

The photograph is scikit-image's ``retina.jpg`` (a macula-centred field of a left eye, 1411 x 1411); the reference
is ``tests/data/real/retina_disc.json`` (how it was drawn and how uncertain it is are written in it). The model
segments the photograph twice, each time loaded from a file by the fundus task's own loading transforms (read,
area-resized to the model grid): the whole field, and a square crop of ``--crop`` disc diameters centred on the
reference disc (RIM-ONE's framing; outside the photograph is black). The logits are resized back to the
photograph's pixels before the argmax. Measures (disc = rim + cup): disc Dice, the distance between the predicted
and the reference disc centroids in reference disc radii (radius of the circle of the reference's area), cup Dice
(indicative only) and the predicted disc area relative to the reference. Goals of issue 24: disc Dice >= 0.80 and
centre error < 0.25 in both framings. ``--figure`` draws both (reference green, predicted disc yellow, predicted
cup blue). The photograph is only evaluated on: never used to train a model or to choose renderer settings.

``--stats N`` prints appearance statistics of the photograph and of ``2 N`` phantoms of the renderer that
``bundle`` imports, grouped by framing (colour inside the field of view, radial power spectrum, disc diameter
relative to the field).
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
from scipy import ndimage

from bundle import load_network
from bundle.config import bundle_config

ROOT = Path(__file__).resolve().parents[1]
ANNOTATION = ROOT / "tests" / "data" / "real" / "retina_disc.json"
FOV_THRESHOLD = 25  # a pixel whose brightest channel exceeds this (of 255) is inside the field of view


def photograph_path() -> Path:
    """Path of scikit-image's ``retina.jpg`` (installed with the package; ``pip install scikit-image``)."""
    import skimage

    path = Path(skimage.__file__).parent / "data" / "retina.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; install scikit-image (the test extra of pyproject.toml).")
    return path


def reference_masks(annotation: dict, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The reference disc and cup as boolean ``(H, W)`` masks from the annotation's polygon and ellipse."""
    disc = Image.new("L", shape[::-1], 0)
    ImageDraw.Draw(disc).polygon([tuple(p) for p in annotation["disc_polygon"]], fill=1)
    cup = Image.new("L", shape[::-1], 0)
    e = annotation["cup_ellipse"]
    (cx, cy), (ax, ay) = e["center"], e["semi_axes"]
    ImageDraw.Draw(cup).ellipse([cx - ax, cy - ay, cx + ax, cy + ay], fill=1)
    return np.asarray(disc, bool), np.asarray(cup, bool)


def crop_box(disc: np.ndarray, factor: float) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square of ``factor`` disc diameters centred on the disc mask's centroid."""
    cy, cx = ndimage.center_of_mass(disc)
    side = int(round(factor * 2 * np.sqrt(disc.sum() / np.pi)))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop(array: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """``array[y0:y0+side, x0:x0+side]`` with zeros where the square leaves the array."""
    x0, y0, side = box
    out = np.zeros((side, side) + array.shape[2:], array.dtype)
    ys, xs = slice(max(0, y0), min(array.shape[0], y0 + side)), slice(max(0, x0), min(array.shape[1], x0 + side))
    out[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = array[ys, xs]
    return out


@torch.no_grad()
def segment(network: torch.nn.Module, transforms, path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Label map ``(H, W)`` (0 background, 1 rim, 2 cup) at the file's size, the file loaded by ``transforms``."""
    item = {"image": str(path)}
    for transform in transforms:
        item = transform(item)
    logits = network(item["image"].as_tensor()[None].float())
    logits = torch.nn.functional.interpolate(logits, size=shape, mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].numpy().astype(np.uint8)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else 1.0


def centre_error(pred: np.ndarray, reference: np.ndarray) -> float:
    """Distance between the centroids of two boolean masks in radii of the circle of the reference's area; nan
    where ``pred`` is empty."""
    if not pred.any():
        return float("nan")
    radius = np.sqrt(reference.sum() / np.pi)
    return float(np.hypot(*np.subtract(ndimage.center_of_mass(pred), ndimage.center_of_mass(reference))) / radius)


def measures(pred: np.ndarray, disc: np.ndarray, cup: np.ndarray) -> dict:
    """Disc / cup Dice, centre error in reference disc radii (nan without a predicted disc), predicted area ratio."""
    pdisc = pred > 0
    return {"disc_dice": dice(pdisc, disc), "centre_error": centre_error(pdisc, disc), "cup_dice": dice(pred == 2, cup),
            "area_ratio": float(pdisc.sum() / disc.sum())}


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, iterations=width) if mask.any() else mask


def overlay(image: np.ndarray, pred: np.ndarray, disc: np.ndarray, cup: np.ndarray, width: int) -> np.ndarray:
    """RGB picture: reference disc / cup outlines green, predicted disc yellow, predicted cup blue."""
    out = image.copy()
    for mask, colour in ((disc, (0, 255, 0)), (cup, (0, 160, 0)), (pred > 0, (255, 255, 0)), (pred == 2, (0, 128, 255))):
        out[_outline(mask, width)] = colour
    return out


def evaluate(model: str | None, factor: float, figure: Path | None) -> list[dict]:
    """Rows ``{"framing", measures...}`` for the whole photograph and the disc-centred crop."""
    annotation = json.loads(ANNOTATION.read_text())
    path = photograph_path()
    image = np.asarray(Image.open(path).convert("RGB"))
    disc, cup = reference_masks(annotation, image.shape[:2])
    network = load_network("fundus", model_file=model)
    transforms = bundle_config("fundus").get_parsed_content("load_transforms")
    box = crop_box(disc, factor)
    crop_image, crop_disc, crop_cup = crop(image, box), crop(disc, box), crop(cup, box)
    with tempfile.TemporaryDirectory() as tmp:
        crop_path = Path(tmp) / "retina_disc_crop.png"
        Image.fromarray(crop_image).save(crop_path)
        pred_full = segment(network, transforms, path, image.shape[:2])
        pred_crop = segment(network, transforms, crop_path, crop_image.shape[:2])
    rows = [{"framing": "whole field", **measures(pred_full, disc, cup)},
            {"framing": f"disc crop ({factor:g} disc diameters)", **measures(pred_crop, crop_disc, crop_cup)}]
    if figure is not None:
        # the whole field at the crop's size beside the crop: both about 600 pixels high
        scale = crop_image.shape[0] / image.shape[0]
        full = overlay(image, pred_full, disc, cup, width=4)
        full = np.asarray(Image.fromarray(full).resize(crop_image.shape[1::-1], Image.BILINEAR)) if scale < 1 else full
        figure.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([full, overlay(crop_image, pred_crop, crop_disc, crop_cup, 2)], 1)).save(figure)
    return rows


# ---------------- appearance statistics ----------------

def colour_stats(image: np.ndarray) -> dict:
    """Per channel median and 5-95 % range of the pixels inside the field of view (0-255)."""
    fov = image.max(-1) > FOV_THRESHOLD
    out = {}
    for c, name in enumerate("RGB"):
        v = image[..., c][fov]
        out[name] = np.percentile(v, [5, 50, 95])
    return out


def spectrum_slope(image: np.ndarray) -> tuple[float, float]:
    """Slope of the log radial power spectrum of the green channel (4-64 cycles per image) and the share of power
    above 32 cycles; on the largest square inside the field of view (or the whole image), area-resized to 256."""
    fov = image.max(-1) > FOV_THRESHOLD
    rows, cols = np.flatnonzero(fov.any(1)), np.flatnonzero(fov.any(0))
    cy, cx = (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2
    half = min(rows[-1] - rows[0], cols[-1] - cols[0]) / 2
    half = half / np.sqrt(2) if fov.mean() < 0.9 else half  # a circular field: its inscribed square
    g = image[int(cy - half):int(cy + half), int(cx - half):int(cx + half), 1]
    g = np.asarray(Image.fromarray(g).resize((256, 256), Image.BOX), np.float64)
    g = (g - g.mean()) / max(g.mean(), 1.0)
    power = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    yy, xx = np.indices(power.shape) - 128
    r = np.hypot(yy, xx).astype(int)
    radial = np.bincount(r.ravel(), power.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    f = np.arange(4, 65)
    slope = np.polyfit(np.log(f), np.log(radial[f]), 1)[0]
    high = radial[32:128].sum() / radial[1:128].sum()
    return float(slope), float(high)


def appearance_table(n: int, factor: float) -> str:
    """Markdown table of the statistics for the photograph, its disc crop and ``2 n`` phantoms, grouped by framing."""
    from bundle.data.fundus import generate_fundus

    annotation = json.loads(ANNOTATION.read_text())
    image = np.asarray(Image.open(photograph_path()).convert("RGB"))
    disc, _ = reference_masks(annotation, image.shape[:2])
    fov = image.max(-1) > FOV_THRESHOLD
    cols = np.flatnonzero(fov.any(0))
    real_dd = 2 * np.sqrt(disc.sum() / np.pi)
    sets = {"real: whole field": ([image], [real_dd / (cols[-1] - cols[0] + 1)]),
            "real: disc crop": ([crop(image, crop_box(disc, factor))], [1 / factor])}
    groups: dict[str, tuple[list, list]] = {}
    for k in range(2 * n):  # seeds of neither the fixed splits nor the training stream
        im, _, info = generate_fundus(np.random.default_rng([424242, k]), 512)
        framing = info.get("framing", "disc-centred field, renderer 1")
        ims, dds = groups.setdefault(framing, ([], []))
        ims.append(im)
        dds.append(info["disc_diameter"] / info["field_diameter"] if framing == "field" else info["disc_diameter"])
    for framing, (ims, dds) in sorted(groups.items()):
        sets[f"phantoms: {framing} (n={len(ims)})"] = (ims, dds)
    lines = ["| images | R median [5-95 %] | G median [5-95 %] | B median [5-95 %] | spectrum slope | power > 32 cycles "
             "| disc diameter / field (crop: / width) |", "|---|---|---|---|---|---|---|"]
    for name, (ims, dds) in sets.items():
        stats = [colour_stats(im) for im in ims]
        cells = []
        for c in "RGB":
            p = np.array([s[c] for s in stats])  # (n, 3)
            if len(ims) == 1:
                cells.append(f"{p[0, 1]:.0f} [{p[0, 0]:.0f}-{p[0, 2]:.0f}]")
            else:  # phantoms: the median over cases, and the range of the per-case medians
                cells.append(f"{np.median(p[:, 1]):.0f} [{p[:, 0].min():.0f}-{p[:, 2].max():.0f}], medians "
                             f"{p[:, 1].min():.0f}-{p[:, 1].max():.0f}")
        spec = np.array([spectrum_slope(im) for im in ims])
        dd = np.array(dds)
        if len(ims) == 1:
            cells += [f"{spec[0, 0]:.2f}", f"{spec[0, 1]:.4f}", f"{dd[0]:.3f}"]
        else:
            cells += [f"{np.median(spec[:, 0]):.2f} ({spec[:, 0].min():.2f} to {spec[:, 0].max():.2f})",
                      f"{np.median(spec[:, 1]):.4f} ({spec[:, 1].min():.4f}-{spec[:, 1].max():.4f})",
                      f"{np.median(dd):.3f} ({dd.min():.3f}-{dd.max():.3f})"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="state_dict of a fundus U-Net (default: models/fundus.pt)")
    parser.add_argument("--name", default=None, help="name in the table and the figure (default: the model's file name)")
    parser.add_argument("--crop", type=float, default=2.5, help="side of the disc crop in disc diameters (2.5)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="overlay picture (default docs/figures/real_fundus_<name>.png; 'none' for no picture)")
    parser.add_argument("--stats", type=int, default=0, metavar="N",
                        help="print appearance statistics of the photograph and of 2 N phantoms (both framings) instead")
    args = parser.parse_args(argv)
    if args.crop <= 1:
        parser.error(f"Option --crop should be a number of disc diameters > 1, got {args.crop:g}.")
    if args.stats:
        print(appearance_table(args.stats, args.crop))
        return 0
    name = args.name or Path(args.model or "models/fundus.pt").stem
    figure = None if str(args.figure) == "none" else (args.figure or ROOT / "docs" / "figures" / f"real_fundus_{name}.png")
    rows = evaluate(args.model, args.crop, figure)
    print(f"model: {args.model or 'models/fundus.pt'} ({name})")
    print("| framing | disc Dice | centre error (disc radii) | predicted / reference disc area | cup Dice |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['framing']} | {r['disc_dice']:.3f} | {r['centre_error']:.3f} | {r['area_ratio']:.2f} | {r['cup_dice']:.3f} |")
    if figure is not None:
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The dermoscopy model on a real skin photograph: lesion Dice, centre error and pieces against a reference outline.

    python scripts/real_dermoscopy.py                        # the shipped models/dermoscopy.pt
    python scripts/real_dermoscopy.py --model <state_dict.pt> --name <name>
    python scripts/real_dermoscopy.py --stats 60           # appearance: the photograph against phantoms

No dermoscopy image could be found offline; the nearest real one is the example photograph in the wheel of PyPI's
dermapred 0.0.3 (Apache-2.0): an iPhone close-up of hairy skin, 1528 x 1360, with a 56-pixel pigmented naevus and
fainter spots. ``bash scripts/setup.sh`` unpacks it into ``$ADVSEG_REAL_IMAGES`` (default ``~/.cache/advseg-real``).
The reference is ``tests/data/real/dermapred_naevus.json`` (how it was drawn and how uncertain it is are written
in it). The model segments the photograph in several framings, each loaded from a file by the dermoscopy task's
own loading transforms (read, area-resized to the model grid), the logits resized back to the file's pixels
before the argmax: the whole photograph (the phone's framing: the naevus is 0.1 % of it), and square crops of
``--crops`` naevus diameters centred on the reference naevus (the framing of a dermoscopy image, where the lesion
fills 5-60 % of the field; renderer 2's phantom lesions fill 5-60 %). Measures: lesion Dice; the distance between the
predicted and the reference centroids in reference radii (radius of the circle of the reference's area); the
predicted area over the reference's; the predicted pieces, counted as the attack runs' warning counts them. The
photograph is only evaluated on: never used to train a model or to choose renderer settings.

``--stats N`` prints appearance statistics of the naevus and its framings and of ``N`` phantoms of the renderer
that ``bundle`` imports: the lesion's colour step from the skin around it, its brightness ratio, the width of
its edge, the green channel's spectrum, and the brightness variation of the skin around the lesion and of the
lesion itself at the model grid (no model is run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from bundle import load_network
from bundle.config import bundle_config
from bundle.metrics import structure_pieces
from bundle.transforms import read_photo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_fundus import centre_error, crop, crop_box, dice, segment, spectrum_slope  # noqa: E402  (the same framing and scoring)

ROOT = Path(__file__).resolve().parents[1]
ANNOTATION = ROOT / "tests" / "data" / "real" / "dermapred_naevus.json"
PHOTOGRAPH = "dermapred-0.0.3-example_image.jpg"
PHOTOGRAPH_SHA256 = "f6a85b92051ba202721b9464e3efbd1d442f918fd88d113a019575c85cbbad9c"


def photograph_path() -> Path:
    """Path of the unpacked photograph; ``FileNotFoundError`` naming the set-up step if it is missing or altered."""
    path = Path(os.environ.get("ADVSEG_REAL_IMAGES", Path.home() / ".cache" / "advseg-real")) / PHOTOGRAPH
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; bash scripts/setup.sh unpacks it from the dermapred 0.0.3 wheel.")
    if hashlib.sha256(path.read_bytes()).hexdigest() != PHOTOGRAPH_SHA256:
        raise FileNotFoundError(f"{path} is not dermapred 0.0.3's example photograph (its SHA-256 differs); delete "
                                f"it and run bash scripts/setup.sh again.")
    return path


def reference_mask(annotation: dict) -> np.ndarray:
    """The reference naevus as a boolean ``(H, W)`` mask of the photograph."""
    rows, cols = annotation["image_size"]
    mask = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in annotation["lesion_polygon"]], fill=1)
    return np.asarray(mask, bool)


def measures(pred: np.ndarray, lesion: np.ndarray) -> dict:
    """Dice, centre error in reference radii (nan without a prediction), area ratio, pieces, and the share of
    the image predicted as lesion outside the reference."""
    pieces = structure_pieces(torch.from_numpy(pred.astype(np.int64))[None, None], 2)[0, 1]
    return {"dice": dice(pred, lesion), "centre_error": centre_error(pred, lesion),
            "area_ratio": float(pred.sum() / lesion.sum()), "pieces": int(pieces),
            "outside": float((pred & ~lesion).mean())}


def evaluate(model: str | None, factors: list[float], figure: Path | None) -> list[dict]:
    """Rows ``{"framing", "lesion_share", measures...}``: the whole photograph, then one per crop factor."""
    path = photograph_path()
    image = np.rint(read_photo(path)[0] * 255).astype(np.uint8)  # the primary picture, as the bundle reads it
    lesion = reference_mask(json.loads(ANNOTATION.read_text()))
    network = load_network("dermoscopy", model_file=model)
    transforms = bundle_config("dermoscopy").get_parsed_content("load_transforms")
    framings = [("whole photograph", image, lesion, path)]
    rows, panels = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for factor in factors:
            box = crop_box(lesion, factor)
            pixels, crop_path = crop(image, box), Path(tmp) / f"naevus_crop_{factor:g}.png"
            Image.fromarray(pixels).save(crop_path)
            framings.append((f"naevus crop ({factor:g} diameters)", pixels, crop(lesion, box), crop_path))
        for name, pixels, reference, file in framings:
            pred = segment(network, transforms, file, pixels.shape[:2]) > 0
            rows.append({"framing": name, "lesion_share": float(reference.mean()), **measures(pred, reference)})
            panels.append(_overlay(pixels, pred, reference))
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        side = 320
        tiles = [np.asarray(Image.fromarray(p).resize((side, round(side * p.shape[0] / p.shape[1])), Image.BILINEAR))
                 for p in panels]
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
        Image.fromarray(np.concatenate(tiles, 1)).save(figure)
    return rows


def _overlay(image: np.ndarray, pred: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RGB picture: reference outline green, predicted lesion outline yellow, about 2 pixels wide at 320 wide."""
    width = max(1, round(image.shape[1] / 160))
    out = image.copy()
    for mask, colour in ((reference, (0, 255, 0)), (pred, (255, 255, 0))):
        if mask.any():
            out[mask & ~ndimage.binary_erosion(mask, iterations=width)] = colour
    return out


# ---------------- appearance statistics ----------------

def lesion_contrast(image: np.ndarray, lesion: np.ndarray) -> tuple[float, float]:
    """Distance of the lesion's mean colour (8 px inside its border and deeper) from the skin's (a band 10-40 px
    outside), RGB in [0, 1], and the lesion's mean brightness over the skin's."""
    inner = ndimage.binary_erosion(lesion, iterations=8)
    band = ndimage.binary_dilation(lesion, iterations=40) & ~ndimage.binary_dilation(lesion, iterations=10)
    inside, skin = image[inner].mean(0), image[band].mean(0)
    return float(np.linalg.norm(inside - skin)), float(inside.mean() / skin.mean())


def edge_width(image: np.ndarray, lesion: np.ndarray) -> float:
    """Width over which the mean brightness crosses from 10 to 90 % of its step at the lesion's border, in lesion
    radii: the profile against the signed distance to the border, within 0.3 radii of it."""
    brightness = image.mean(2)
    signed = np.where(lesion, ndimage.distance_transform_edt(lesion), -ndimage.distance_transform_edt(~lesion))
    radius = np.sqrt(lesion.sum() / np.pi)
    reach = max(3, round(0.3 * radius))
    bins = np.arange(-reach, reach + 1)
    nearest = np.rint(signed).astype(int)
    found = [b for b in bins if (nearest == b).any()]  # a lesion cut by the frame may lack some distances
    profile = np.array([brightness[nearest == b].mean() for b in found])
    k = max(1, reach // 3)
    step = (profile - profile[:k].mean()) / (profile[-k:].mean() - profile[:k].mean())
    fine = np.linspace(-reach, reach, 20 * bins.size)
    fine_step = np.interp(fine, found, step)
    return float((fine[np.argmax(fine_step > 0.9)] - fine[np.argmax(fine_step > 0.1)]) / radius)


def to_grid(image: np.ndarray) -> np.ndarray:
    """The uint8 RGB image as the model sees it: resized to the 256 grid (area when shrinking)."""
    resample = Image.BOX if min(image.shape[:2]) >= 256 else Image.BILINEAR
    return np.asarray(Image.fromarray(image).resize((256, 256), resample))


def grid_variation(grid_image: np.ndarray, lesion: np.ndarray) -> tuple[float, float]:
    """Brightness variation (standard deviation over mean) of the skin in a band 6-40 px around the lesion
    (pixels darker than 0.12, a dermatoscope's black frame, left out) and of the lesion 6 px inside its border;
    ``grid_image`` is on the 256 grid (:func:`to_grid`), ``lesion`` the mask at the image's own size."""
    brightness = grid_image.astype(np.float64).mean(2) / 255
    grid_lesion = np.asarray(Image.fromarray(lesion.astype(np.uint8)).resize((256, 256), Image.NEAREST), bool)
    near = ndimage.binary_dilation(grid_lesion, iterations=6)
    band = ndimage.binary_dilation(grid_lesion, iterations=40) & ~near & (brightness > 0.12)
    inner = ndimage.binary_erosion(grid_lesion, iterations=6)
    skin, core = brightness[band], brightness[inner]
    return float(skin.std() / skin.mean()), float(core.std() / core.mean()) if core.size else float("nan")


def appearance_table(n: int, factors: list[float]) -> str:
    """Markdown table of the statistics for the photograph, its naevus crops and ``n`` phantoms."""
    from bundle.data.dermoscopy import generate_dermoscopy

    image = np.rint(read_photo(photograph_path())[0] * 255).astype(np.uint8)
    lesion = reference_mask(json.loads(ANNOTATION.read_text()))
    contrast, ratio = lesion_contrast(image / 255.0, lesion)
    width = edge_width(image / 255.0, lesion)
    lines = ["| image | colour step | brightness ratio | edge 10-90 % (radii) | spectrum slope | power > 32 cycles "
             "| skin variation | lesion variation |", "|---|---|---|---|---|---|---|---|"]
    boxes = [crop_box(lesion, f) for f in factors]
    for name, pixels, mask in [("real: whole photograph", image, lesion)] + [
            (f"real: naevus crop, {f:g} diameters", crop(image, box), crop(lesion, box)) for f, box in zip(factors, boxes)]:
        grid = to_grid(pixels)
        slope, high = spectrum_slope(grid)
        skin, core = grid_variation(grid, mask)
        lines.append(f"| {name} | {contrast:.2f} | {ratio:.2f} | {width:.2f} | {slope:.2f} | {100 * high:.2f} % | "
                     f"{skin:.3f} | {core:.3f} |".replace("nan", "-"))  # a lesion too small for its core
    stats = []
    for k in range(n):  # seeds of neither the fixed splits nor the training stream
        pixels, label, _ = generate_dermoscopy(np.random.default_rng([4242, k]))
        grid = to_grid(pixels)
        stats.append((*lesion_contrast(pixels / 255.0, label > 0), edge_width(pixels / 255.0, label > 0),
                      *spectrum_slope(grid), *grid_variation(grid, label > 0)))
    cells = []
    for c, column in enumerate(np.array(stats).T):
        lo, mid, hi = np.nanpercentile(column * (100 if c == 4 else 1), [0, 50, 100])
        unit = " %" if c == 4 else ""
        digits = 3 if c >= 5 else 2
        cells.append(f"{mid:.{digits}f}{unit} ({lo:.{digits}f} to {hi:.{digits}f})")
    lines.append(f"| phantoms (n={n}): median (min-max) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="state_dict of a dermoscopy U-Net (default: models/dermoscopy.pt)")
    parser.add_argument("--name", default=None, help="name in the figure's file (default: the model's file name)")
    parser.add_argument("--crops", type=float, nargs="+", default=[1.5, 2.0, 3.0, 4.0],
                        help="sides of the naevus-centred crops in naevus diameters (default 1.5 2 3 4)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="overlay picture (default docs/figures/real_dermoscopy_<name>.png; 'none' for no picture)")
    parser.add_argument("--stats", type=int, default=0, metavar="N",
                        help="print appearance statistics of the photograph and of N phantoms instead")
    args = parser.parse_args(argv)
    if any(f < 1 for f in args.crops):
        parser.error(f"Option --crops takes naevus diameters >= 1, got {' '.join(f'{f:g}' for f in args.crops)}.")
    name = args.name or Path(args.model or "models/dermoscopy.pt").stem
    figure = None if str(args.figure) == "none" else (args.figure or ROOT / "docs" / "figures" / f"real_dermoscopy_{name}.png")
    try:
        if args.stats:
            print(appearance_table(args.stats, args.crops))
            return 0
        rows = evaluate(args.model, args.crops, figure)
    except FileNotFoundError as e:
        parser.exit(2, f"real_dermoscopy: error: {e}\n")
    print(f"model: {args.model or 'models/dermoscopy.pt'} ({name})")
    print("| framing | naevus share of the image | lesion Dice | centre error (radii) | predicted / reference area "
          "| pieces | predicted outside the naevus (share of the image) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['framing']} | {100 * r['lesion_share']:.1f} % | {r['dice']:.3f} | {r['centre_error']:.2f} | "
              f"{r['area_ratio']:.2f} | {r['pieces']} | {100 * r['outside']:.2f} % |")
    if figure is not None:
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

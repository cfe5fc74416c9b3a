"""Experiment (issue 24): does a disc-centred second stage lift a fundus model's rim on whole fields?

    python docs/experiments/fundus_second_stage.py --model <state_dict> --dataset_dir <phantom folder>

Stage 1 segments the image loaded by the fundus task's own transforms (area-resized to the 256 grid). Stage 2
crops ``--crop`` disc diameters around stage 1's largest disc component from the file's own pixels, segments the
crop the same way and puts its logits in place of stage 1's inside the crop (black outside the image). Images on
which the crop would be 80 % of the image's side or more (the disc-centred crops) keep stage 1. The phantom split
is scored at the model grid as ``configs/evaluate.yaml`` scores it (rim and cup Dice, labels nearest-resized); the real
photograph (scikit-image's ``retina.jpg``, whole field) by ``scripts/real_fundus.py``'s measures. Prints the means
of both stages.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import real_fundus  # noqa: E402  (the reference, crop and measures of the real-photograph evaluation)

from bundle import load_network  # noqa: E402
from bundle.config import bundle_config  # noqa: E402


def load(transforms, image: Path, label: Path | None = None) -> dict:
    item = {"image": str(image), **({"label": str(label)} if label else {})}
    for transform in transforms:
        item = transform(item)
    return item


@torch.no_grad()
def logits_at(network, transforms, path: Path, shape: tuple[int, int]) -> torch.Tensor:
    """Logits ``(3, H, W)`` of the file at ``shape`` (bilinear from the model grid)."""
    x = load(transforms, path)["image"].as_tensor()[None].float()
    return F.interpolate(network(x), size=shape, mode="bilinear", align_corners=False)[0]


def second_stage(network, transforms, image: np.ndarray, logits: torch.Tensor, factor: float) -> torch.Tensor:
    """Stage 1's logits ``(3, H, W)`` with a crop around its disc re-segmented at the crop's own scale."""
    disc = (logits.argmax(0) > 0).numpy()
    if not disc.any():
        return logits
    components, n = ndimage.label(disc)
    largest = components == 1 + int(np.argmax(ndimage.sum(disc, components, range(1, n + 1))))
    x0, y0, side = real_fundus.crop_box(largest, factor)
    if side >= 0.8 * min(image.shape[:2]):
        return logits
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crop.png"
        Image.fromarray(real_fundus.crop(image, (x0, y0, side))).save(path)
        crop_logits = logits_at(network, transforms, path, (side, side))
    ys = slice(max(0, y0), min(image.shape[0], y0 + side))
    xs = slice(max(0, x0), min(image.shape[1], x0 + side))
    out = logits.clone()
    out[:, ys, xs] = crop_logits[:, ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="state_dict of a fundus U-Net")
    parser.add_argument("--dataset_dir", type=Path, required=True, help="phantom folder with datalist.json")
    parser.add_argument("--crop", type=float, default=2.5, help="crop side in disc diameters (2.5)")
    args = parser.parse_args()
    for path, option in ((Path(args.model), "--model"), (args.dataset_dir / "datalist.json", "--dataset_dir")):
        if not path.is_file():
            parser.error(f"{option}: {path} does not exist.")
    network = load_network("fundus", model_file=args.model)
    transforms = bundle_config("fundus").get_parsed_content("load_transforms")

    scores = {"stage 1": [], "stage 2": []}
    for case in json.loads((args.dataset_dir / "datalist.json").read_text())["test"]:
        path = args.dataset_dir / case["image"]
        image = np.asarray(Image.open(path).convert("RGB"))
        label = load(transforms, path, args.dataset_dir / case["label"])["label"].as_tensor()[0].numpy()
        whole_field = (label > 0).mean() < 0.03
        one = logits_at(network, transforms, path, image.shape[:2])
        for stage, logits in (("stage 1", one), ("stage 2", second_stage(network, transforms, image, one, args.crop))):
            pred = F.interpolate(logits[None], size=label.shape, mode="area")[0].argmax(0).numpy()
            scores[stage].append((whole_field, *(real_fundus.dice(pred == k, label == k) for k in (1, 2))))
    for stage, rows in scores.items():
        rows = np.array(rows, float)
        fields = rows[rows[:, 0] == 1]
        print(f"phantoms, {stage}: rim {rows[:, 1].mean():.4f}, cup {rows[:, 2].mean():.4f} (n={len(rows)}); "
              f"whole fields rim {fields[:, 1].mean():.4f} (n={len(fields)})")

    annotation = json.loads(real_fundus.ANNOTATION.read_text())
    path = real_fundus.photograph_path()
    image = np.asarray(Image.open(path).convert("RGB"))
    disc, cup = real_fundus.reference_masks(annotation, image.shape[:2])
    one = logits_at(network, transforms, path, image.shape[:2])
    for stage, logits in (("stage 1", one), ("stage 2", second_stage(network, transforms, image, one, args.crop))):
        m = real_fundus.measures(logits.argmax(0).numpy().astype(np.uint8), disc, cup)
        print(f"real photograph, whole field, {stage}: disc Dice {m['disc_dice']:.3f}, "
              f"centre error {m['centre_error']:.3f}, area ratio {m['area_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

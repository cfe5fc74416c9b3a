"""How the perturbation of an attack looks in the written DICOM: blocks of the model grid or smooth.

    python scripts/blockiness.py [--num_cases 8] [--steps 100] [--eps 0.04] [--beyond_window edge|keep]

Runs the heart-symbol PGD of ``configs/pgd_heart.yaml`` (target heart symbol "small", IoU loss) with the shipped CXR
model on the first ``--num_cases`` test phantoms (native 1024 x 1024, model grid 256 x 256), then writes each
adversarial image as derived DICOM once per way of bringing the perturbation from the model grid to the native grid
(``bundle.io.pixels.UPSAMPLE_MODES``), reads it back through the run's preprocessing and segments it again. Per mode
it prints the mean over the cases of: the blockiness of the stored perturbation (``bundle.io.grid_blockiness``:
mean |difference| of neighbouring pixels across the model grid's block borders and within blocks, their ratio, and
the fraction of the energy above the model grid's Nyquist frequency), its L-infinity norm and RMS in stored units,
and the target IoU of the file read back next to the in-memory one. ``--beyond_window keep`` leaves the pixels
beyond each phantom's VOI window out of it (``bundle.io.perturbation_to_stored``), to see the upsampling alone.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import torch
from monai.transforms import Compose
from pydicom.uid import generate_uid

import bundle.io as bio
from bundle import load_examples, load_network
from bundle.attacks import pgd
from bundle.config import bundle_config
from bundle.io.pixels import UPSAMPLE_MODES
from bundle.metrics import paper_iou
from bundle.targets import heart_symbol_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_cases", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.04)
    parser.add_argument("--beyond_window", choices=bio.BEYOND_WINDOW, default="edge")
    args = parser.parse_args()

    torch.manual_seed(0)
    net = load_network("cxr")
    batch = load_examples("cxr", split="test", n=args.num_cases)
    target = heart_symbol_target(batch["label"], size="small")
    res = pgd(net, batch["image"], target, eps=args.eps, steps=args.steps, bounds=(-1.0, 1.0), loss="iou")
    read_back = Compose(bundle_config("cxr").get_parsed_content("load_transforms"))
    with torch.no_grad():
        in_memory = paper_iou(net(res.adv).argmax(1, keepdim=True), target)
    model_shape = tuple(batch["image"].shape[-2:])
    print(f"{args.num_cases} CXR test phantoms, PGD heart small, eps {args.eps}, {args.steps} steps; "
          f"in-memory target IoU {in_memory.mean():.4f} +- {in_memory.std():.4f}")
    print("| upsample | border diff | within diff | ratio | energy above model Nyquist | L-inf stored | "
          "RMS stored | round-trip target IoU | ratio to in-memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in UPSAMPLE_MODES:
            rows, paths = [], []
            for i, source in enumerate(batch["image_path"]):
                stored = bio.perturbation_to_stored(source, batch["image"][i], res.adv[i], upsample=mode,
                                                   beyond_window=args.beyond_window)
                delta = stored.astype(np.float64) - pydicom.dcmread(source).pixel_array
                block = bio.grid_blockiness(delta, model_shape)
                rows.append([block["border"], block["within"], block["ratio"], block["high_frequency"],
                             np.abs(delta).max(), np.sqrt((delta ** 2).mean())])
                paths.append(bio.write_derived_dicom(source, stored, Path(tmp) / f"{mode}_{i}.dcm",
                                                     derivation_description=f"blockiness check ({mode})",
                                                     series_instance_uid=generate_uid()))
            images = torch.stack([read_back({"image": str(p)})["image"].as_tensor() for p in paths])
            with torch.no_grad():
                back = paper_iou(net(images).argmax(1, keepdim=True), target)
            m = np.mean(rows, axis=0)
            print(f"| {mode} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.3f} | {m[4]:.1f} | {m[5]:.1f} | "
                  f"{back.mean():.4f} +- {back.std():.4f} | {(back.mean() / in_memory.mean()):.3f} |")


if __name__ == "__main__":
    main()

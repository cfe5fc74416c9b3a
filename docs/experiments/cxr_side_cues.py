"""Experiment (issue 24): how the shipped CXR networks tell the right lung from the left.

    python docs/experiments/cxr_side_cues.py

For each architecture (U-Net, AttentionUnet, UNet++) on the real PA chest CR (pydicom-data's ``RG1_UNCR.dcm``) and
on the first version-4 test phantom, loaded by the task's own transforms:

- field of view: the input gradient of the logits at one pixel of the right lung's lateral part (row 128, column 40
  of the 256 grid): the columns holding more than 1 % of the peak column sum, and the share of the gradient from
  the image's other half (columns 128-255);
- mirror test: the image flipped left-right is segmented and flipped back; the share of lung pixels whose label
  swaps (right <-> left). A network that follows the anatomy swaps them all; one that goes by the side of the image
  swaps none.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from pydicom.data import get_testdata_file

from bundle import load_network
from bundle.config import bundle_config
from bundle.networks import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[2]
PHANTOM = ROOT / "data" / "phantoms" / "cxr" / "images" / "cxr_0123.dcm"  # the README's set-up and demo make it


def load(path: Path, transforms) -> torch.Tensor:
    item = {"image": str(path)}
    for transform in transforms:
        item = transform(item)
    return item["image"].as_tensor()[None].float()


def field_of_view(network: torch.nn.Module, image: torch.Tensor) -> tuple[int, int, float]:
    """``(first column, last column, share from the other half)`` of the input gradient at row 128, column 40."""
    x = image.clone().requires_grad_(True)
    network(x)[0, :, 128, 40].sum().backward()
    gradient = x.grad[0, 0].abs()
    profile = gradient.sum(0) / gradient.sum(0).max()
    columns = torch.nonzero(profile > 0.01).flatten()
    return int(columns.min()), int(columns.max()), float(gradient[:, 128:].sum() / gradient.sum())


@torch.no_grad()
def swapped_share(network: torch.nn.Module, image: torch.Tensor) -> float:
    """Share of the lung pixels (labels 1, 2) whose label swaps when the image is mirrored."""
    plain = network(image).argmax(1)[0]
    mirrored = network(image.flip(-1)).argmax(1)[0].flip(-1)
    lungs = (plain == 1) | (plain == 2)
    swaps = ((plain == 1) & (mirrored == 2)) | ((plain == 2) & (mirrored == 1))
    return float(swaps.sum() / lungs.sum())


def main() -> int:
    if not PHANTOM.is_file():
        sys.exit(f"cxr_side_cues.py: {PHANTOM} does not exist; the README's set-up and demo generate the phantoms.")
    transforms = bundle_config("cxr").get_parsed_content("load_transforms")
    images = {"RG1_UNCR (real)": load(Path(get_testdata_file("RG1_UNCR.dcm")), transforms),
              "cxr_0123 (phantom)": load(PHANTOM, transforms)}
    print("| network | image | gradient's columns | from the other half | lung pixels swapped when mirrored |")
    print("|---|---|---|---|---|")
    for architecture in ARCHITECTURES:
        network = load_network("cxr", architecture=architecture)
        for name, image in images.items():
            first, last, other = field_of_view(network, image)
            print(f"| {architecture} | {name} | {first}-{last} | {other:.0%} | {swapped_share(network, image):.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

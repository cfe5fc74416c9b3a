"""Experiment (issue 24): which anatomical cue of the phantoms tells the CXR networks the right lung from the left.

    python docs/experiments/cxr_cue_phantoms.py [--cases 16] [--model unet_plus_plus=<checkpoint> ...]

``cxr_side_cues.py`` showed that all three shipped networks follow the anatomy on a mirrored phantom, and that the
AttentionUnet and the UNet++ follow it only partly on a real radiograph. Here each candidate cue is changed alone,
in phantoms only: the version-4 renderer draws the anatomy of a case, one structure of it is mirrored about the
patient's midline (or removed, or made denser), and the rest of the case is rendered as usual. The lungs and their
labels never move, so a network that keys on the changed structure gives wrong-sided lungs.
Then the case as rendered is shown in another look (gamma, histogram equalisation, strong unsharp masking, blur)
or framing (zoomed out or in), beyond the renderer's own ranges: a network whose side rests on the renderer's
appearance or framing loses it there.

For each network and change: the share of the lungs' pixels (reference label 1 or 2, predicted 1 or 2) that get
the correct side, and the lungs' mean Dice, over ``--cases`` phantoms of a seed space of their own (rendered at
512, segmented on the 256 grid as the stream's training samples are).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from bundle import load_network
from bundle.config import bundle_config
from bundle.data.cxr import ANTERIOR_RIBS, ZOOM, _anatomy, _render
from bundle.data.stream import rendered_display
from bundle.networks import ARCHITECTURES

SEED_KEY = 9_000_017  # not the fixed splits' nor the stream's seed space
SIZE = 512


def mirror(mask: np.ndarray, x0: float) -> np.ndarray:
    """``mask`` (..., size) mirrored about the column ``x0`` (a fraction of the width)."""
    size = mask.shape[-1]
    return np.roll(mask[..., ::-1], int(round((2 * x0 - 1) * size)), axis=-1)


def heart(an: dict) -> dict:
    """The cardiac silhouette and the aortic knob on the other side."""
    kx, ky, kr = an["knob"]
    return {**an, "heart": mirror(an["heart"], an["x0"]), "knob": (2 * an["x0"] - kx, ky, kr)}


def hila(an: dict) -> dict:
    """The hila, and the lung markings that branch from them, on the other side."""
    return {**an, "hila": [(2 * an["x0"] - x, y, -side) for x, y, side in an["hila"]]}


def diaphragm(an: dict) -> dict:
    """The hemidiaphragms (the right one higher) on the other side; the lungs keep their own bases."""
    return {**an, "ydia": mirror(an["ydia"], an["x0"])}


def no_ribs(an: dict) -> dict:
    """No ribs at all."""
    return {**an, "ribs_posterior": np.zeros_like(an["ribs_posterior"]), "ribs_anterior": np.zeros_like(an["ribs_anterior"])}


def anterior_ribs_dense(an: dict) -> dict:
    """The anterior ribs (sloping down towards the midline) as dense as the posterior ones."""
    return {**an, "ribs_posterior": an["ribs_posterior"] | an["ribs_anterior"]}


def anterior_ribs_only(an: dict) -> dict:
    """Only the anterior ribs, at the posterior ribs' density: every rib slopes down towards the midline."""
    return {**an, "ribs_posterior": an["ribs_anterior"], "ribs_anterior": np.zeros_like(an["ribs_anterior"])}


CHANGES = {"as rendered": lambda an: an, "heart and aortic knob mirrored": heart, "hila mirrored": hila,
           "hemidiaphragms mirrored": diaphragm, "no ribs": no_ribs,
           "anterior ribs as dense as posterior": anterior_ribs_dense, "anterior ribs only": anterior_ribs_only}


def equalised(display: np.ndarray) -> np.ndarray:
    """Histogram equalisation: every grey level equally often, the flat look of heavily processed radiographs."""
    ranks = np.argsort(np.argsort(display, axis=None)).reshape(display.shape)
    return (ranks / (display.size - 1)).astype(np.float32)


def unsharp(display: np.ndarray) -> np.ndarray:
    """Strong unsharp masking (amount 2 at a 1/32-of-the-width blur), beyond the renderer's 0.2-1.2."""
    sigma = display.shape[-1] / 32
    return np.clip(display + 2.0 * (display - ndimage.gaussian_filter(display, (0, sigma, sigma))), 0, 1)


APPEARANCES = {"as rendered": lambda d: d, "gamma 0.5": lambda d: d ** 0.5, "gamma 2": lambda d: d ** 2, "histogram equalised": equalised,
               "strong unsharp masking": unsharp,
               "blurred (sigma 1/128 of the width)": lambda d: ndimage.gaussian_filter(d, (0, d.shape[-1] / 128,
                                                                                            d.shape[-1] / 128))}


def zoomed(factor: float):
    """The patient ``factor`` times larger in the field (below 1: smaller, air around), about the field's centre,
    beyond the renderer's 0.92-1.3; label map alike."""
    def frame(display: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = label.shape[-1]
        matrix, offset = np.eye(2) / factor, (size - 1) / 2 * (1 - 1 / factor) * np.ones(2)
        moved = [ndimage.affine_transform(channel, matrix, offset, order=1) for channel in display]
        return np.stack(moved), ndimage.affine_transform(label, matrix, offset, order=0)
    return frame


FRAMINGS = {"as rendered": lambda display, label: (display, label), "zoomed out x0.75": zoomed(0.75),
            "zoomed in x1.4": zoomed(1.4)}


def model_input(pixels: np.ndarray, label: np.ndarray, info: dict, to_model_grid, appearance=APPEARANCES["as rendered"],
                framing=FRAMINGS["as rendered"]) -> tuple[torch.Tensor, torch.Tensor]:
    """The rendered case as the stream gives it to training: display [0, 1] (through ``appearance`` and
    ``framing``) -> the model grid and domain."""
    display, label = framing(appearance(rendered_display("cxr", pixels, info)), label)
    item = {"image": torch.from_numpy(np.ascontiguousarray(display)), "label": torch.from_numpy(label[None].copy())}
    for transform in to_model_grid:
        item = transform(item)
    return torch.as_tensor(item["image"])[None].float(), torch.as_tensor(item["label"])[0]


def lung_scores(prediction: torch.Tensor, label: torch.Tensor) -> tuple[float, float]:
    """``(share of the lungs' pixels on the correct side, mean Dice of the two lungs)``."""
    in_lungs = ((label == 1) | (label == 2)) & ((prediction == 1) | (prediction == 2))
    correct = float((in_lungs & (prediction == label)).sum() / max(int(in_lungs.sum()), 1))
    dice = [float(2 * ((prediction == c) & (label == c)).sum() / ((prediction == c).sum() + (label == c).sum()))
            for c in (1, 2)]
    return correct, float(np.mean(dice))


@torch.no_grad()
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=16, help="phantoms per change (default 16)")
    parser.add_argument("--model", action="append", default=[], metavar="ARCHITECTURE=FILE",
                        help="a checkpoint to use instead of the shipped file of that architecture (repeatable)")
    args = parser.parse_args()
    if args.cases < 1:
        parser.error(f"--cases {args.cases}: give at least 1")
    if any("=" not in item for item in args.model):
        parser.error("--model takes ARCHITECTURE=FILE, for example --model unet_plus_plus=model_best.pt")
    files = dict(item.split("=", 1) for item in args.model)
    for architecture, file in files.items():
        if architecture not in ARCHITECTURES or not Path(file).is_file():
            parser.error(f"--model {architecture}={file}: the architecture is one of {', '.join(ARCHITECTURES)} "
                         "and the file must exist")
    to_model_grid = bundle_config("cxr").get_parsed_content("to_model_grid")
    networks = {architecture: load_network("cxr", architecture=architecture, model_file=files.get(architecture)).eval()
                for architecture in ARCHITECTURES}
    print("| change | " + " | ".join(f"{a}: correct side (lung Dice)" for a in networks) + " |")
    print("|---|" + "---|" * len(networks))
    plain = CHANGES["as rendered"], APPEARANCES["as rendered"], FRAMINGS["as rendered"]
    changes = {name: (change, *plain[1:]) for name, change in CHANGES.items()}
    changes |= {name: (plain[0], look, plain[2]) for name, look in APPEARANCES.items() if name != "as rendered"}
    changes |= {name: (*plain[:2], frame) for name, frame in FRAMINGS.items() if name != "as rendered"}
    for name, (change, look, frame) in changes.items():
        scores = {a: [] for a in networks}
        for k in range(args.cases):
            rng = np.random.default_rng([0, 2, SEED_KEY, k])
            an = _anatomy(rng, SIZE)
            image, label = model_input(*_render(rng, change(an), SIZE, ANTERIOR_RIBS, ZOOM), to_model_grid, look, frame)
            for architecture, network in networks.items():
                scores[architecture].append(lung_scores(network(image).argmax(1)[0], label))
        cells = [f"{np.mean([c for c, _ in s]):.0%} ({np.mean([d for _, d in s]):.3f})" for s in scores.values()]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

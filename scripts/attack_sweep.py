"""Measure attack settings on the first test phantoms with the shipped models (the numbers of docs/attacks.md).

    python scripts/attack_sweep.py asma --task fundus --cases 4 --steps 500 asma,1e-3,1e-5 asm,1e-3,1e-5 ssm,1e-3,1e-5
    python scripts/attack_sweep.py pgd --cases 4 heart:small,iou,0.04 heart:large,iou,0.04 untargeted,iou,0.02
    python scripts/attack_sweep.py pgd --momentum 0.75 --schedule cosine heart:small,iou,0.04 untargeted,iou,0.02
    python scripts/attack_sweep.py fgsm --cases 4 heart:small,ce,0.04 untargeted,ce,0.04
    python scripts/attack_sweep.py pgd --checkpoint outputs/cxr/train_target/model_best.pt heart:small,iou,0.04
    python scripts/attack_sweep.py pgd --checkpoint outputs/cxr512/train_target/model_best.pt --model_grid 512 512 \
        heart:small,iou,0.04

ASMA settings are ``variant,beta,tau``; PGD / FGSM settings are ``target,loss,eps[,alpha]`` with target
``heart:small``, ``heart:large`` or ``untargeted``. Each line printed is one setting's mean over the cases; a
heart symbol's other structures are scored against their target, the ground truth outside the symbol, as in the
paper's Table 3 (the large symbol takes lung pixels), and against the ground truth, and the heart's wrong pixels
are counted with the share of them within one pixel of the symbol's outline; PGD / FGSM sweeps first print
the clean per-class IoU and the heart - lung contrast (the intensity step an eps is measured against).
``--checkpoint`` attacks a CXR state_dict of your own training run instead of the shipped model (``--network_def``
when that run overrode the network), ``--dataset_dir`` the test split of another CXR dataset folder,
``--intensity_bounds`` a run trained with another model domain than [-1, 1] (its ``--intensity_bounds``; the attack
is then bounded by that range).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bundle import load_examples, load_network
from bundle.attacks import asma, fgsm, pgd
from bundle.config import check_intensity_bounds, check_model_grid
from bundle.data.datalist import DATALIST_NAME
from bundle.metrics import (class_iou, errors_at_outline, heart_lung_contrast, l2_norm, linf_norm, mean_iou, paper_iou,
                            pixel_accuracy)
from bundle.targets import heart_symbol_target, swap_targets


def sweep_asma(task: str, cases: int, steps: int, settings: list[str]) -> None:
    net, batch = load_network(task), load_examples(task, "test", n=cases)
    target = swap_targets(batch["label"], seed=0)
    for setting in settings:
        variant, beta, tau = setting.split(",")
        start = time.perf_counter()
        res = asma(net, batch["image"], target, bounds=(0.0, 1.0), steps=steps, beta=float(beta), tau=float(tau),
                   variant=variant, stop_iou=0.99)
        delta = res.adv - batch["image"]
        print(f"{task} {setting}: target IoU {paper_iou(res.pred, target).mean():.4f}, pixel accuracy "
              f"{pixel_accuracy(res.pred, target).mean():.4f}, L2 {l2_norm(delta).mean():.3f}, Linf "
              f"{linf_norm(delta).mean():.3f}, steps {res.steps.float().mean():.0f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)


def sweep_cxr(attack: str, cases: int, settings: list[str], checkpoint: str | None = None,
              model_grid: list[int] | None = None, steps: int = 100, random_start: bool = False,
              dataset_dir: str | None = None, network_def: str | None = None,
              intensity_bounds: Sequence[float] = (-1.0, 1.0), momentum: float = 0.0,
              schedule: str = "constant", split: str = "test") -> None:
    net = load_network("cxr", model_file=checkpoint, **({} if network_def is None else {"network_def": network_def}))
    overrides = {"intensity_bounds": list(intensity_bounds)} | ({} if model_grid is None else {"model_grid": model_grid})
    batch = load_examples("cxr", split, n=cases, dataset_dir=dataset_dir, **overrides)
    with torch.no_grad():
        clean = net(batch["image"]).argmax(1, keepdim=True)
    print("clean IoU per class:", ", ".join(f"{v:.3f}" for v in class_iou(clean, batch["label"], 6).mean(0)[1:].tolist()))
    print(f"heart - lung contrast: {heart_lung_contrast(batch['image'], batch['label']).mean():.3f} model units")
    for setting in settings:
        kind, loss, eps, *alpha = setting.split(",")
        eps = float(eps)
        targeted = kind != "untargeted"
        target = heart_symbol_target(batch["label"], kind.split(":")[1]) if targeted else batch["label"]
        if attack == "fgsm":
            res = fgsm(net, batch["image"], target, eps=eps, bounds=intensity_bounds, loss=loss, targeted=targeted)
        else:
            res = pgd(net, batch["image"], target, eps=eps, alpha=float(alpha[0]) if alpha else None, steps=steps,
                      bounds=intensity_bounds, loss=loss, targeted=targeted, random_start=random_start,
                      generator=torch.Generator().manual_seed(0), momentum=momentum, schedule=schedule)
        if targeted:
            iou = class_iou(res.pred, target, 6)
            truth = class_iou(res.pred, batch["label"], 6)[:, [1, 2, 4, 5]].mean()
            wrong, share = errors_at_outline(res.pred, target, 3)
            print(f"{attack} {setting}: heart IoU with the symbol {iou[:, 3].mean():.4f}, other structures' IoU with "
                  f"their target {iou[:, [1, 2, 4, 5]].mean():.4f} (with the ground truth {truth:.4f}); heart wrong in "
                  f"{wrong.mean():.0f} pixels per case, {share.mean():.0%} of them on the symbol's outline", flush=True)
        else:
            print(f"{attack} {setting}: mean IoU with ground truth {mean_iou(res.pred, batch['label'], 6).mean():.4f}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attack", choices=["asma", "pgd", "fgsm"])
    parser.add_argument("settings", nargs="+")
    parser.add_argument("--task", default="fundus", choices=["fundus", "dermoscopy"], help="ASMA only")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--split", default="test", choices=["test", "validation"],
                        help="PGD / FGSM only: the split whose first cases are attacked (validation: to choose settings "
                        "without looking at the test cases)")
    parser.add_argument("--steps", type=int, help="iterations (default 500 for ASMA, 100 for PGD as in the paper)")
    parser.add_argument("--random_start", action="store_true", help="PGD only: start at a random point of the eps ball")
    parser.add_argument("--momentum", type=float, default=0.0,
                        help="PGD only: momentum of the step direction (configs/pgd_momentum.yaml: 0.75)")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                        help="PGD only: step sizes over the steps (configs/pgd_momentum.yaml: cosine, from 0.4 * eps "
                        "unless the setting gives alpha)")
    parser.add_argument("--checkpoint", help="PGD / FGSM only: a CXR state_dict to attack instead of models/cxr.pt")
    parser.add_argument("--model_grid", type=int, nargs=2, help="PGD / FGSM only: the grid the checkpoint was trained on")
    parser.add_argument("--network_def", help="PGD / FGSM only: the checkpoint's network as its training run "
                        "overrode it, e.g. '$bundle.networks.build_unet(1, 6, 1)'")
    parser.add_argument("--dataset_dir", help="PGD / FGSM only: a CXR dataset folder instead of the default phantoms "
                        "(its test split; e.g. JSRT converted by scripts/convert_jsrt.py)")
    parser.add_argument("--intensity_bounds", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="PGD / FGSM only: the model domain the checkpoint was trained on, if not [-1, 1] (its run's "
                        "--intensity_bounds); also the attack's bounds")
    args = parser.parse_args()
    if args.dataset_dir is not None and not (Path(args.dataset_dir) / DATALIST_NAME).is_file():
        # load_examples would fill a missing or empty folder with phantoms and measure those
        parser.error(f"--dataset_dir {args.dataset_dir} has no {DATALIST_NAME}; convert the dataset into it first "
                     f"(e.g. scripts/convert_jsrt.py), or leave the option out for the shipped phantoms.")
    try:
        intensity_bounds = check_intensity_bounds(args.intensity_bounds)
        model_grid = None if args.model_grid is None else check_model_grid(args.model_grid)
    except ValueError as error:
        parser.error(str(error))
    torch.manual_seed(0)
    if args.attack == "asma":
        sweep_asma(args.task, args.cases, args.steps or 500, args.settings)
    else:
        sweep_cxr(args.attack, args.cases, args.settings, args.checkpoint, model_grid, args.steps or 100,
                  args.random_start, args.dataset_dir, args.network_def, intensity_bounds, args.momentum,
                  args.schedule, args.split)


if __name__ == "__main__":
    main()

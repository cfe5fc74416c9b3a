"""Cost of one attack iteration relative to the floor of any gradient attack, and time to the quality goals.

    python scripts/bench_attacks.py [--batch_sizes 1 8] [--steps 10] [--repeats 5] [--out docs/benchmarks.md]

The floor is one bare forward pass plus one backward pass to the input of the same model and batch. Each
repeat times ``k`` floor passes, one ``k``-step attack (early stopping off) and one forward pass, back to
back, and takes ``(attack - forward) / floor``: the attack's last iteration is a forward pass only. The
table reports the median over repeats, so slow drifts of a shared machine hit both sides alike.

The attacks are the recipes users run (``configs/asma.yaml``, ``configs/pgd_heart.yaml`` with the paper's step
rule and with ``configs/pgd_momentum.yaml`` layered on, ``configs/pgd_untargeted.yaml`` with
``configs/pgd_strong.yaml``). A second table times each recipe whole on the largest batch (ASMA: at most 500 steps,
each case stopping at a target IoU of 0.99; heart-symbol PGD: 100 steps, eps 0.04; untargeted PGD: 1000 steps, eps
0.02) and the quality it reached: the ASMA paper's target IoU for ASMA, the heart's IoU with the symbol for
heart-symbol PGD, the mean IoU with the ground truth for untargeted PGD (issue goals 0.97, 0.97 and at most 0.05).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from bundle import load_examples, load_network
from bundle.attacks._utils import model_guard
from bundle.config import bundle_config
from bundle.metrics import class_iou, mean_iou, paper_iou
from bundle.targets import heart_symbol_target, swap_targets


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_ratio(net: torch.nn.Module, images: torch.Tensor, attack, k: int, repeats: int) -> tuple[float, float, float]:
    """Median over repeats of (attack step, floor pass) seconds and of their ratio."""
    def floor():
        with model_guard(net):
            for _ in range(k):
                x = images.clone().requires_grad_(True)
                torch.autograd.grad(net(x).sum(), x)

    def forward():
        with torch.no_grad():
            net(images)

    floor(), attack(1), forward()  # warm-up
    steps, floors, ratios = [], [], []
    for _ in range(repeats):
        f = _seconds(floor) / k
        a = (_seconds(lambda: attack(k)) - _seconds(forward)) / k
        steps.append(a), floors.append(f), ratios.append(a / f)
    return statistics.median(steps), statistics.median(floors), statistics.median(ratios)


def time_to_goal(net, attack, name: str, task: str, images: torch.Tensor, target: torch.Tensor,
                 targeted: bool) -> str:
    """One whole run of the recipe's ``attack`` on ``images``: a table row with its seconds, steps and quality."""
    start = time.perf_counter()
    res = attack(net, images, target)
    seconds = time.perf_counter() - start
    if not targeted:
        reached = f"mean IoU with the ground truth {mean_iou(res.pred, target, 6).mean():.3f}"
    elif task == "cxr":
        reached = f"heart IoU with the symbol {class_iou(res.pred, target, 6)[:, 3].mean():.3f}"
    else:
        reached = f"target IoU {paper_iou(res.pred, target).mean():.3f}"
    steps = res.steps.float().mean()
    return f"| {name} | {task} | {len(images)} | {seconds:.1f} | {steps:.0f} | {reached} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=10, help="k: attack steps and floor passes per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows, goal_rows = [], []
    recipes = (("fundus", ["asma.yaml"]), ("cxr", ["pgd_heart.yaml"]), ("cxr", ["pgd_heart.yaml", "pgd_momentum.yaml"]),
               ("cxr", ["pgd_untargeted.yaml", "pgd_strong.yaml"]))
    for task, files in recipes:
        net = load_network(task)
        config = bundle_config(task, ["attack.yaml", *files])
        attack, name = config.get_parsed_content("attack"), config.get_parsed_content("attack_name")
        examples = load_examples(task, "test", n=max(args.batch_sizes))
        targeted = attack.keywords.get("targeted", True)  # ASMA always is
        if task == "fundus":
            target = swap_targets(examples["label"])
        else:  # untargeted attacks are given the ground truth
            target = heart_symbol_target(examples["label"]) if targeted else examples["label"]
        for b in args.batch_sizes:
            images, tgt = examples["image"][:b], target[:b]
            run = lambda s: attack(net, images, tgt, steps=s, stop_iou=None)  # noqa: E731  (no early stop: s steps)
            step, floor, ratio = step_ratio(net, images, run, args.steps, args.repeats)
            rows.append(f"| {name} | {task} | {b} | {1000 * floor:.1f} | {1000 * step:.1f} | {ratio:.3f} |")
            print(rows[-1], flush=True)
        goal_rows.append(time_to_goal(net, attack, name, task, examples["image"], target, targeted))
        print(goal_rows[-1], flush=True)
    table = "\n".join(["| recipe | task | batch | floor fwd+bwd (ms) | attack step (ms) | ratio |",
                       "|---|---|---|---|---|---|", *rows, "",
                       "| recipe | task | batch | seconds | mean steps | reached |", "|---|---|---|---|---|---|",
                       *goal_rows])
    header = (f"\nDevice: {'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}\n\n")
    print(header + table)
    if args.out is not None:
        with open(args.out, "a") as f:
            f.write(header + table + "\n")


if __name__ == "__main__":
    main()

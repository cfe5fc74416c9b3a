"""Cost of one attack iteration relative to the floor of any gradient attack.

    python scripts/bench_attacks.py [--batch_sizes 1 8] [--steps 10] [--repeats 5] [--out docs/benchmarks.md]

The floor is one bare forward pass plus one backward pass to the input of the same model and batch. Each
repeat times ``k`` floor passes, one ``k``-step attack (early stopping off) and one forward pass, back to
back, and takes ``(attack - forward) / floor``: the attack's last iteration is a forward pass only. The
table reports the median over repeats, so slow drifts of a shared machine hit both sides alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from bundle import load_examples, load_network
from bundle.attacks import asma, pgd
from bundle.attacks._utils import model_guard
from bundle.config import bundle_config
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=10, help="k: attack steps and floor passes per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for task, name in (("fundus", "asma"), ("cxr", "pgd")):
        net = load_network(task)
        bounds = tuple(bundle_config(task).get_parsed_content("intensity_bounds"))
        examples = load_examples(task, "test", n=max(args.batch_sizes))
        target = swap_targets(examples["label"]) if name == "asma" else heart_symbol_target(examples["label"])
        for b in args.batch_sizes:
            images, tgt = examples["image"][:b], target[:b]
            if name == "asma":
                run = lambda s: asma(net, images, tgt, bounds=bounds, steps=s)  # noqa: E731
            else:
                run = lambda s: pgd(net, images, tgt, eps=0.04, steps=s, bounds=bounds)  # noqa: E731
            step, floor, ratio = step_ratio(net, images, run, args.steps, args.repeats)
            rows.append(f"| {name} | {task} | {b} | {1000 * floor:.1f} | {1000 * step:.1f} | {ratio:.3f} |")
            print(rows[-1], flush=True)
    table = "\n".join(["| attack | task | batch | floor fwd+bwd (ms) | attack step (ms) | ratio |",
                       "|---|---|---|---|---|---|", *rows])
    header = (f"\nDevice: {'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}\n\n")
    print(header + table)
    if args.out is not None:
        with open(args.out, "a") as f:
            f.write(header + table + "\n")


if __name__ == "__main__":
    main()

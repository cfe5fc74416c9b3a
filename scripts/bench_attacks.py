"""Cost of one attack iteration relative to the floor of any gradient attack.

    python scripts/bench_attacks.py [--task cxr] [--batch_sizes 1 8] [--repeats 3] [--out docs/benchmarks.md]

The floor is one bare forward pass plus one backward pass to the input of the same model and batch. An attack
iteration is measured as the marginal cost of extra steps, ``(t(2k steps) - t(k steps)) / k`` with early
stopping off, so set-up and the final evaluation pass cancel out. Timings are medians over ``--repeats``.
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


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_seconds(net: torch.nn.Module, images: torch.Tensor, repeats: int) -> float:
    """One forward plus one input-gradient backward pass."""
    def once():
        with model_guard(net):
            x = images.clone().requires_grad_(True)
            torch.autograd.grad(net(x).sum(), x)
    once()
    return _median_time(once, repeats)


def iteration_seconds(attack, k: int, repeats: int) -> float:
    """Marginal seconds of one attack step: (t(2k) - t(k)) / k."""
    attack(1)
    return (_median_time(lambda: attack(2 * k), repeats) - _median_time(lambda: attack(k), repeats)) / k


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=5, help="k in (t(2k) - t(k)) / k")
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
            floor = floor_seconds(net, images, args.repeats)
            step = iteration_seconds(run, args.steps, args.repeats)
            rows.append(f"| {name} | {task} | {b} | {1000 * floor:.1f} | {1000 * step:.1f} | {step / floor:.3f} |")
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

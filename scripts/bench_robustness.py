"""Cost of the worst-case ensemble per forward/backward pass against the floor, as scripts/bench_attacks.py measures it.

    python scripts/bench_robustness.py [--batch 8] [--steps 6] [--repeats 3]

The ensemble is configs/robustness.yaml's, on the shipped CXR model and the first ``--batch`` test phantoms,
untargeted at eps 0.01, early exit off (every attack runs ``--steps`` passes on the whole batch). Each repeat times
``k`` floor passes (one forward plus one input-gradient backward), one ensemble run and one forward pass; the
ensemble's time per pass is ``(run - (A + 1) forward) / (A * steps)`` for ``A`` attacks (each attack's last
iterate costs one forward pass, and the ensemble's clean prediction one more). Prints the median ratio.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from bundle import load_examples, load_network
from bundle.attacks._utils import model_guard
from bundle.config import bundle_config
from bundle.robustness import worst_case


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="passes per attack, and floor passes, per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    net = load_network("cxr")
    ensemble = bundle_config("cxr", ["attack.yaml", "robustness.yaml"]).get_parsed_content("ensemble")
    attacks = [(name, functools.partial(a, steps=args.steps)) for name, a in ensemble.items()]
    examples = load_examples("cxr", "test", n=args.batch)
    images, label = examples["image"], examples["label"]

    def floor():
        with model_guard(net):
            for _ in range(args.steps):
                x = images.clone().requires_grad_(True)
                torch.autograd.grad(net(x).sum(), x)

    def forward():
        with torch.no_grad():
            net(images)

    def ensemble_run():
        worst_case(net, images, label, attacks, eps=0.01, stop_score=None)

    def seconds(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    floor(), forward()  # warm-up
    rows = []
    for _ in range(args.repeats):
        f = seconds(floor) / args.steps
        run, fwd = seconds(ensemble_run), seconds(forward)
        per_pass = (run - (len(attacks) + 1) * fwd) / (len(attacks) * args.steps)
        rows.append((per_pass, f, per_pass / f))
        print(f"floor {1000 * f:.1f} ms, ensemble per pass {1000 * per_pass:.1f} ms, ratio {per_pass / f:.3f}", flush=True)
    per_pass, f, ratio = (statistics.median(c) for c in zip(*rows))
    print(f"| ensemble ({', '.join(n for n, _ in attacks)}) | cxr | {args.batch} | {1000 * f:.1f} | "
          f"{1000 * per_pass:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()

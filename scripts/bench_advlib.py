"""Side by side at equal passes (issue 23, part 3): the worst-case ensemble, its single attacks, the bundle's PGD
recipes and adv-lib's ALMA prox, DAG and PDPGD on the same shipped model and test phantoms, untargeted.

    python scripts/bench_advlib.py --install          # once: adv-lib into its own virtual environment (below)
    python scripts/bench_advlib.py --task cxr [--eps 0.01 0.02] [--budget 300] [--n 8] [--csv out.csv]

Every attack gets ``--budget`` forward/backward passes per image, the ensemble (``configs/robustness.yaml``) one
budget per member with its own early exit, and reports the passes it took. Scores: mean IoU with the ground truth
over the foreground classes (:func:`bundle.metrics.mean_iou`, as the robustness report computes it), per image, and
the per-image worst case over all rows. eps counts in the model's input units (``intensity_bounds`` of the task).

adv-lib (Rony et al., https://github.com/jeromerony/adversarial-library) is never a dependency of the bundle.
``--install`` creates ``--advlib_env`` (default ``~/.cache/advseg-advlib``) with ``--system-site-packages``, so it
uses this interpreter's torch, and installs adv-lib 0.2.8 with ``--no-deps`` and visdom (which adv-lib's attacks
import for their optional plots) with its two missing pure-python requirements. torchvision is left out: its PyPI
wheels are built against CUDA torch, their compiled operators do not load on a CPU-only torch and ``import
torchvision`` then fails; adv-lib needs it only for LPIPS, which ``adv_lib.attacks``' ``__init__`` imports through
the classification ALMA. The script therefore imports the ``adv_lib.attacks.segmentation`` modules without running
that ``__init__`` (see :func:`import_advlib`); all code that runs is adv-lib's own. When adv-lib is missing from this
interpreter, the script re-runs itself with the environment's interpreter, or exits with status 2 and says how to
install it.

adv-lib's three attacks are minimal-norm attacks on inputs in ``[0, 1]`` without an eps: each gets the model
composed with the map ``[0, 1] -> intensity_bounds``, ``eps / (high - low)``, the L-infinity setting (ALMA prox is
L-infinity only; DAG ``p=inf``; PDPGD ``norm=inf``), ``--budget`` as its number of steps and its defaults otherwise
(DAG's step ``gamma`` is the DAG paper's 0.5 on the 0-255 scale, 0.5 / 255 here; adv-lib's default 0.5 is half the
input range per step). A wrapper counts the rows of every forward pass and of every backward pass through the
model, and scores each image at every forward pass: an image's result is the lower-scoring of its best iterate
that lay inside the eps ball and the attack's returned image projected onto the eps ball and the input bounds
(one extra forward pass, not counted, as the bundle's attacks do not count their last forward pass).
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import importlib.util
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

ADVLIB_ENV = Path.home() / ".cache" / "advseg-advlib"
ADVLIB_PACKAGES = ["adv-lib==0.2.8", "visdom==0.2.4", "tornado==6.6.1", "websocket-client==1.9.2"]
ROOT = Path(__file__).resolve().parents[1]


def install_commands(env: Path) -> list[list[str]]:
    """The commands ``--install`` runs: visdom is a source distribution whose ``setup.py`` needs ``pkg_resources``
    and ``wheel``, so it is built with the environment's own setuptools (no build isolation)."""
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--no-deps"]
    return [[sys.executable, "-m", "venv", "--system-site-packages", str(env)],
            pip + ["wheel==0.48.0"],
            pip + ["--no-build-isolation", *ADVLIB_PACKAGES]]


def install_hint(env: Path) -> str:
    return (f"adv-lib is not installed for {sys.executable}: run `python scripts/bench_advlib.py --install` (a "
            f"virtual environment at {env} with adv-lib 0.2.8, no bundle dependency), or pass --skip_advlib.")


def import_advlib() -> dict:
    """adv-lib's ALMA prox, DAG and PDPGD, imported without ``adv_lib/attacks/__init__.py`` (which imports every
    attack, LPIPS and so torchvision): ``adv_lib.attacks`` is registered as a bare package of its own folder, so
    its submodules import as usual."""
    spec = importlib.util.find_spec("adv_lib")
    if spec is None:
        raise ModuleNotFoundError("adv_lib")
    importlib.import_module("adv_lib")
    if "adv_lib.attacks" not in sys.modules:
        package = types.ModuleType("adv_lib.attacks")
        package.__path__ = [str(Path(spec.origin).parent / "attacks")]
        package.__package__ = "adv_lib.attacks"
        sys.modules["adv_lib.attacks"] = package
    seg = importlib.import_module("adv_lib.attacks.segmentation")
    return {"alma_prox": seg.alma_prox, "dag": seg.dag, "pdpgd": seg.pdpgd}


class Watched:
    """The model seen by an adv-lib attack: inputs in ``[0, 1]`` mapped onto ``bounds``; counts the images of every
    forward and backward pass; keeps each image's best (lowest mean IoU) iterate inside the eps ball."""

    def __init__(self, net, images, ref, eps: float, bounds, num_classes: int):
        import torch
        self.net, self.lo, self.width = net, float(bounds[0]), float(bounds[1]) - float(bounds[0])
        self.images, self.ref, self.eps, self.num_classes = images, ref, eps, num_classes
        self.forwards = self.backwards = 0
        self.best_score = torch.full((images.shape[0],), math.inf)
        self.best_adv = images.clone()

    def to_model(self, x01):
        return self.lo + self.width * x01

    def rows(self, x):
        """Which images the rows of ``x`` (model units) are: all of them, in order, or (DAG drops finished
        images) the nearest by mean absolute difference."""
        import torch
        if x.shape[0] == self.images.shape[0]:
            return torch.arange(x.shape[0])
        return torch.cdist(x.flatten(1), self.images.flatten(1), p=1).argmin(1)

    def __call__(self, x01):
        import torch
        from bundle.metrics import mean_iou
        self.forwards += x01.shape[0]
        if x01.requires_grad:
            x01.register_hook(functools.partial(self._backward, x01.shape[0]))
        x = self.to_model(x01)
        logits = self.net(x)
        with torch.no_grad():
            idx = self.rows(x)
            inside = (x - self.images[idx]).abs().flatten(1).amax(1) <= self.eps + 1e-6
            score = mean_iou(logits.argmax(1, keepdim=True), self.ref[idx], self.num_classes)
            better = inside & (score < self.best_score[idx])
            self.best_score[idx[better]] = score[better]
            self.best_adv[idx[better]] = x[better].detach()
        return logits

    def _backward(self, n, grad):
        self.backwards += n


def run_advlib(attack, net, images, ref, eps, bounds, num_classes):
    """One adv-lib attack at eps; returns (adv, scores, forward passes per image, backward passes per image, how
    many images the projected final image won)."""
    import torch
    from bundle.attacks._utils import model_guard
    from bundle.metrics import mean_iou
    watched = Watched(net, images, ref, eps, bounds, num_classes)
    lo, width = float(bounds[0]), float(bounds[1]) - float(bounds[0])
    x01 = ((images - lo) / width).clamp(0, 1)
    with model_guard(net):
        adv01 = attack(watched, x01, ref[:, 0]).detach()
        adv = (lo + width * adv01)
        adv = torch.min(torch.max(adv, images - eps), images + eps).clamp(*bounds)
        with torch.no_grad():
            projected = mean_iou(net(adv).argmax(1, keepdim=True), ref, num_classes)
    final = projected <= watched.best_score
    scores = torch.where(final, projected, watched.best_score)
    adv = torch.where(final.view(-1, 1, 1, 1), adv, watched.best_adv)
    n = images.shape[0]
    return adv, scores, watched.forwards / n, watched.backwards / n, int(final.sum())


def bundle_attacks(task: str, budget: int):
    """(ensemble members, single bundle attacks, stop score) at ``budget`` passes per attack."""
    from bundle.attacks import pgd
    from bundle.config import bundle_config
    config = bundle_config(task, ["attack.yaml", "robustness.yaml"])
    bounds = config.get_parsed_content("intensity_bounds_checked")
    ensemble = config.get_parsed_content("ensemble")
    stop = config.get_parsed_content("robustness_stop")
    members = [(name, functools.partial(a, steps=budget)) for name, a in ensemble.items()]
    if any(m.keywords.get("targeted") for _, m in members):
        raise RuntimeError("configs/robustness.yaml resolved to targeted attacks; this benchmark is untargeted")
    recipes = [  # configs/pgd_untargeted.yaml (the papers' rule) and with configs/pgd_strong.yaml, at the budget
        ("pgd paper rule (soft IoU, alpha eps/20)",
         functools.partial(pgd, steps=budget, bounds=bounds, loss="iou", targeted=False)),
        ("pgd_strong rule (margin, momentum 0.75, cosine, alpha 0.8 eps)",
         lambda *a, eps, **k: pgd(*a, eps=eps, steps=budget, bounds=bounds, loss="margin", targeted=False,
                                  momentum=0.75, schedule="cosine", alpha=0.8 * eps, **k)),
    ]
    return members, recipes, stop, bounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python scripts/bench_advlib.py --task fundus --budget 300")
    parser.add_argument("--task", choices=["cxr", "fundus", "dermoscopy"], default="cxr")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02], help="L-inf radii, model units")
    parser.add_argument("--budget", type=int, default=300, help="forward/backward passes per attack and image")
    parser.add_argument("--n", type=int, default=8, help="the first n test phantoms")
    parser.add_argument("--csv", type=Path, default=None, help="default: bench_advlib_<task>.csv here")
    parser.add_argument("--install", action="store_true", help="install adv-lib into --advlib_env and exit")
    parser.add_argument("--advlib_env", type=Path, default=ADVLIB_ENV)
    parser.add_argument("--skip_advlib", action="store_true", help="run the bundle's attacks only")
    args = parser.parse_args(argv)
    if args.budget < 1 or args.n < 1 or any(not e >= 0 for e in args.eps):
        print("bench_advlib: --budget and --n should be positive and --eps non-negative.", file=sys.stderr)
        return 2

    if args.install:
        for cmd in install_commands(args.advlib_env):
            print("+", " ".join(cmd), flush=True)
            if subprocess.call(cmd) != 0:
                print(f"bench_advlib: the install step failed: {' '.join(cmd)}", file=sys.stderr)
                return 1
        rc = subprocess.call([str(args.advlib_env / "bin" / "python"), "-c",
                              f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
                              "import bench_advlib; print(sorted(bench_advlib.import_advlib()))"])
        print(f"adv-lib installed in {args.advlib_env}" if rc == 0 else "bench_advlib: adv-lib does not import")
        return rc

    advlib = {}
    if not args.skip_advlib:
        try:
            advlib = import_advlib()
        except ModuleNotFoundError:
            env_python = args.advlib_env / "bin" / "python"
            if env_python.exists() and Path(sys.prefix).resolve() != args.advlib_env.resolve() \
                    and not os.environ.get("BENCH_ADVLIB_REEXEC"):
                os.environ["BENCH_ADVLIB_REEXEC"] = "1"
                os.execv(str(env_python), [str(env_python), str(Path(__file__).resolve()), *sys.argv[1:]])
            print(f"bench_advlib: {install_hint(args.advlib_env)}", file=sys.stderr)
            return 2
    return run(args, advlib)


def run(args, advlib: dict) -> int:
    if importlib.util.find_spec("bundle") is None:  # run from outside the checkout
        sys.path.insert(0, str(ROOT))
    import torch
    from bundle import load_examples, load_network
    from bundle.metrics import mean_iou
    from bundle.robustness import worst_case

    net = load_network(args.task)
    examples = load_examples(args.task, "test", n=args.n)
    images, ref = examples["image"].float(), examples["label"].long()
    if ref.ndim == 3:
        ref = ref[:, None]
    members, recipes, stop, bounds = bundle_attacks(args.task, args.budget)
    with torch.no_grad():
        logits = net(images)
    num_classes = logits.shape[1]
    clean = mean_iou(logits.argmax(1, keepdim=True), ref, num_classes)
    dag_gamma = 0.5 / 255
    adv_attacks = {
        "adv-lib ALMA prox (L-inf)": functools.partial(advlib["alma_prox"], num_steps=args.budget),
        "adv-lib DAG (p=inf, gamma 0.5/255)": functools.partial(advlib["dag"], max_iter=args.budget, p=float("inf"),
                                                                γ=dag_gamma),
        "adv-lib PDPGD (L-inf)": functools.partial(advlib["pdpgd"], norm=float("inf"), num_steps=args.budget),
    } if advlib else {}
    out = args.csv or Path(f"bench_advlib_{args.task}.csv")
    fields = ["task", "eps", "attack", "budget", "mean_iou", "per_image", "passes_per_image", "seconds", "linf_max",
              "note"]
    rows, started = [], time.perf_counter()

    def record(eps, name, scores, passes, seconds, adv, note=""):
        linf = float((adv - images).abs().amax()) if adv is not None else 0.0
        if linf > eps + 1e-5:
            raise RuntimeError(f"{name} left the eps ball: {linf} > {eps}")
        row = {"task": args.task, "eps": eps, "attack": name, "budget": args.budget,
               "mean_iou": round(float(scores.mean()), 4), "per_image": " ".join(f"{s:.3f}" for s in scores.tolist()),
               "passes_per_image": passes, "seconds": round(seconds, 1), "linf_max": round(linf, 6), "note": note}
        rows.append((row, scores))
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(r for r, _ in rows)
        print(f"[{time.perf_counter() - started:7.0f} s] {args.task} eps {eps}: {name}: mean IoU {row['mean_iou']}, "
              f"{passes} passes/image, {seconds:.0f} s {note}", flush=True)

    for eps in args.eps:
        record(eps, "clean", clean, 0, 0.0, images)
        start = time.perf_counter()
        wc = worst_case(net, images, ref, members, eps=eps, stop_score=stop, exit_early=True)
        record(eps, f"ensemble ({' > '.join(n for n, _ in members)}), stop at {stop}", wc.score,
               round(float(wc.passes.float().mean()), 1), time.perf_counter() - start, wc.adv,
               note=f"{args.budget} per member, early exit")
        for name, attack in members + recipes:
            start = time.perf_counter()
            res = attack(net, images, ref, eps=eps)
            scores = mean_iou(res.pred, ref, num_classes)
            record(eps, name, scores, round(float(res.steps.float().mean()), 1), time.perf_counter() - start, res.adv)
        for name, attack in adv_attacks.items():
            start = time.perf_counter()
            adv, scores, fwd, bwd, final = run_advlib(attack, net, images, ref, eps, bounds, num_classes)
            record(eps, name, scores, round(fwd, 1), time.perf_counter() - start, adv,
                   note=f"{bwd:.1f} backward/image; projected final best on {final}/{len(scores)}")
        attacked = torch.stack([s for r, s in rows if r["eps"] == eps and r["attack"] != "clean"])
        record(eps, "worst case per image over every attack above", attacked.min(0).values, "-", 0.0, None)
    print_table(args, rows)
    print(f"wrote {out}")
    return 0


def print_table(args, rows) -> None:
    eps = list(dict.fromkeys(r["eps"] for r, _ in rows))
    names = list(dict.fromkeys(r["attack"] for r, _ in rows))
    cell = {(r["attack"], r["eps"]): r for r, _ in rows}
    head = " | ".join(f"eps {e}: mean IoU | passes | s" for e in eps)
    print(f"\n{args.task}, first {args.n} test phantoms, budget {args.budget} passes per attack and image\n")
    print(f"| attack | {head} |")
    print("|---|" + "---|---|---|" * len(eps))
    for name in names:
        cells = []
        for e in eps:
            r = cell.get((name, e))
            cells.append(f"{r['mean_iou']:.3f} | {r['passes_per_image']} | {r['seconds']:.0f}" if r else "- | - | -")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    sys.exit(main())

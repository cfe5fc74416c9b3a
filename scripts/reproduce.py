"""Reproduce the experiments of the three papers on the phantoms with the shipped models; write the results.

    python scripts/reproduce.py            # full: every setting of the papers' tables, 8 cases per split
    python scripts/reproduce.py --quick    # fewer settings, 2 cases per split, to check the pipeline

Every experiment is a bundle attack run (``configs/attack.yaml`` + a recipe, the same as
``python -m monai.bundle run``) into ``outputs/reproduce/<mode>/<experiment>/``, so an interrupted
reproduction resumes where it stopped. From their ``metrics.csv`` files the script writes
``asma.md``, ``heart_attack.md``, ``wang_xu.md`` and their figures into ``--results`` (default
``docs/results`` for the full mode, ``outputs/reproduce/quick/results`` for the quick one).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.bundle import run as bundle_run
from tqdm import tqdm

from bundle.config import BUNDLE_ROOT, work_root
from bundle.handlers.attack_metrics import TEXT_COLUMNS
from bundle.networks import ARCHITECTURES
from published import EPS, FGSM_LOSSES, RESIZE_FACTORS

CXR_CLASSES = {"right_lung": 1, "left_lung": 2, "heart": 3, "right_clavicle": 4, "left_clavicle": 5}


@dataclass(frozen=True)
class Mode:
    """How much of the papers' grids a reproduction runs."""

    name: str
    cases: int
    eps: tuple[float, ...]
    resize_factors: tuple[float, ...]
    fgsm_eps: tuple[float, ...]
    asma_steps: int = 500


FULL = Mode("full", cases=8, eps=EPS, resize_factors=RESIZE_FACTORS, fgsm_eps=(0.01, 0.04, 0.16))
QUICK = Mode("quick", cases=2, eps=(0.04,), resize_factors=(1.4,), fgsm_eps=(0.04,), asma_steps=200)


@dataclass(frozen=True)
class Experiment:
    """One bundle attack run: ``key`` names its output folder, ``recipe`` the config files after attack.yaml."""

    key: str
    task: str
    recipe: tuple[str, ...]
    overrides: dict = field(default_factory=dict, hash=False)


def plan(mode: Mode) -> dict[str, list[Experiment]]:
    """The experiments of each results file, in run order; the same experiment may serve several tables."""
    asma = [Experiment(f"{task}_{variant}", task, ("asma.yaml",), {"attack#variant": variant, "attack#steps": mode.asma_steps})
            for task in ("fundus", "dermoscopy") for variant in ("ssm", "asm", "asma")]
    heart = []
    for eps in mode.eps:
        for box, extra in (("wb", ()), ("bb", ("transfer.yaml",))):
            heart.append(Experiment(f"untargeted_{box}_eps{eps}", "cxr", ("pgd_untargeted.yaml", *extra),
                                    {"attack#eps": eps}))
            heart += [Experiment(f"heart_{size}_{box}_eps{eps}", "cxr", ("pgd_heart.yaml", *extra),
                                 {"heart_size": size, "attack#eps": eps}) for size in ("small", "large")]
    heart += [Experiment(f"resize_{name}_x{factor}", "cxr", ("pgd_resize.yaml",),
                         {"resize_class": cls, "resize_factor": factor})
              for name, cls in CXR_CLASSES.items() for factor in mode.resize_factors]
    heart += [Experiment(f"region_{kind}", "cxr", ("pgd_heart.yaml",),
                         {"attack#classes": [3], **({} if kind == "heart_only" else {"region_kind": kind})})
              for kind in ("heart_only", "receptive_field", "bbox")]
    heart.append(Experiment("heart_small_wb_eps0.04", "cxr", ("pgd_heart.yaml",),
                            {"heart_size": "small", "attack#eps": 0.04}))  # Figure 2's "attack all"
    fgsm = [Experiment(f"fgsm_{arch}_{loss}_{'targeted' if targeted else 'untargeted'}_eps{eps}", "cxr",
                       ("fgsm.yaml",), {"architecture": arch, "attack#loss": loss, "attack#targeted": targeted,
                                        "attack#eps": eps})
            for arch in ARCHITECTURES for targeted in (True, False) for loss in FGSM_LOSSES for eps in mode.fgsm_eps]
    return {"asma": asma, "heart_attack": _unique(heart), "wang_xu": fgsm}


def _unique(experiments: list[Experiment]) -> list[Experiment]:
    return list({e.key: e for e in experiments}.values())


def run_experiment(exp: Experiment, root: Path, cases: int, steps: int | None) -> list[dict]:
    """Run ``exp`` through ``monai.bundle.run`` (skipping cases already done) and return its metrics rows.

    The run's own log and printed summary go to ``<root>/<key>/run.log``.
    """
    out = root / exp.key
    out.mkdir(parents=True, exist_ok=True)
    files = [str(BUNDLE_ROOT / "configs" / name) for name in ("common.yaml", f"{exp.task}.yaml", "attack.yaml", *exp.recipe)]
    overrides = {
        "bundle_root": str(BUNDLE_ROOT), "output_dir": str(out), "num_cases": cases,
        "handlers": "$[@attack_handler, @attack_metrics_writer]",  # the tables need no per-case overlays
        "attack_metrics_writer#progress": False, **exp.overrides,
    }
    if steps is not None and "fgsm.yaml" not in exp.recipe:
        overrides["attack#steps"] = steps
    with open(out / "run.log", "a") as log, _output_to(log):
        bundle_run(config_file=files, logging_file=False, **overrides)  # keep this process's logging set-up
    return read_rows(out / "metrics.csv", cases)


@contextlib.contextmanager
def _output_to(log):
    """Send prints, and the logging handlers that write to the console (MONAI's and Ignite's loggers hold the
    real stdout / stderr from import time), to ``log`` for the duration, then put back exactly what was there.

    Handlers writing anywhere else (files, pytest's log capture) are left alone.
    """
    handlers = _console_handlers()
    saved = [(h, h.stream) for h in handlers]
    try:
        for handler in handlers:
            handler.setStream(log)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        for handler, stream in saved:
            handler.setStream(stream)


def _console_handlers() -> list[logging.StreamHandler]:
    """Every logging ``StreamHandler`` (each once) whose stream is this process's stdout or stderr."""
    consoles = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}
    loggers = [logging.root, *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    found: dict[int, logging.StreamHandler] = {}
    for logger in loggers:
        for h in logger.handlers:
            if isinstance(h, logging.StreamHandler) and id(getattr(h, "stream", None)) in consoles:
                found.setdefault(id(h), h)
    return list(found.values())


def read_rows(path: Path, cases: int) -> list[dict]:
    """The first ``cases`` rows of a ``metrics.csv`` in case order, numbers as floats."""
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["case"])[:cases]
    return [{k: (v if k in TEXT_COLUMNS else float(v or "nan")) for k, v in r.items()} for r in rows]


def region_example(steps: int | None) -> dict[str, torch.Tensor]:
    """Figure 2 of the heart-attack paper on the first CXR test case with the heart-symbol recipe: the adversarial
    image and prediction of "attack all", "heart only", noise restricted to the receptive field and to the heart's
    bounding box.

    Returns ``{"image", "label", "target", "<setting>_adv", "<setting>_pred"}``, tensors of one case.
    """
    from bundle import load_examples, load_network
    from bundle.config import bundle_config
    from bundle.targets import heart_symbol_target, structure_region

    net, batch = load_network("cxr"), load_examples("cxr", "test", n=1)
    attack = bundle_config("cxr", ["attack.yaml", "pgd_heart.yaml"]).get_parsed_content("attack")
    image, label = batch["image"], batch["label"]
    target = heart_symbol_target(label, "small")
    example = {"image": image[0], "label": label[0], "target": target[0]}
    with torch.no_grad():
        example["clean_pred"] = net(image).argmax(1)
    settings = {"attack_all": {}, "heart_only": {"classes": [3]},
                "receptive_field": {"classes": [3], "region": structure_region(label, 3, "receptive_field")},
                "bbox": {"classes": [3], "region": structure_region(label, 3, "bbox")}}
    for name, options in settings.items():
        res = attack(net, image, target, **options, **({} if steps is None else {"steps": steps}))
        example[f"{name}_adv"], example[f"{name}_pred"] = res.adv[0], res.pred[0]
    return example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer settings and cases (a check, not the result)")
    parser.add_argument("--cases", type=int, help="cases per split (default: 8 full, 2 quick; CXR's test split has 20)")
    parser.add_argument("--steps", type=int, help="override every iterative attack's steps (smoke tests only)")
    parser.add_argument("--only", nargs="+", choices=["asma", "heart_attack", "wang_xu"], help="results files to make")
    parser.add_argument("--outputs", type=Path, help="where the runs go (default outputs/reproduce/<mode>)")
    parser.add_argument("--results", type=Path, help="where the tables go (default docs/results for full)")
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    cases = args.cases or mode.cases
    if cases < 2:
        parser.error(f"--cases should be at least 2 (ASMA swaps targets between cases), got {cases}.")
    root = args.outputs or Path(work_root(BUNDLE_ROOT)) / "outputs" / "reproduce" / mode.name
    results = args.results or (Path(work_root(BUNDLE_ROOT)) / "docs" / "results" if mode is FULL else root / "results")
    experiments = {name: exps for name, exps in plan(mode).items() if args.only is None or name in args.only}
    total = sum(len(exps) for exps in experiments.values())
    start = time.perf_counter()
    measured: dict[str, dict[str, list[dict]]] = {}
    with tqdm(total=total, desc=f"reproduce ({mode.name}, {cases} cases)", unit="run") as bar:
        for name, exps in experiments.items():
            measured[name] = {}
            for exp in exps:
                bar.set_postfix_str(exp.key)
                measured[name][exp.key] = run_experiment(exp, root, cases, args.steps)
                bar.update()
        example = region_example(args.steps) if "heart_attack" in experiments else None
    minutes = (time.perf_counter() - start) / 60
    from result_tables import write_results  # matplotlib only once the runs are done

    command = "python scripts/reproduce.py" + " ".join([""] + sys.argv[1:])
    for path in write_results(measured, results, mode=mode, cases=cases, command=command, minutes=minutes,
                              example=example):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

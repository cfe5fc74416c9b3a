"""The front door: ``advseg`` (or ``python -m bundle``) chooses and layers the bundle's config files, forwards options
by name to ``monai.bundle``, exactly as ``python -m monai.bundle run --config_file "[...]"`` does, and turns a
user's mistake into one line on stderr with exit status 2 (``--debug`` shows the traceback).

    advseg segment --input scans/ --output seg/
    advseg attack pgd_heart --input RG1_UNCR.dcm --output out/
    advseg attack asma --task fundus --input photo.jpg --target target.png --output out/
    advseg evaluate --task fundus
    advseg train --task cxr --num_cases 8
    advseg demo | advseg reproduce --quick | advseg where

No attack, data or I/O logic lives here (DESIGN.md, layer 10).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import logging
import runpy
import sys
import time
import warnings
from pathlib import Path

import yaml

from bundle.root import BUNDLE_ROOT

__all__ = ["main", "RECIPES", "LAYERS", "compose", "bundle_overrides"]

TASKS = ("fundus", "dermoscopy", "cxr")
RECIPES = ("asma", "pgd_heart", "pgd_resize", "pgd_untargeted", "fgsm")
LAYERS = {"momentum": "pgd_momentum.yaml", "strong": "pgd_strong.yaml", "transfer": "transfer.yaml"}
WORKFLOWS = {"segment": "segment.yaml", "evaluate": "evaluate.yaml", "train": "train.yaml"}
EXAMPLES = {
    "segment": "advseg segment --input scans/ --output seg/            (label maps; a DICOM SEG per DICOM input)",
    "attack": "advseg attack pgd_heart --input RG1_UNCR.dcm --output out/\n"
              "  advseg attack asma --task fundus --input photo.jpg --target target.png --output out/\n"
              "  advseg attack pgd_untargeted --with strong --input scans/ --output out/ --attack::eps 0.02",
    "evaluate": "advseg evaluate --task fundus                       (clean Dice / IoU on the phantom test split)",
    "train": "advseg train --task dermoscopy --output runs/derm        (the fixed phantom training split)\n"
             "  advseg train --stream --output runs/cxr                   (an endless stream of new phantoms, as the\n"
             "                                                            shipped CXR and fundus weights were trained)",
    "robustness": "advseg robustness --input scans/ --output robust/ --eps 0.01 0.02   (worst case over APGD attacks)\n"
                  "  advseg robustness --targeted pgd_heart --num_cases 8          (targeted: the heart symbol)",
}


CLI_NAMES = {"input_files": "--input", "target_files": "--target", "output_dir": "--output"}


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


def attack_options() -> set[str]:
    """Keyword options of the bundle's attacks (``--attack::<name>``)."""
    from bundle.attacks import asma, fgsm, pgd

    return {n for f in (asma, fgsm, pgd) for n, p in inspect.signature(f).parameters.items() if p.kind == p.KEYWORD_ONLY}


def _parse_value(text: str) -> object:
    """A command-line value as ``python -m monai.bundle run`` reads it: numbers, lists, true/false/null; else text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def bundle_overrides(extra: list[str]) -> dict:
    """``--name value`` pairs after the known options, e.g. ``--attack::eps 0.02``, as config overrides."""
    overrides, i = {}, 0
    while i < len(extra):
        name = extra[i]
        if not name.startswith("--") or len(name) < 3:
            raise UserError(f"Unexpected argument {name!r}; bundle options are given by name with a value, "
                            f"e.g. --attack::eps 0.02.")
        if "=" in name:
            name, value = name.split("=", 1)
            i += 1
        elif i + 1 < len(extra):
            value, i = extra[i + 1], i + 2
        else:
            raise UserError(f"Option {name} needs a value, e.g. {name} 0.02.")
        overrides[name[2:].replace("-", "_") if "::" not in name and "#" not in name else name[2:]] = _parse_value(value)
    return overrides


def compose(task: str, files: list[str]) -> list[str]:
    """Paths of ``common.yaml``, ``<task>.yaml`` and ``files`` in the bundle's ``configs/`` folder."""
    return [str(BUNDLE_ROOT / "configs" / name) for name in ("common.yaml", f"{task}.yaml", *files)]


def _model_overrides(args: argparse.Namespace) -> dict:
    """``--model`` (a state_dict, a TorchScript file or a MONAI bundle folder) and ``--network_def`` as overrides."""
    overrides = {}
    if args.network_def is not None:
        overrides["network_def"] = args.network_def
    if args.model is None:
        return overrides
    model = Path(args.model)
    if model.is_dir():
        configs = [model / "configs" / f"{n}.{e}" for n in ("inference", "train") for e in ("json", "yaml", "yml")]
        config = next((c for c in configs if c.is_file()), None)
        weights = next((w for w in (model / "models" / "model.pt", model / "models" / "model.ts") if w.is_file()), None)
        if config is None or weights is None:
            raise UserError(f"Option --model: folder {model} is not a MONAI bundle (configs/inference.json or .yaml "
                            f"with a network_def, and models/model.pt or model.ts); give the bundle's root folder.")
        overrides["model_file"] = str(weights)
        if weights.suffix == ".pt":
            # parsed in its own file with its own bundle_root: a network_def may refer to the file's other ids
            network = f"$bundle.config.bundle_network({str(model.resolve())!r}, {str(config.resolve())!r})"
            overrides.setdefault("network_def", network)
    elif model.is_file():
        overrides["model_file"] = str(model)
    else:
        raise UserError(f"Option --model: {model} does not exist; give a state_dict (.pt) with --network_def, a "
                        f"TorchScript file, or a MONAI bundle folder.")
    return overrides


def tracking_settings(name: object, command: str) -> object:
    """``--tracking``: ``tensorboard``, and ``mlflow`` for an attack, name the bundle's settings files
    (configs/tensorboard.yaml, configs/mlflow_attack.yaml); other values go to monai.bundle as they are."""
    files = {"tensorboard": "tensorboard.yaml", **({"mlflow": "mlflow_attack.yaml"} if command == "attack" else {})}
    return str(BUNDLE_ROOT / "configs" / files[name]) if name in files else name


def _run(task: str, files: list[str], overrides: dict, args: argparse.Namespace) -> None:
    """One bundle run, as ``python -m monai.bundle run`` does it (``monai.bundle.scripts.run``)."""
    from monai.bundle.scripts import run as bundle_run

    verbose = args.verbose or args.command == "train"  # training reports its epochs through the log
    if not verbose:  # MONAI's loggers carry their own INFO handlers, which no logging file reaches
        logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="parsing config_file")  # our own configs
            bundle_run(config_file=compose(task, files), meta_file=str(BUNDLE_ROOT / "configs" / "metadata.json"),
                       logging_file=str(BUNDLE_ROOT / "configs" / ("logging.conf" if verbose else "logging_quiet.conf")),
                       bundle_root=str(BUNDLE_ROOT), **overrides)
    finally:
        logging.disable(logging.NOTSET)  # for callers in the same process (main() from Python, the tests)


def _read_table(path: Path) -> list[dict]:
    """The rows of a CSV table the run wrote, or none if it wrote none."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _report(output: Path, started: float) -> None:
    """The attack run's folder and one line per case from its ``metrics.csv``."""
    rows = _read_table(output / "metrics.csv")
    if not rows:
        return
    print(f"\nResults in {output} ({len(rows)} cases, {time.perf_counter() - started:.1f} s):")
    for row in rows:
        print(f"  {row['case']}: target IoU {float(row['target_iou']):.4f}, L-inf {float(row['linf']):.4g}, "
              f"{row['steps']} steps, {float(row['seconds']):.1f} s (reference: {row.get('reference', 'ground truth')})")


def _robustness_report(output: Path, started: float) -> None:
    """The robustness run's folder and one line per eps from its ``summary.csv``."""
    rows = _read_table(output / "summary.csv")
    if not rows:
        return
    print(f"\nResults in {output} ({time.perf_counter() - started:.1f} s), report: {output / 'report.md'}")
    for row in rows:
        won = {k[4:]: float(v) for k, v in row.items() if k.startswith("won_")}
        print(f"  eps {float(row['eps']):g}: worst case {float(row['worst_score']):.4f} (clean "
              f"{float(row['clean_score']):.4f}), {float(row['passes']):.0f} passes, {float(row['seconds']):.1f} s "
              f"per case; won most: {max(won, key=won.get) if won else '-'}")


def _common_options(p: argparse.ArgumentParser, inputs: bool = True) -> None:
    p.add_argument("--task", choices=TASKS, default=None, help="model and data kind (default: cxr)")
    if inputs:
        p.add_argument("--input", "-i", nargs="+", metavar="PATH",
                       help="your own images: files, glob patterns or folders of DICOM, PNG, JPEG (default: the "
                            "phantom test split)")
    p.add_argument("--output", "-o", type=Path, default=None, help="output folder")
    p.add_argument("--model", default=None, help="your own model: a state_dict (.pt, with --network_def), a "
                                                 "TorchScript file or a MONAI bundle folder (default: the shipped one)")
    p.add_argument("--network_def", default=None,
                   help="the network of a state_dict, as a bundle expression, e.g. "
                        "\"$monai.networks.nets.SegResNet(spatial_dims=2, in_channels=1, out_channels=6)\"")
    p.add_argument("--force", action="store_true", help="accept a radiograph whose BodyPartExamined is not a chest")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--verbose", action="store_true", help="log as python -m monai.bundle run does (INFO)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advseg", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Adversarial attacks on medical image segmentation (a MONAI bundle). Any bundle option can "
                    "follow by name, e.g. --attack::eps 0.02 --model_grid \"[512, 512]\".",
        epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()))
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_text in (("segment", "clean segmentation of your images"),
                            ("evaluate", "clean Dice / IoU of a model on a labelled split"),
                            ("train", "train a model with the bundle's train config")):
        p = sub.add_parser(name, help=help_text, epilog=f"example:\n  {EXAMPLES[name]}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common_options(p, inputs=name == "segment")
        if name == "train":
            p.add_argument("--stream", action="store_true",
                           help="train on an endless, seeded stream of newly rendered phantoms (configs/train_stream.yaml: "
                                "--cases_per_epoch, --stream_render_size, --stream_render_options) instead of the fixed "
                                "training split; validation stays on the fixed split")
    p = sub.add_parser("robustness", help="a model's worst case over an attack ensemble at each eps of a sweep",
                       epilog=f"examples:\n  {EXAMPLES['robustness']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targeted", choices=("pgd_heart", "pgd_resize", "asma"), default=None,
                   help="a targeted recipe whose target the ensemble aims at (default: untargeted)")
    p.add_argument("--eps", nargs="+", type=float, default=None, help="the sweep's radii in model units (robustness_eps)")
    p.add_argument("--steps", type=int, default=None, help="passes per attack and case (robustness_steps)")
    p.add_argument("--target", nargs="+", metavar="FILE", default=None, help="with --targeted asma: as for attack")
    p.add_argument("--target_edit", default=None, metavar="EDIT", help="with --targeted asma: as for attack")
    _common_options(p)
    p = sub.add_parser("attack", help="run an attack recipe and export the adversarial images",
                       epilog=f"examples:\n  {EXAMPLES['attack']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=RECIPES, help="configs/<recipe>.yaml")
    p.add_argument("--with", dest="layers", action="append", choices=sorted(LAYERS), default=[],
                   help="layer after the recipe: momentum, strong (PGD recipes), transfer (black box)")
    p.add_argument("--target", nargs="+", metavar="FILE", default=None,
                   help="ASMA: a target label map per input, in the inputs' order")
    p.add_argument("--target_edit", default=None, metavar="EDIT",
                   help="ASMA: target made from each reference: remove:<class>, scale:<class>:1.4, shift:<class>:0.1,0")
    p.add_argument("--no_export", action="store_true", help="skip the DICOM / PNG export (configs/export_dicom.yaml)")
    _common_options(p)
    for name, help_text in (("demo", "the shipped models on the phantoms, clean and attacked (scripts/demo.py)"),
                            ("reproduce", "the papers' tables on the phantoms (scripts/reproduce.py)")):
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("--debug", action="store_true")
    sub.add_parser("where", help="print the bundle root (configs/, models/) for python -m monai.bundle run")
    return parser


def _workflow(args: argparse.Namespace, extra: list[str]) -> None:
    task = args.task or "cxr"
    overrides = bundle_overrides(extra)
    overrides.update(_model_overrides(args))
    if args.force:
        overrides["force"] = True
    if getattr(args, "input", None):
        overrides["input_files"] = args.input
    if args.command == "robustness":
        files = ["attack.yaml", *([f"{args.targeted}.yaml"] if args.targeted else []), "robustness.yaml"]
        overrides.update({k: v for k, v in (("robustness_eps", args.eps), ("robustness_steps", args.steps),
                                            ("target_files", args.target), ("target_edit", args.target_edit))
                          if v is not None})
        if (args.target or args.target_edit) and args.targeted != "asma":
            raise UserError("Options --target and --target_edit need --targeted asma.")
        default_output = Path("outputs") / task / ("robustness_targeted" if args.targeted else "robustness")
    elif args.command == "attack":
        files = ["attack.yaml", f"{args.recipe}.yaml", *[LAYERS[name] for name in args.layers]]
        if not args.no_export:
            files.append("export_dicom.yaml")
        if args.target is not None:
            overrides["target_files"] = args.target
        if args.target_edit is not None:
            overrides["target_edit"] = args.target_edit
        if (args.target or args.target_edit) and args.recipe != "asma":
            raise UserError(f"Options --target and --target_edit are for the asma recipe; {args.recipe} makes its own "
                            f"target (see configs/{args.recipe}.yaml).")
        default_output = Path("outputs") / task / args.recipe
    else:
        files = [WORKFLOWS[args.command], *(["train_stream.yaml"] if getattr(args, "stream", False) else [])]
        default_output = Path("outputs") / task / args.command
    if "tracking" in overrides:
        overrides["tracking"] = tracking_settings(overrides["tracking"], args.command)
    output = (args.output or default_output).resolve()
    overrides["output_dir"] = "$" + repr(str(output))  # an expression: MONAI's tracking appends "+ '/config_<time>.json'"
    started = time.perf_counter()
    _run(task, files, overrides, args)
    if args.command == "attack":
        _report(output, started)
    elif args.command == "robustness":
        _robustness_report(output, started)
    elif args.command == "segment":
        cases = sorted(p for p in output.iterdir() if (p / "label.png").is_file())
        print(f"\nResults in {output} ({len(cases)} cases, {time.perf_counter() - started:.1f} s):")
        for case in cases:
            print(f"  {case.name}: {', '.join(sorted(p.name for p in case.iterdir()))}")
    else:
        print(f"\nResults in {output}")


def _script(name: str, argv: list[str]) -> None:
    """Run ``scripts/<name>.py`` of the bundle with ``argv``, as ``python scripts/<name>.py`` would."""
    path = BUNDLE_ROOT / "scripts" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise


def user_message(error: BaseException) -> str | None:
    """The message of the outermost user error in ``error``'s chain: MONAI wraps the bundle's messages in
    ``RuntimeError("Failed to evaluate ...")``, and the bundle's own messages wrap the raw library errors."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (UserError, ValueError, TypeError, KeyError, OSError)):
            return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        error = error.__cause__ or error.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    debug = getattr(args, "debug", False) or "--debug" in extra
    extra = [a for a in extra if a != "--debug"]
    try:
        if args.command == "where":
            print(BUNDLE_ROOT)
        elif args.command in ("demo", "reproduce"):
            _script(args.command, extra)
        else:
            _workflow(args, extra)
    except KeyboardInterrupt:
        print("advseg: interrupted; rerun the same command to resume an attack run", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the one place that turns errors into exit statuses
        if debug:
            raise
        message = user_message(error)
        message = None if message is None else " ".join(message.split())  # one line
        if message is None:
            print(f"advseg: internal error ({type(error).__name__}: {error}); rerun with --debug for the traceback "
                  f"and report it", file=sys.stderr)
            return 1
        for option, flag in CLI_NAMES.items():  # the bundle names its options; say how they are spelt here
            message = message.replace(f"Option {option}", f"Option {flag} ({option})")
        name = message.split()[1] if message.startswith("Argument ") else None
        if name in attack_options():
            message += f" Set it with --attack::{name}."
        print(f"advseg: error: {message}", file=sys.stderr)
        return 2
    return 0

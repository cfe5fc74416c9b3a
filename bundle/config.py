"""Small functions the bundle configs call in one-line ``$`` expressions, and config parsing for Python users."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from bundle._choices import check_choice
from bundle.data import TASKS, ensure_dataset, read_datalist
from bundle.inputs import attach_targets, has_labels, input_cases, with_case_ids
from bundle.networks import ARCHITECTURES
from bundle.root import BUNDLE_ROOT, IS_CHECKOUT, work_root
from bundle.targets import derangement, edited_target, parse_target_edit

__all__ = ["BUNDLE_ROOT", "IS_CHECKOUT", "work_root", "VARIANTS", "bundle_config", "layered", "bundle_network", "check_model_grid", "check_intensity_bounds", "model_file", "model_suffix", "model_path", "case_list", "run_cases", "with_swapped_targets", "asma_cases", "target_editor", "check_inputs", "check_output_dir", "is_torchscript", "network_or_torchscript", "network_settings", "require_task", "load_weights", "attack_settings", "flat_params", "file_digest", "targets_digest"]

VARIANTS = ("target", "surrogate")


def bundle_config(task: str, files: Sequence[str] = (), bundle_root: str | Path = BUNDLE_ROOT, **overrides) -> ConfigParser:
    """Parse ``configs/common.yaml``, ``configs/<task>.yaml`` and then ``files`` (names inside ``configs/``)."""
    task = check_choice(task, TASKS, "Option task")
    config_dir = Path(bundle_root) / "configs"
    parser = ConfigParser()
    parser.read_config([str(config_dir / name) for name in ("common.yaml", f"{task}.yaml", *files)])
    parser.update({"bundle_root": str(bundle_root), **overrides})
    return parser


def layered(bundle_root: str | Path, task: str, files: Sequence[str], **options) -> ConfigParser:
    """The layered config an entry file such as ``configs/inference.yaml`` takes its items from: :func:`bundle_config`
    with the entry file's ``options`` as overrides, those left null keeping the layered files' defaults."""
    return bundle_config(task, files, bundle_root, **{k: v for k, v in options.items() if v is not None})


def bundle_network(bundle_root: str | Path, config_file: str | Path) -> torch.nn.Module:
    """The ``network_def`` of a MONAI bundle (another's, or this one), parsed in its own config file with its own
    ``bundle_root``, as MONAI Label reads a bundle."""
    parser = ConfigParser()
    parser.read_config(str(config_file))
    parser.update({"bundle_root": str(bundle_root)})
    return parser.get_parsed_content("network_def")


def model_file(bundle_root: str | Path, task: str, variant: str = "target", architecture: str = "unet") -> str:
    """Path of the shipped weights: ``models/<task>[_surrogate][_<architecture> unless unet].pt``."""
    task = check_choice(task, TASKS, "Option task")
    variant = check_choice(variant, VARIANTS, "Option variant")
    architecture = check_choice(architecture, ARCHITECTURES, "Option architecture")
    if variant == "surrogate" and task != "cxr":
        raise ValueError(f"Variant 'surrogate' exists only for task 'cxr' (the black-box setting of Bortsova et al.), "
                         f"got task {task!r}; use variant 'target'.")
    return str(Path(bundle_root) / "models" / f"{task}{model_suffix(variant, architecture)}.pt")


def model_suffix(variant: str = "target", architecture: str = "unet") -> str:
    """``''`` for the default network, else ``_surrogate`` and/or ``_<architecture>``: names weights and runs."""
    return ("" if variant == "target" else f"_{variant}") + ("" if architecture == "unet" else f"_{architecture}")


def model_path(task: str, variant: str = "target", architecture: str = "unet") -> Path:
    """The shipped weights of ``task`` / ``variant`` / ``architecture`` inside this repository."""
    return Path(model_file(BUNDLE_ROOT, task, variant, architecture))


def case_list(task: str, dataset_dir: str | Path, split: str, num_cases: int | None = None) -> list[dict]:
    """Items of ``split`` (phantoms generated first when ``dataset_dir`` is empty), the first ``num_cases`` only.

    Raises ``ValueError`` when the split is empty: a run over no case is a mistake, not a result.
    """
    _check_num_cases(num_cases)
    ensure_dataset(task, dataset_dir, split=split)
    items = with_case_ids(read_datalist(dataset_dir, split))[:num_cases]
    if not items:
        raise ValueError(f"Split {split!r} of {dataset_dir} holds no case; check dataset_dir and the datalist.")
    return items


def run_cases(task: str, dataset_dir: str | Path, split: str, num_cases: int | None = None,
              input_files: str | Sequence[str] | None = None) -> list[dict]:
    """The cases of a run: the user's ``input_files`` (paths, globs, folders; unlabelled) if given, else ``split``.

    Every item gets a ``case`` id that names its outputs (:func:`bundle.inputs.case_ids`).
    """
    if input_files is None:
        return case_list(task, dataset_dir, split, num_cases)
    _check_num_cases(num_cases)
    return input_cases(input_files, num_cases)


def _check_num_cases(num_cases: object) -> None:
    if num_cases is not None and (not isinstance(num_cases, int) or num_cases < 1):
        raise ValueError(f"Option num_cases should be a positive integer or null (all cases), got {num_cases!r}.")


def with_swapped_targets(items: list[dict], seed: int = 0) -> list[dict]:
    """Give every case another case's label as its attack ``target`` (the ASMA protocol), by a seeded derangement.

    The pairing depends only on the case list and the seed, so a resumed run attacks each case with the same
    target as the first run.
    """
    if len(items) < 2:
        raise ValueError(f"Swapped targets need at least 2 cases, got {len(items)}; raise num_cases.")
    order = derangement(len(items), seed).tolist()
    return [dict(item, target=items[j]["label"]) for item, j in zip(items, order)]


def asma_cases(items: list[dict], target_files: str | Sequence[str] | None = None, target_edit: str | None = None,
               seed: int = 0) -> list[dict]:
    """ASMA's cases with their targets: ``target_files`` (one label map per input), a ``target`` column of the
    datalist, a ``target_edit`` made at attack time from each reference, or else another case's label."""
    if target_edit is not None:
        if target_files is not None:
            raise ValueError("Options target_files and target_edit exclude each other; give one of them.")
        return items
    if target_files is not None:
        return attach_targets(items, target_files)
    if all(item.get("target") for item in items):
        return items
    if not has_labels(items):
        raise ValueError("ASMA on your own images needs a target: give one target label map per input "
                         "(--target_files, or --target on the command line) or an edit of the clean prediction "
                         "(--target_edit remove:<class>, scale:<class>:1.4 or shift:<class>:0.1,0).")
    return with_swapped_targets(items, seed)


def target_editor(edit: str, class_names: Sequence[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``label -> edited_target(label, edit, class_names)``, the edit checked now, before any case runs."""
    parse_target_edit(edit, class_names)
    return functools.partial(edited_target, edit=edit, class_names=list(class_names))


def check_inputs(items: Sequence[dict], loader: Callable[[dict], dict]) -> None:
    """Read every case's image with the run's ``loader`` before the first case runs, so that a file the model was not
    made for (another modality, a damaged file, ...) stops the run with its message before anything is written."""
    for item in items:
        loader({"image": item["image"]})


def check_output_dir(output_dir: str | Path) -> None:
    """Refuse an ``output_dir`` that is a file, lies below a file, or cannot be written, before any work."""
    path = Path(output_dir)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"Option output_dir: {existing} is a file, not a folder; give a folder for the results "
                         f"(--output_dir, or --output on the command line).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"Option output_dir: no permission to write in {existing}; give a folder you can write to.")


def check_model_grid(model_grid: Sequence[int]) -> list[int]:
    """``model_grid`` as ``[H, W]``, or a ``ValueError`` naming the option: the networks halve the grid four times,
    so both sides must be positive multiples of 16."""
    sides = list(model_grid) if isinstance(model_grid, (list, tuple)) else []
    if len(sides) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 16 == 0
                                  for v in sides):
        raise ValueError(f"Option model_grid should be [H, W], two positive multiples of 16 (the U-Nets halve the "
                         f"grid four times), got {model_grid!r}; e.g. --model_grid \"[512, 512]\".")
    return sides


def check_intensity_bounds(intensity_bounds: Sequence[float]) -> list[float]:
    """``intensity_bounds`` as ``[low, high]``, or a ``ValueError`` naming the option: the model domain the loading maps
    the display range [0, 1] onto, the attacks clip to and the export maps back from, so ``low < high``."""
    pair = list(intensity_bounds) if isinstance(intensity_bounds, (list, tuple)) else []
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                 for v in pair) or pair[0] >= pair[1]:
        raise ValueError(f"Option intensity_bounds should be [low, high], two finite numbers with low < high (the "
                         f"model domain the display range [0, 1] is mapped onto), got {intensity_bounds!r}; e.g. "
                         f"--intensity_bounds \"[-0.5, 0.5]\".")
    return [float(v) for v in pair]


def require_task(task: str, allowed: Sequence[str] | None, recipe: str) -> None:
    """Stop a run whose recipe does not fit the task (e.g. a heart target on a fundus model); ``None`` = any."""
    if allowed is not None and task not in allowed:
        raise ValueError(f"Recipe {recipe!r} needs task {' or '.join(allowed)}, got task {task!r}; use a recipe made "
                         f"for {task} (asma.yaml, pgd_untargeted.yaml, fgsm.yaml) or switch the task file.")


def require_layer(attack_target: str, layer: str | None, layer_attacks: Sequence[str] | None) -> None:
    """Stop a run that layers ``layer`` (e.g. pgd_strong.yaml) on a recipe whose attack it was not made for."""
    attack = str(attack_target).rsplit(".", 1)[-1]
    if layer is not None and layer_attacks is not None and attack not in layer_attacks:
        raise ValueError(f"Config file {layer} is for {' or '.join(layer_attacks)} recipes, but this recipe runs "
                         f"{attack}; drop {layer} from --config_file, or put it after a recipe that runs "
                         f"{' or '.join(layer_attacks)}.")


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), not a pickled state_dict (``torch.save``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def network_or_torchscript(network_def: torch.nn.Module, model_file: str | Path) -> torch.nn.Module:
    """The TorchScript model in ``model_file`` if it is one (its weights inside), else ``network_def`` (for
    :func:`load_weights`): a scripted model needs no network definition."""
    return torch.jit.load(str(model_file), map_location="cpu") if is_torchscript(model_file) else network_def


def network_settings(network: torch.nn.Module) -> dict:
    """What network a run used, for ``settings.json``: its class, parameter count and a digest of its definition
    (the module tree as printed), so another network under the same weights file name is told apart."""
    scripted = isinstance(network, torch.jit.ScriptModule)
    name = network.original_name if scripted else f"{type(network).__module__}.{type(network).__qualname__}"
    definition = str(network.code) if scripted else repr(network)
    return {"class": name, "torchscript": scripted, "parameters": sum(p.numel() for p in network.parameters()),
            "definition_sha256": hashlib.sha256(definition.encode()).hexdigest()}


def load_weights(network: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a state_dict file into ``network`` (``weights_only``), with an error that names the file; a TorchScript
    ``network`` loaded from ``path`` (:func:`network_or_torchscript`) already holds its weights."""
    path = _existing_checkpoint(path)
    if isinstance(network, torch.jit.ScriptModule):
        return network
    if is_torchscript(path):
        raise ValueError(f"Checkpoint {path} is a TorchScript model, but the run's network was built from network_def; "
                         f"give it as model_file without overriding network (or --model on the command line).")
    state = torch.load(path, map_location="cpu", weights_only=True)
    mismatch = _state_mismatch(network.state_dict(), state) if isinstance(state, dict) else "it holds no state_dict"
    if mismatch:
        raise ValueError(f"Checkpoint {path} does not fit this network ({type(network).__name__}: {mismatch}); is it "
                         f"the weights of another task or network? Pass the network it was trained with (--network_def "
                         f"or --architecture), or a TorchScript file / MONAI bundle folder as --model.")
    network.load_state_dict(state)
    return network


def _state_mismatch(expected: dict, given: dict) -> str:
    """A short account of how ``given`` differs from the network's ``expected`` state_dict; empty if it fits."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [k for k in expected if k in given and hasattr(given[k], "shape") and given[k].shape != expected[k].shape]
    parts = [f"{len(keys)} {what}, e.g. {keys[0]}" for keys, what in ((missing, "missing keys"),
             (unexpected, "unexpected keys"), (shapes, "tensors of another shape")) if keys]
    return "; ".join(parts)


def _existing_checkpoint(path: str | Path) -> Path:
    """``path`` as a ``Path``, or a ``FileNotFoundError`` that names it and says where weights come from."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist; set model_file (surrogate_file for transfer.yaml's "
                                f"surrogate) to a trained state_dict (train one with configs/train.yaml) or restore "
                                f"models/ from the repository.")
    return path


def attack_settings(attack: functools.partial) -> dict:
    """An attack recipe's function (``module.name``) and keyword arguments, as its run's settings record them."""
    return {"function": f"{attack.func.__module__}.{attack.func.__qualname__}", **attack.keywords}


def flat_params(settings: dict, prefix: str = "") -> dict:
    """A run's nested settings as flat names, as MLflow params take them: ``{"attack.eps": 0.04, ...}``."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def targets_digest() -> str:
    """SHA-256 of the source of :mod:`bundle.targets`, which draws every target (heart symbols, resized structures,
    edits): a targeted run's settings record it, so results drawn with other targets are not resumed as this run's."""
    import bundle.targets

    return hashlib.sha256(Path(bundle.targets.__file__).read_bytes()).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a weights file's bytes: its identity, which retraining changes but not its name."""
    digest = hashlib.sha256()
    with open(_existing_checkpoint(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

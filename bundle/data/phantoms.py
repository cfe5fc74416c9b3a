"""Write the procedural phantom datasets to disk in the formats of the real datasets, with a datalist.

Case ``i`` of a task is drawn from ``numpy.random.default_rng([seed, task_number, i])``, so any subset of
cases (for example only the test split) is generated identically on its own.
"""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from monai.utils import look_up_option
from PIL import Image
from pydicom.uid import generate_uid
from tqdm import tqdm

from bundle._files import atomic_path
from bundle.data.datalist import DATALIST_NAME, write_datalist

__all__ = ["TASKS", "SPLIT_SIZES", "PHANTOM_VERSIONS", "generate_phantom_dataset", "ensure_dataset", "phantom_splits"]

TASKS = ("fundus", "dermoscopy", "cxr")

# renderer version per task, written to phantom.json; a folder of another version is refused, not mixed.
# cxr 2: the lungs' air term calibrated to a real chest radiograph's heart - lung contrast (docs/attacks.md)
# cxr 3, fundus 2: everything but the label randomised (framing, devices, processing, window...) to transfer to real images
# dermoscopy 2: the acquisition randomised too (magnification, exposure, blur, noise, sharpening, JPEG, enlargement)
PHANTOM_VERSIONS: dict[str, int] = {"fundus": 2, "dermoscopy": 2, "cxr": 4}

# cases per split; CXR follows Bortsova et al.: 100 training, 23 validation, 20 test images
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "fundus": {"training": 160, "validation": 20, "test": 30},
    "dermoscopy": {"training": 160, "validation": 20, "test": 30},
    "cxr": {"training": 100, "validation": 23, "test": 20},
}


def phantom_splits(task: str, sizes: Mapping[str, int] | None = None, seed: int = 0) -> dict[str, list[int]]:
    """Case indices per split. For ``cxr`` also ``training_surrogate`` / ``validation_surrogate``.

    The surrogate's validation set is drawn from the target's training set, disjoint from the target's
    validation set; both networks then train on the same pool minus their validation set, so their
    training sets share ``n_train - n_val`` cases (77 of 100, as in the heart-attack paper).
    """
    task = look_up_option(task, TASKS)
    sizes = dict(SPLIT_SIZES[task] if sizes is None else sizes)
    n_tr, n_va, n_te = sizes["training"], sizes["validation"], sizes["test"]
    splits = {"training": list(range(n_tr)), "validation": list(range(n_tr, n_tr + n_va)),
              "test": list(range(n_tr + n_va, n_tr + n_va + n_te))}
    if task == "cxr":
        rng = np.random.default_rng([seed, 99])
        surrogate_val = sorted(rng.choice(n_tr, size=min(n_va, n_tr), replace=False).tolist())
        pool = splits["training"] + splits["validation"]
        splits["validation_surrogate"] = surrogate_val
        splits["training_surrogate"] = [i for i in pool if i not in set(surrogate_val)]
    return splits


def _write_case(task: str, index: int, seed: int, dataset_dir: Path) -> dict[str, str]:
    rng = np.random.default_rng([seed, TASKS.index(task), index])
    # generators are imported on use: bundle.data.<task>.generate_<task>
    generate = getattr(importlib.import_module(f"bundle.data.{task}"), f"generate_{task}")
    name = f"{task}_{index:04d}"
    label_path = dataset_dir / "labels" / f"{name}.png"
    # fundus alternates JPEG and PNG as RIM-ONE/REFUGE do; dermoscopy is JPEG as in ISIC; CXR is DICOM
    suffix = {"cxr": ".dcm", "dermoscopy": ".jpg"}.get(task, ".png" if index % 2 else ".jpg")
    image_path = dataset_dir / "images" / f"{name}{suffix}"
    if image_path.is_file() and label_path.is_file():  # cases are deterministic: written once is written
        return {"image": str(image_path), "label": str(label_path)}
    if task == "cxr":
        from bundle.data.dicom_writer import write_dx

        pixels, label, info = generate(rng)
        # about one radiograph in five is stored inverted, as some CR/DX systems do
        photometric = "MONOCHROME1" if rng.random() < 0.2 else "MONOCHROME2"
        # the anatomy fills 1024 pixels as it fills JSRT's 2048 at 0.175 mm, hence 0.35 mm
        uid = lambda kind: generate_uid(entropy_srcs=[str(seed), task, str(index), kind])  # noqa: E731
        write_dx(image_path, pixels, photometric=photometric, pixel_spacing=(0.35, 0.35), patient_id=f"PHANTOM{index:04d}",
                 patient_name=f"Phantom^Case{index:04d}", patient_sex=info.get("sex", "O"),
                 study_instance_uid=uid("study"), series_instance_uid=uid("series"), sop_instance_uid=uid("image"),
                 study_description="Phantom chest radiograph", series_description="PA chest phantom",
                 window=info["window"])
    else:
        image, label, info = generate(rng)
        with atomic_path(image_path) as tmp:
            Image.fromarray(image).save(tmp, quality=int(rng.integers(80, 96)) if suffix == ".jpg" else None)
    with atomic_path(label_path) as tmp:
        Image.fromarray(label.astype(np.uint8)).save(tmp)
    return {"image": str(image_path), "label": str(label_path)}


def generate_phantom_dataset(task: str, dataset_dir: str | Path, *, seed: int = 0,
                             sizes: Mapping[str, int] | None = None, only: Iterable[str] | None = None,
                             progress: bool = True) -> Path:
    """Generate the phantom dataset of ``task`` into ``dataset_dir`` and write its ``datalist.json``.

    Args:
        task: ``fundus``, ``dermoscopy`` or ``cxr``.
        dataset_dir: output folder (``images/``, ``labels/``, ``datalist.json``).
        seed: dataset seed; the same seed gives the same files.
        sizes: cases per split ``{"training", "validation", "test"}``; defaults to ``SPLIT_SIZES[task]``.
        only: write only these splits (others are left out of the datalist).
        progress: show a progress bar.

    Returns:
        the datalist path.
    """
    task = look_up_option(task, TASKS)
    dataset_dir = Path(dataset_dir)
    splits = phantom_splits(task, sizes, seed)
    if only is not None:
        only = set(only)
        splits = {k: v for k, v in splits.items() if k in only or k.rsplit("_", 1)[0] in only}
    indices = sorted({i for v in splits.values() for i in v})
    files = {}
    for i in tqdm(indices, desc=f"phantoms {task}", disable=not progress):
        files[i] = _write_case(task, i, seed, dataset_dir)
    path = write_datalist(dataset_dir, {k: [files[i] for i in v] for k, v in splits.items()})
    meta = {"task": task, "seed": seed, "sizes": {k: len(v) for k, v in splits.items()}, "generator": "bundle.data",
            "version": PHANTOM_VERSIONS[task]}
    (dataset_dir / "phantom.json").write_text(json.dumps(meta, indent=1))
    return path


def ensure_dataset(task: str, dataset_dir: str | Path, seed: int = 0, split: str | None = None) -> Path:
    """Return ``dataset_dir/datalist.json``, generating phantoms first where they are missing.

    An empty or missing folder gets the phantoms of ``split`` (all splits when ``None``); a phantom dataset
    that lacks ``split`` gets it added. A non-empty folder without a datalist is an error rather than a place
    to write phantoms into: it is most likely a real dataset that still needs its converter.
    """
    task = look_up_option(task, TASKS)
    dataset_dir = Path(dataset_dir)
    datalist = dataset_dir / DATALIST_NAME
    if datalist.is_file():
        present = json.loads(datalist.read_text())
        marker = dataset_dir / "phantom.json"
        if not marker.is_file():
            return datalist
        try:
            meta = json.loads(marker.read_text())
        except json.JSONDecodeError as err:
            raise RuntimeError(f"{marker} is not valid JSON ({err}); delete {dataset_dir} to have the phantoms "
                               f"regenerated.") from err
        if meta.get("task") != task:
            raise RuntimeError(f"{dataset_dir} holds {meta.get('task')} phantoms, not {task} ones; point dataset_dir "
                               f"at the {task} folder or at an empty one.")
        version = meta.get("version", 1)  # markers written before versioning are version 1
        if version != PHANTOM_VERSIONS[task]:
            raise RuntimeError(f"{dataset_dir} holds {task} phantoms of renderer version {version}, but this bundle "
                               f"renders version {PHANTOM_VERSIONS[task]} (see PHANTOM_VERSIONS in "
                               f"bundle/data/phantoms.py); delete {dataset_dir} to have them regenerated, or point "
                               f"dataset_dir at an empty folder.")
        if split is None or split in present:
            return datalist
        return generate_phantom_dataset(task, dataset_dir, seed=meta["seed"], only=set(present) | {split})
    if dataset_dir.exists() and any(dataset_dir.iterdir()):
        raise FileNotFoundError(f"{dataset_dir} is not empty but has no {DATALIST_NAME}; convert the dataset with "
                                f"the matching script in scripts/ or point dataset_dir at an empty folder.")
    # generate beside the target and move it in whole: an interrupted run leaves no half dataset behind
    staging = dataset_dir.with_name(f".{dataset_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    generate_phantom_dataset(task, staging, seed=seed, only=None if split is None else [split])
    if dataset_dir.exists():
        dataset_dir.rmdir()
    staging.rename(dataset_dir)
    return datalist

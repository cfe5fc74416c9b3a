"""MONAI-style datalists: ``{"training": [...], "validation": [...], "test": [...]}`` of ``{"image", "label"}``
(and optionally ``"target"``, an attack target label map per case, read by ASMA).

Paths inside a datalist are relative to the folder that holds ``datalist.json``; read them with
``monai.data.load_decathlon_datalist(path, data_list_key=split, base_dir=folder)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bundle._files import atomic_path

__all__ = ["DATALIST_NAME", "write_datalist", "read_datalist", "split_indices"]

DATALIST_NAME = "datalist.json"
PATH_KEYS = ("image", "label", "target")  # file paths, relative to the datalist's folder; "target": ASMA's own targets


def write_datalist(dataset_dir: str | Path, splits: Mapping[str, Sequence[Mapping[str, str]]]) -> Path:
    """Write ``splits`` to ``dataset_dir/datalist.json`` atomically; image/label paths are made relative."""
    dataset_dir = Path(dataset_dir).resolve()
    rel = {}
    for split, items in splits.items():
        rel[split] = [
            {k: (Path(v).resolve().relative_to(dataset_dir).as_posix() if k in PATH_KEYS else v)
             for k, v in item.items()}
            for item in items
        ]
    out = dataset_dir / DATALIST_NAME
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(rel, indent=1))
    return out


DATALIST_FORMAT = ('a JSON object {"training": [...], "validation": [...], "test": [...]} whose lists hold items '
                   '{"image": path, "label": path} (paths relative to its folder)')


def read_datalist(dataset_dir: str | Path, split: str) -> list[dict]:
    """Items of ``split`` with absolute paths.

    Raises:
        FileNotFoundError: no ``datalist.json`` in ``dataset_dir``.
        KeyError: the datalist has no ``split``.
        ValueError: the file is not JSON of the datalist format, or an item of ``split`` has no ``image`` path;
            the message names the file, what is wrong and the format.
    """
    path = Path(dataset_dir) / DATALIST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"No datalist at {path}: generate the phantoms or convert a real dataset first.")
    fix = f"; a datalist is {DATALIST_FORMAT}: fix the file or convert the dataset again."
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}){fix}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object of splits{fix}")
    if split not in data:
        raise KeyError(f"Split {split!r} not in {path}; it has {sorted(data)}.")
    items = data[split]
    if not isinstance(items, list):
        raise ValueError(f"{path}: split {split!r} is a JSON {type(items).__name__}, not a list of items{fix}")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("image"), str) or not item["image"]:
            raise ValueError(f"{path}: item {i} of split {split!r} has no \"image\" path ({json.dumps(item)[:80]}){fix}")
        for key in PATH_KEYS[1:]:
            if key in item and not isinstance(item[key], str):
                raise ValueError(f"{path}: item {i} of split {split!r} has a \"{key}\" that is not a path{fix}")
    base = path.parent
    return [{k: (str(base / v) if k in PATH_KEYS else v) for k, v in item.items()} for item in items]


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into consecutive parts of the given fractions (last takes the rest)."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.floor(np.cumsum(fractions[:-1]) * n).astype(int)
    return [np.sort(part) for part in np.split(order, cuts)]

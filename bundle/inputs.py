"""A run's cases: a datalist split or the user's own files, each with a ``case`` id that names its outputs.

Case ids are the image files' stems where those are unique; where two inputs share a stem (``a/scan.dcm`` and
``b/scan.dcm``) their ids carry the folders that tell them apart (``a_scan``, ``b_scan``), so no case's outputs
can overwrite another's and every input gets its own row in ``metrics.csv``.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from bundle._files import safe_name

__all__ = ["IMAGE_SUFFIXES", "is_dicom", "expand_inputs", "case_ids", "with_case_ids", "input_cases", "attach_targets",
           "has_labels"]

IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


def is_dicom(path: str | Path) -> bool:
    """A DICOM file: named ``.dcm`` / ``.dicom``, or a Part 10 file (``DICM`` after the 128-byte preamble) by any name."""
    if Path(path).suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _folder_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted): known suffixes, and DICOM files without a suffix."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and (p.suffix.lower() in IMAGE_SUFFIXES or (p.suffix == "" and is_dicom(p))))


def expand_inputs(inputs: str | Path | Sequence[str | Path], option: str = "input_files") -> list[Path]:
    """Files named by ``inputs``: paths, glob patterns and folders (searched recursively), in order, each once.

    Raises:
        FileNotFoundError: an entry names nothing, a pattern matches nothing or a folder holds no image;
            the message names ``option`` and the entry.
    """
    entries = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not entries:
        raise ValueError(f"Option {option} is empty; give image files, glob patterns or folders.")
    paths: list[Path] = []
    for entry in map(str, entries):
        if Path(entry).is_dir():
            found = _folder_images(Path(entry))
            if not found:
                raise FileNotFoundError(f"Option {option}: folder {entry} holds no image file ({', '.join(IMAGE_SUFFIXES)} "
                                        f"or DICOM); give the folder of your images.")
        elif glob.has_magic(entry):
            found = sorted(Path(p) for p in glob.glob(entry) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"Option {option}: pattern {entry!r} matches no file; give existing image "
                                        f"paths or a glob such as 'scans/*.dcm'.")
        elif Path(entry).is_file():
            found = [Path(entry)]
        else:
            raise FileNotFoundError(f"Option {option}: {entry} does not exist; check the path.")
        paths += found
    first = {}  # each file once, where it was first named
    for path in paths:
        first.setdefault(path.resolve(), path)
    return list(first.values())


def case_ids(paths: Sequence[str | Path]) -> list[str]:
    """One file-name-safe id per path: its stem where that is unique, else its path below the inputs' common folder
    (``a/scan.dcm``, ``b/scan.dcm`` -> ``a_scan``, ``b_scan``), with the suffix or a number if still equal."""
    paths = [Path(p).resolve() for p in paths]
    ids = [safe_name(p.stem) for p in paths]
    if len(set(ids)) == len(ids):
        return ids
    common = 1  # below the root
    while all(len(p.parts) > common + 1 and p.parts[common] == paths[0].parts[common] for p in paths):
        common += 1
    longer = [safe_name("_".join([*p.parts[common:-1], p.stem])) for p in paths]
    ids = [long if ids.count(short) > 1 else short for short, long in zip(ids, longer)]
    ids = [safe_name(f"{name}_{p.suffix.lstrip('.')}") if ids.count(name) > 1 else name for name, p in zip(ids, paths)]
    return [f"{name}_{i}" if ids.count(name) > 1 else name for i, name in enumerate(ids)]


def with_case_ids(items: Sequence[dict]) -> list[dict]:
    """``items`` with a ``case`` id each (kept where an item already has one)."""
    ids = case_ids([item["image"] for item in items])
    return [dict(item, case=item.get("case") or name) for item, name in zip(items, ids)]


def input_cases(inputs: str | Sequence[str], num_cases: int | None = None, option: str = "input_files") -> list[dict]:
    """Items ``{"image", "case"}`` of the user's files (no label: the reference is the clean prediction)."""
    return with_case_ids([{"image": str(p)} for p in expand_inputs(inputs, option)])[:num_cases]


def has_labels(items: Sequence[dict]) -> bool:
    """Whether every item has a label map (the reference is then the ground truth, else the clean prediction)."""
    return bool(items) and all(item.get("label") for item in items)


def attach_targets(items: list[dict], targets: str | Sequence[str], option: str = "target_files") -> list[dict]:
    """Give each item its own attack target label map: one file for a single input, else one per input in order."""
    files = expand_inputs(targets, option)
    if len(files) == 1 and len(items) > 1:
        raise ValueError(f"Option {option}: 1 target for {len(items)} inputs; give one target label map per input "
                         f"(in the inputs' order), or a datalist with a 'target' column.")
    if len(files) != len(items):
        raise ValueError(f"Option {option}: {len(files)} target label maps for {len(items)} inputs; give one per input.")
    return [dict(item, target=str(path)) for item, path in zip(items, files)]

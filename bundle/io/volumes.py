"""2-D images, masks and perturbations as NIfTI (nibabel) and NRRD (ITK) files with their geometry.

Geometry chosen: a radiograph has no Image Position / Orientation (Patient), only Pixel Spacing and
Patient Orientation. The image is stored as one slice of a 3-D volume whose axes follow the DICOM
Patient Orientation pair ``(row direction, column direction)``:

* index along a row (column index, fastest in memory) -> the first letter, default ``"L"``: patient left;
* index down a column (row index) -> the second letter, default ``"F"``: towards the feet;
* the third (single-slice) axis -> their cross product (for ``("L", "F")``: posterior), 1 mm.

``("L", "F")`` is what a PA chest radiograph shows (``bundle.data.dicom_writer`` writes it); pass the
source's Patient Orientation for other views. Directions are in DICOM LPS for NRRD (ITK's convention,
``space: left-posterior-superior``) and converted to RAS for the NIfTI affine (sform and qform code 1).
The origin is (0, 0, 0): projection images have no patient position. Spacing is ``(row, column)`` in mm,
the order of DICOM Pixel Spacing.

Arrays are written as the ``(H, W)`` row-major array they are, so ``nibabel.load(p).get_fdata()[..., 0].T``
and ``itk.array_from_image(itk.imread(p))[0]`` give them back. dtypes: bool -> uint8, int8 -> int16,
64-bit integers -> the smallest of uint8 / int16 / uint16 / int32 / uint32 that holds the values,
float16 -> float32; others unchanged (ITK's Python wrapping has no int8 / int64 images).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bundle._files import atomic_path

__all__ = ["write_nifti", "write_nrrd", "orientation_matrix_lps"]

_LPS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}


def orientation_matrix_lps(orientation: Sequence[str] = ("L", "F")) -> np.ndarray:
    """3x3 matrix whose columns are the LPS directions of the column index, the row index and the slice axis."""
    if len(orientation) != 2 or not all(str(o) in _LPS for o in orientation):
        raise ValueError(f"Argument orientation should be two of {sorted(_LPS)} (DICOM Patient Orientation of "
                         f"an axis-aligned image), got {tuple(orientation)!r}.")
    row_dir, col_dir = (np.asarray(_LPS[str(o)], dtype=float) for o in orientation)
    normal = np.cross(row_dir, col_dir)
    if not np.any(normal):
        raise ValueError(f"Argument orientation should name two perpendicular directions, got {tuple(orientation)!r}.")
    return np.stack([row_dir, col_dir, normal], axis=1)


def _prepare(array: object, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, float]]:
    t = array
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    arr = np.asarray(t)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"Argument array should be a non-empty (H, W) or (1, H, W) array, got shape {arr.shape}.")
    if len(spacing) != 2 or not all(np.isfinite(float(s)) and float(s) > 0 for s in spacing):
        raise ValueError(f"Argument spacing should be two positive floats (row, column) in mm, got {tuple(spacing)}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.int8:
        arr = arr.astype(np.int16)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype in (np.int64, np.uint64):
        lo, hi = int(arr.min()), int(arr.max())
        for dtype in (np.uint8, np.int16, np.uint16, np.int32, np.uint32):
            if np.iinfo(dtype).min <= lo and hi <= np.iinfo(dtype).max:
                arr = arr.astype(dtype)
                break
        else:
            raise ValueError(f"Argument array holds integers {lo}..{hi} that no 32-bit type holds.")
    elif not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"Argument array should be numeric, got dtype {arr.dtype}.")
    return np.ascontiguousarray(arr), (float(spacing[0]), float(spacing[1]))


def write_nifti(array: object, path: str | os.PathLike, spacing: Sequence[float],
                orientation: Sequence[str] = ("L", "F")) -> Path:
    """Write a 2-D array as a single-slice NIfTI-1 volume (``.nii`` or ``.nii.gz``), atomically.

    Args:
        array: ``(H, W)`` or ``(1, H, W)`` image, mask or perturbation (numpy or torch). Not modified.
        path: destination ending in ``.nii`` or ``.nii.gz``.
        spacing: ``(row, column)`` pixel spacing in mm (DICOM Pixel Spacing order).
        orientation: DICOM Patient Orientation ``(row direction, column direction)``; see the module docstring.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Stored shape ``(W, H, 1)``; voxel sizes ``(column, row, 1)`` mm.
    """
    import nibabel as nib

    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"Argument path should end in .nii or .nii.gz, got {path.name!r}.")
    arr, (row_mm, col_mm) = _prepare(array, spacing)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ orientation_matrix_lps(orientation) @ np.diag([col_mm, row_mm, 1.0])
    image = nib.Nifti1Image(arr.T[..., None], affine)
    image.header.set_xyzt_units("mm")
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    data = image.to_bytes()
    if path.name.endswith(".gz"):
        # nibabel's level 1: gzip's default 9 took 6.2 s (level 1: 0.2 s) on a chest CR's perturbation map,
        # for a file 17 % smaller
        data = gzip.compress(data, compresslevel=1, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_nrrd(array: object, path: str | os.PathLike, spacing: Sequence[float],
               orientation: Sequence[str] = ("L", "F"), *, compression: bool = True) -> Path:
    """Write a 2-D array as a single-slice 3-D NRRD volume (``.nrrd``, attached header) with ITK, atomically.

    Args:
        array: ``(H, W)`` or ``(1, H, W)`` image, mask or perturbation (numpy or torch). Not modified.
        path: destination ending in ``.nrrd`` (a detached ``.nhdr`` header cannot be written atomically).
        spacing: ``(row, column)`` pixel spacing in mm (DICOM Pixel Spacing order).
        orientation: DICOM Patient Orientation ``(row direction, column direction)``; see the module docstring.
        compression: gzip the data (lossless).

    Returns:
        ``path`` as a :class:`~pathlib.Path`. ITK reads it back with size ``(W, H, 1)``, spacing
        ``(column, row, 1)`` and direction columns = :func:`orientation_matrix_lps`.
    """
    import itk

    path = Path(path)
    if path.suffix != ".nrrd":
        raise ValueError(f"Argument path should end in .nrrd, got {path.name!r}.")
    arr, (row_mm, col_mm) = _prepare(array, spacing)
    image = itk.image_from_array(arr[None])  # ITK index order (x = column, y = row, z = slice)
    image.SetSpacing([col_mm, row_mm, 1.0])
    image.SetOrigin([0.0, 0.0, 0.0])
    image.SetDirection(itk.matrix_from_array(orientation_matrix_lps(orientation)))
    with atomic_path(path) as tmp:
        itk.imwrite(image, str(tmp), compression=compression)
    return path

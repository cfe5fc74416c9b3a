"""NIfTI / NRRD / PNG writers and the photograph pixel mappings of bundle.io."""

from __future__ import annotations

from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Resize

import bundle.io as bio
from bundle.transforms import read_label_map, read_photo

SPACING = (0.2, 0.25)  # (row, column) mm, DICOM Pixel Spacing order
H, W = 48, 64


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "mask_uint8": rng.integers(0, 6, (H, W)).astype(np.uint8),
        "labels_int64": rng.integers(0, 6, (H, W)),
        "perturbation_int16": rng.integers(-300, 300, (H, W)).astype(np.int16),
        "image_float32": rng.normal(size=(H, W)).astype(np.float32),
        "delta_float64": rng.normal(size=(H, W)),
    }


def _itk_read(path: Path) -> tuple[np.ndarray, tuple, np.ndarray]:
    image = itk.imread(str(path))
    return itk.array_from_image(image), tuple(image.GetSpacing()), itk.array_from_matrix(image.GetDirection())


@pytest.mark.parametrize("name", list(_arrays()))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_reads_back_with_the_same_values_and_spacing(tmp_path, name, suffix):
    array = _arrays()[name]
    original = array.copy()
    path = bio.write_nifti(array, tmp_path / f"{name}{suffix}", SPACING)
    np.testing.assert_array_equal(array, original)  # input untouched
    image = nib.load(path)
    assert image.shape == (W, H, 1)
    np.testing.assert_array_equal(np.asanyarray(image.dataobj)[..., 0].T, array)
    np.testing.assert_allclose(image.header.get_zooms(), (SPACING[1], SPACING[0], 1.0))
    assert nib.aff2axcodes(image.affine) == ("L", "I", "P")  # +column: patient left, +row: feet (RAS codes)
    values, spacing, direction = _itk_read(path)  # ITK sees the same geometry, in LPS
    np.testing.assert_array_equal(values[0], array)
    np.testing.assert_allclose(spacing, (SPACING[1], SPACING[0], 1.0))
    np.testing.assert_allclose(direction, bio.orientation_matrix_lps(("L", "F")), atol=1e-6)


@pytest.mark.parametrize("name", list(_arrays()))
def test_nrrd_reads_back_with_the_same_values_spacing_and_orientation(tmp_path, name):
    array = _arrays()[name]
    path = bio.write_nrrd(torch.from_numpy(array)[None], tmp_path / f"{name}.nrrd", SPACING)
    values, spacing, direction = _itk_read(path)
    np.testing.assert_array_equal(values[0], array)
    np.testing.assert_allclose(spacing, (SPACING[1], SPACING[0], 1.0))
    np.testing.assert_allclose(direction, [[1, 0, 0], [0, 0, 1], [0, -1, 0]])  # L, F (= -S), P in LPS
    assert "left-posterior-superior" in path.read_bytes()[:1000].decode("ascii", "replace")


def test_int64_labels_are_stored_in_a_small_integer_type(tmp_path):
    labels = _arrays()["labels_int64"]
    assert nib.load(bio.write_nifti(labels, tmp_path / "l.nii.gz", SPACING)).get_data_dtype() == np.uint8
    assert _itk_read(bio.write_nrrd(labels, tmp_path / "l.nrrd", SPACING))[0].dtype == np.uint8


def test_ap_orientation_flips_left_right_and_the_slice_normal():
    matrix = bio.orientation_matrix_lps(("R", "F"))  # AP view: +column is the patient's right
    np.testing.assert_array_equal(matrix[:, 0], [-1, 0, 0])
    np.testing.assert_array_equal(matrix[:, 1], [0, 0, -1])
    np.testing.assert_array_equal(matrix[:, 2], [0, -1, 0])  # anterior, right-handed
    assert np.linalg.det(matrix) == pytest.approx(1.0)


def test_volume_writers_reject_bad_arguments(tmp_path):
    array = _arrays()["mask_uint8"]
    with pytest.raises(ValueError, match=r"spacing should be two positive floats \(row, column\) in mm"):
        bio.write_nifti(array, tmp_path / "a.nii", (0.2, -1.0))
    with pytest.raises(ValueError, match=r"path should end in \.nii or \.nii\.gz"):
        bio.write_nifti(array, tmp_path / "a.nrrd", SPACING)
    with pytest.raises(ValueError, match=r"path should end in \.nrrd"):
        bio.write_nrrd(array, tmp_path / "a.nhdr", SPACING)
    with pytest.raises(ValueError, match=r"array should be a non-empty \(H, W\) or \(1, H, W\) array"):
        bio.write_nrrd(np.zeros((2, H, W)), tmp_path / "a.nrrd", SPACING)
    with pytest.raises(ValueError, match="orientation should be two of"):
        bio.write_nrrd(array, tmp_path / "a.nrrd", SPACING, orientation=("L", "X"))
    with pytest.raises(ValueError, match="orientation should name two perpendicular directions"):
        bio.write_nifti(array, tmp_path / "a.nii", SPACING, orientation=("L", "R"))
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    def broken_write_bytes(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("disk full")

    def broken_imwrite(image, filename, *args, **kwargs):
        Path(filename).write_text("NRRD0004 partial")
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken_write_bytes)
    monkeypatch.setattr(itk, "imwrite", broken_imwrite)
    array = _arrays()["mask_uint8"]
    with pytest.raises(OSError, match="disk full"):
        bio.write_nifti(array, tmp_path / "a.nii.gz", SPACING)
    with pytest.raises(OSError, match="disk full"):
        bio.write_nrrd(array, tmp_path / "a.nrrd", SPACING)
    assert list(tmp_path.iterdir()) == []


def _photo(tmp_path: Path, size=(90, 120)) -> Path:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    rgb = np.stack([100 + 60 * np.sin(yy / 7.0), 120 + 50 * np.cos(xx / 9.0), 90 + 0 * xx], -1)
    rgb = np.clip(rgb + rng.normal(0, 5, rgb.shape), 30, 220).astype(np.uint8)
    return bio.write_png(rgb, tmp_path / "photo.png")


def _photo_model(path: Path, grid=(32, 32)) -> torch.Tensor:
    rgb, _ = read_photo(path)
    return Resize(grid, mode="area")(torch.from_numpy(rgb).permute(2, 0, 1))


def test_photo_perturbation_survives_a_lossless_png(tmp_path):
    src = _photo(tmp_path)
    clean = _photo_model(src)
    adv = (clean + 0.03 * torch.sign(torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)))).clamp(0, 1)
    rgb = bio.photo_perturbation_to_uint8(src, clean, adv)
    assert rgb.shape == (90, 120, 3) and rgb.dtype == np.uint8
    back = _photo_model(bio.write_png(rgb, tmp_path / "adv.png"))
    assert float((back - clean).abs().max()) > 0.02
    assert float((back - adv).abs().max()) < 1.0 / 255
    unchanged = bio.photo_perturbation_to_uint8(src, clean, clean.clone())
    np.testing.assert_array_equal(unchanged, np.asarray(read_photo(src)[0] * 255).round().astype(np.uint8))


def test_photo_perturbation_in_a_wider_model_domain_survives_a_lossless_png(tmp_path):
    """With --intensity_bounds "[-1, 1]" a model unit is half a display unit, and the file keeps that scale."""
    src = _photo(tmp_path)
    clean = 2 * _photo_model(src) - 1
    adv = clean + 0.06 * torch.sign(torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)))
    rgb = bio.photo_perturbation_to_uint8(src, clean, adv, bounds=(-1.0, 1.0))
    back = 2 * _photo_model(bio.write_png(rgb, tmp_path / "adv.png")) - 1
    assert float((back - adv).abs().max()) < 2.0 / 255


def test_photo_to_uint8_resized_to_native_round_trips(tmp_path):
    adv = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    small = bio.photo_to_uint8(adv)
    assert small.shape == (32, 32, 3)
    np.testing.assert_array_equal(small, np.rint(adv.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    # integer factors: pixel replication (at other factors the exact inverse of a whole image of pixel
    # noise overshoots [0, 1] and is clipped; photo_perturbation_to_uint8 is the route for adversarial photos)
    native = bio.write_png(bio.photo_to_uint8(adv, (96, 64)), tmp_path / "adv.png")
    back = _photo_model(native)
    assert float((back - adv).abs().max()) < 1.0 / 255


def test_label_png_and_label_to_native(tmp_path):
    model_labels = torch.from_numpy(np.random.default_rng(2).integers(0, 3, (1, 16, 16)))
    native = bio.label_to_native(model_labels, (64, 48))
    assert native.shape == (64, 48) and native.dtype == np.uint8
    np.testing.assert_array_equal(native[::4, ::3], model_labels[0].numpy())  # each model pixel -> one block
    path = bio.write_png(native, tmp_path / "labels.png")
    np.testing.assert_array_equal(read_label_map(path, 3), native)
    with pytest.raises(ValueError, match=r"array should be \(H, W, 3\) uint8 or \(H, W\) integers"):
        bio.write_png(np.zeros((4, 4), np.float32), tmp_path / "x.png")

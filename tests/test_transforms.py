"""Reading DICOM radiographs, photographs and label maps: values, orientation and every bad-input message."""

import numpy as np
import pydicom
import pytest
from PIL import Image

from bundle.data.dicom_writer import write_dx
from bundle.transforms import LoadLabelMapd, LoadPhotod, LoadXrayDicomd, read_xray_dicom


@pytest.fixture()
def ramp() -> np.ndarray:
    """A 12-bit test pattern: horizontal ramp with a bright square."""
    pixels = np.tile(np.linspace(0, 4095, 80), (64, 1)).astype(np.uint16)
    pixels[10:20, 10:20] = 4000
    return pixels


def test_monochrome1_reads_like_monochrome2(tmp_path, ramp):
    m2 = write_dx(tmp_path / "m2.dcm", ramp, photometric="MONOCHROME2", patient_id="P1", patient_name="A^B")
    m1 = write_dx(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1", patient_id="P1", patient_name="A^B")
    assert pydicom.dcmread(m1).PhotometricInterpretation == "MONOCHROME1"
    img2, _ = read_xray_dicom(m2)
    img1, meta1 = read_xray_dicom(m1)
    assert img2.shape == (64, 80) and img2.dtype == np.float32
    np.testing.assert_allclose(img1, img2, atol=1e-6)
    assert img2[15, 15] > img2[30, 5]  # bright square stays bright
    assert meta1["photometric"] == "MONOCHROME1" and tuple(meta1["spatial_shape"]) == (64, 80)


def test_rescale_and_window_are_applied(tmp_path, ramp):
    path = write_dx(tmp_path / "a.dcm", ramp, patient_id="P1", patient_name="A^B")
    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.WindowCenter, ds.WindowWidth = 2000, 1001
    ds.save_as(tmp_path / "b.dcm")
    img, _ = read_xray_dicom(tmp_path / "b.dcm")
    values = ramp.astype(float) * 2 - 100
    expected = np.clip((values - (2000 - 0.5 - 500)) / 1000, 0, 1)
    np.testing.assert_allclose(img, expected, atol=1e-5)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.dcm does not exist"):
        LoadXrayDicomd("image")({"image": str(tmp_path / "nope.dcm")})


def test_truncated_dicom_is_named(tmp_path, ramp):
    path = write_dx(tmp_path / "a.dcm", ramp, patient_id="P1", patient_name="A^B")
    data = path.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.dcm is not a readable DICOM image.*truncated or corrupt"):
        read_xray_dicom(tmp_path / "cut.dcm")


def test_unsupported_photometric_is_named(tmp_path, ramp):
    path = write_dx(tmp_path / "a.dcm", ramp, patient_id="P1", patient_name="A^B")
    ds = pydicom.dcmread(path)
    rgb = np.zeros((*ramp.shape, 3), np.uint8)
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    ds.save_as(tmp_path / "rgb.dcm")
    with pytest.raises(ValueError, match=r"rgb.dcm has PhotometricInterpretation 'RGB'.*MONOCHROME1 or MONOCHROME2"):
        read_xray_dicom(tmp_path / "rgb.dcm")


def test_label_size_mismatch_names_both_files(tmp_path):
    Image.fromarray(np.zeros((70, 80, 3), np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(np.zeros((70, 90), np.uint8)).save(tmp_path / "lab.png")
    data = LoadPhotod("image")({"image": str(tmp_path / "img.png"), "label": str(tmp_path / "lab.png")})
    with pytest.raises(ValueError, match=r"lab.png is 90x70 \(WxH\) but its image .*img.png is 80x70"):
        LoadLabelMapd("label", num_classes=3)(data)


def test_label_values_out_of_range(tmp_path):
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "lab.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "img.png")
    data = LoadPhotod("image")({"image": str(tmp_path / "img.png"), "label": str(tmp_path / "lab.png")})
    with pytest.raises(ValueError, match=r"lab.png contains label values \[255\] outside 0..1"):
        LoadLabelMapd("label", num_classes=2)(data)


def test_corrupt_photo_is_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="bad.jpg is not a readable image"):
        LoadPhotod("image")({"image": str(tmp_path / "bad.jpg")})


def test_photo_is_rgb_channel_first(tmp_path):
    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "red.png")
    out = LoadPhotod("image")({"image": str(tmp_path / "red.png")})["image"]
    assert tuple(out.shape) == (3, 64, 80)
    assert float(out[0].min()) == 1.0 and float(out[1:].max()) == 0.0

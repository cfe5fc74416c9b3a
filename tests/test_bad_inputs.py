"""Bad inputs get one clear message naming the file and the fix, and are never modified (issue 20).

Every case builds its input in ``tmp_path`` (a copy of one of pydicom's test files, or a small synthetic file),
asserts the message with ``pytest.raises(match=...)`` and that the input folder holds the same bytes afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from bundle import _files
from bundle.data.datalist import read_datalist
from bundle.data.dicom_writer import write_dx
from bundle.data.isic import convert_isic
from bundle.io import perturbation_to_stored, write_secondary_capture, write_seg
from bundle.transforms import LoadXrayDicomd, read_photo, read_xray_dicom

ROWS, COLS = 96, 80
CHEST = "the cxr model is for chest radiographs"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def refused(folder: Path, match: str, error: type[Exception] = ValueError):
    """Expect ``error`` matching ``match``; the folder's files must be byte-identical afterwards, none added."""
    before = snapshot(folder)
    with pytest.raises(error, match=match):
        yield
    assert snapshot(folder) == before


def chest(path: Path, rows: int = ROWS, cols: int = COLS, **attributes) -> Path:
    """A 12-bit DX chest radiograph (Modality DX, Body Part CHEST) with ``attributes`` set (``None`` deletes)."""
    pixels = np.tile(np.linspace(0, 4095, cols), (rows, 1)).astype(np.uint16)
    write_dx(path, pixels, patient_id="P1", patient_name="Doe^John")
    if attributes:
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lower-case code strings are not valid CS: some cases want that
            for keyword, value in attributes.items():
                if value is None:
                    delattr(ds, keyword)
                else:
                    setattr(ds, keyword, value)
            ds.save_as(path)
    return path


def pydicom_copy(name: str, folder: Path) -> Path:
    return Path(shutil.copyfile(get_testdata_file(name), folder / name))


# ---------------------------------------------------------------------------------------------- DICOM radiographs

@pytest.mark.parametrize("name, modality", [
    ("CT_small.dcm", "CT"), ("MR_small.dcm", "MR"), ("JPEG2000.dcm", "NM"), ("image_dfl.dcm", "OT"),
    ("examples_rgb_color.dcm", "US"), ("rtdose.dcm", "RTDOSE"), ("liver_1frame.dcm", "SEG"),
    ("MR_small_RLE.dcm", "MR")])
def test_pydicom_files_of_other_modalities_are_refused(tmp_path, name, modality):
    path = pydicom_copy(name, tmp_path)
    with refused(tmp_path, rf"{name} has Modality {modality}\b.*{CHEST}.*Give it a chest radiograph"):
        read_xray_dicom(path)


@pytest.mark.parametrize("modality", ["MG", "XA", "PX", "PT", "ct"])
def test_a_radiograph_header_of_another_modality_is_refused(tmp_path, modality):
    path = chest(tmp_path / "x.dcm", Modality=modality)
    with refused(tmp_path, rf"x.dcm has Modality {modality.upper()}.*{CHEST} \(Modality CR, DX, RG\)"):
        LoadXrayDicomd("image", force=True)({"image": str(path)})  # force is about the body part only


@pytest.mark.parametrize("body_part", ["HAND", "LEG", "SKULL", "KNEE", "ABDOMEN", "PELVIS", "foot"])
def test_a_radiograph_of_another_body_part_is_refused_unless_forced(tmp_path, body_part):
    path = chest(tmp_path / "x.dcm", BodyPartExamined=body_part)
    with refused(tmp_path, rf"x.dcm has BodyPartExamined '{body_part.upper()}'; {CHEST}.*pass force=True"):
        LoadXrayDicomd("image")({"image": str(path)})
    before = path.read_bytes()
    image = LoadXrayDicomd("image", force=True)({"image": str(path)})["image"]
    assert tuple(image.shape) == (1, ROWS, COLS) and path.read_bytes() == before


@pytest.mark.parametrize("keyword, dtype", [("FloatPixelData", np.float32), ("DoubleFloatPixelData", np.float64)])
def test_float_pixel_data_is_refused(tmp_path, keyword, dtype):
    path = chest(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    setattr(ds, keyword, np.zeros((ROWS, COLS), dtype).tobytes())
    ds.save_as(path)
    with refused(tmp_path, rf"x.dcm stores its pixels as {keyword} \(floating point.*integer Pixel Data"):
        read_xray_dicom(path)


@pytest.mark.parametrize("keyword, value, match", [
    ("RescaleSlope", "0", "RescaleSlope 0, which maps every pixel to one value; fix the header"),
    ("RescaleSlope", "NaN", "RescaleSlope 'NaN', not a finite number; fix the header"),
    ("RescaleSlope", "inf", "RescaleSlope 'inf', not a finite number"),
    ("RescaleIntercept", "-inf", "RescaleIntercept '-inf', not a finite number"),
    ("WindowCenter", "NaN", "WindowCenter 'NaN', not a finite number"),
    ("RescaleSlope", "1e308", r"gives \d+ NaN or infinite pixel values \(RescaleSlope 1e\+308"),
])
def test_rescale_and_window_values_that_break_the_image_are_refused(tmp_path, keyword, value, match):
    path = chest(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that NaN and inf are no valid DS: that is the point
        setattr(ds, keyword, value)
        ds.save_as(path)
    with refused(tmp_path, rf"x.dcm {match}" if match.startswith("gives") else rf"x.dcm has {match}"):
        read_xray_dicom(path)


@pytest.mark.parametrize("rows, cols", [(1, 1), (63, 200), (200, 32)])
def test_tiny_radiographs_are_refused(tmp_path, rows, cols):
    path = chest(tmp_path / "x.dcm", rows=rows, cols=cols)
    with refused(tmp_path, rf"x.dcm is {cols}x{rows} pixels \(WxH\); images smaller than 64 pixels on a side"):
        read_xray_dicom(path)


def test_multi_frame_radiograph_is_refused(tmp_path):
    path = chest(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(path)
    with refused(tmp_path, "x.dcm holds 2 frames; a single-frame 2-D radiograph is expected. Export one frame"):
        read_xray_dicom(path)


def test_colour_radiograph_is_refused(tmp_path):
    path = chest(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.zeros((ROWS, COLS, 3), np.uint8).tobytes()
    ds.save_as(path)
    with refused(tmp_path, "x.dcm has PhotometricInterpretation 'RGB'; only grayscale MONOCHROME1 or MONOCHROME2"):
        read_xray_dicom(path)


def test_missing_bits_stored_is_named(tmp_path):
    path = chest(tmp_path / "x.dcm", BitsStored=None)
    with refused(tmp_path, "x.dcm has no BitsStored; the header of an image needs it. Re-export"):
        read_xray_dicom(path)


@pytest.mark.parametrize("content", [b"just text, not DICOM\n", b"DICM" * 3])
def test_files_that_are_not_dicom_are_named(tmp_path, content):
    path = tmp_path / "x.dcm"
    path.write_bytes(content)
    with refused(tmp_path, "x.dcm is not a readable DICOM image.*truncated or corrupt"):
        read_xray_dicom(path)


@pytest.mark.parametrize("name, kind", [("chest.png", "PNG"), ("chest.jpg", "JPEG")])
def test_a_photograph_format_given_to_the_cxr_task_is_named(tmp_path, name, kind):
    """A chest X-ray saved as PNG or JPEG is not called corrupt: the message says what it is and what cxr reads."""
    path = tmp_path / name
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(path)
    with refused(tmp_path, f"{name} is a {kind} image, not DICOM: the cxr task reads chest radiographs as DICOM"):
        read_xray_dicom(path)


def test_a_dicom_file_given_to_a_photograph_task_is_named(tmp_path):
    """pydicom-data's colour Secondary Capture as a fundus or dermoscopy input: named as DICOM, not as corrupt."""
    path = tmp_path / "photo.dcm"
    shutil.copy(get_testdata_file("SC_rgb.dcm"), path)
    with refused(tmp_path, "photo.dcm is a DICOM file: the photograph tasks .* read PNG, JPEG or TIFF"):
        read_photo(path)


def test_rescale_slope_zero_is_refused_before_export(tmp_path):
    """The export divided by the slope (ZeroDivisionError); the reader refuses the file first."""
    path = chest(tmp_path / "x.dcm", RescaleSlope="0")
    image = np.zeros((1, 8, 8), np.float32)
    with refused(tmp_path, "x.dcm has RescaleSlope 0"):
        perturbation_to_stored(path, image, image, bounds=(-1.0, 1.0))


@pytest.mark.parametrize("modality, body_part", [("CR", "CHEST"), ("RG", "THORAX"), (None, ""), ("DX", None),
                                                 ("DX", "chest pa")])
def test_chest_radiographs_of_every_accepted_header_are_read(tmp_path, modality, body_part):
    path = chest(tmp_path / "x.dcm", Modality=modality, BodyPartExamined=body_part)
    before = path.read_bytes()
    image, meta = read_xray_dicom(path)
    assert image.shape == (ROWS, COLS) and 0 <= image.min() < image.max() <= 1 and path.read_bytes() == before


def test_force_must_be_a_bool():
    with pytest.raises(TypeError, match="Option force should be True or False, got 'yes'"):
        LoadXrayDicomd("image", force="yes")


# ---------------------------------------------------------------------------------------------- photographs

def png16(path: Path, samples: np.ndarray, color_type: int) -> Path:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour): gray (0), RGB (2), gray+alpha (4)."""
    rows, cols = samples.shape[:2]
    raw = b"".join(b"\x00" + samples[r].astype(">u2").tobytes() for r in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", cols, rows, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


RAMP16 = (np.arange(ROWS * COLS).reshape(ROWS, COLS) * 8 % 65536).astype(np.uint16)


@pytest.mark.parametrize("writer", ["pillow", "by hand"])
def test_16_bit_gray_png_is_scaled_by_its_bit_range(tmp_path, writer):
    """It was clipped at 255: 99 % of this ramp read as white."""
    path = tmp_path / "x.png"
    if writer == "pillow":
        Image.fromarray(RAMP16).save(path)
    else:
        png16(path, RAMP16, 0)
    rgb, _ = read_photo(path)
    np.testing.assert_allclose(rgb, np.repeat(RAMP16[..., None] / 65535, 3, 2), atol=1e-6)
    assert (rgb == 1).mean() == 0


def test_16_bit_rgb_png_keeps_its_range(tmp_path):
    """Pillow reads 16-bit colour with the high byte of each sample: within 1/255 of value / 65535, not clipped."""
    samples = np.stack([RAMP16, 65535 - RAMP16, np.full_like(RAMP16, 40000)], axis=-1)
    rgb, _ = read_photo(png16(tmp_path / "x.png", samples, 2))
    assert np.abs(rgb - samples / 65535).max() <= 1 / 255


def test_float_tiff_in_unit_range_is_read_as_it_is(tmp_path):
    values = np.random.default_rng(0).random((ROWS, COLS)).astype(np.float32)
    Image.fromarray(values).save(tmp_path / "x.tif")
    rgb, _ = read_photo(tmp_path / "x.tif")
    np.testing.assert_array_equal(rgb[..., 1], values)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float_tiff_with_non_finite_values_is_refused(tmp_path, value):
    values = np.random.default_rng(0).random((ROWS, COLS)).astype(np.float32)
    values[5:9, 5:9] = value
    Image.fromarray(values).save(tmp_path / "x.tif")
    with refused(tmp_path, r"x.tif gives 16 NaN or infinite pixel values \(a float image\); fix or re-export"):
        read_photo(tmp_path / "x.tif")


@pytest.mark.parametrize("scale, offset", [(255.0, 0.0), (1.0, -0.5), (4095.0, 0.0)])
def test_float_tiff_outside_the_unit_range_is_refused(tmp_path, scale, offset):
    values = (np.random.default_rng(0).random((ROWS, COLS)) * scale + offset).astype(np.float32)
    Image.fromarray(values).save(tmp_path / "x.tif")
    with refused(tmp_path, r"x.tif is a float image with values .*must already lie in \[0, 1\]. Scale it"):
        read_photo(tmp_path / "x.tif")


def test_32_bit_integer_tiff_is_refused(tmp_path):
    Image.fromarray(RAMP16.astype(np.int32) * 1000).save(tmp_path / "x.tif")
    with refused(tmp_path, "x.tif is a 32-bit integer image; 8- and 16-bit photographs are supported. Convert"):
        read_photo(tmp_path / "x.tif")


@pytest.mark.parametrize("name, shape", [("a.png", (1, 1, 3)), ("b.png", (63, 100, 3)), ("c.jpg", (100, 10, 3)),
                                         ("d.png", (40, 40))])
def test_tiny_photographs_are_refused(tmp_path, name, shape):
    Image.fromarray(np.full(shape, 128, np.uint8)).save(tmp_path / name)
    with refused(tmp_path, rf"{name} is {shape[1]}x{shape[0]} pixels \(WxH\); images smaller than 64 pixels"):
        read_photo(tmp_path / name)


@pytest.mark.parametrize("name", ["x.tif", "x.gif"])
def test_photographs_with_several_frames_are_refused(tmp_path, name):
    frames = [Image.fromarray(np.full((ROWS, COLS), v, np.uint8)) for v in (0, 200)]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
    with refused(tmp_path, rf"{name} holds 2 frames \(pages\); a single photograph is expected"):
        read_photo(tmp_path / name)


@pytest.mark.parametrize("name", ["x.png", "x.jpg"])
def test_truncated_photographs_are_named(tmp_path, name):
    noise = np.random.default_rng(0).integers(0, 256, (ROWS, COLS, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / name)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with refused(tmp_path, rf"{name} is not a readable image .*truncated or corrupt"):
        read_photo(tmp_path / name)


def test_an_unsupported_photograph_mode_is_named(tmp_path):
    Image.fromarray(np.zeros((ROWS, COLS, 3), np.uint8)).convert("LAB").save(tmp_path / "x.tif")
    with refused(tmp_path, "x.tif is a LAB image; supported are 8-bit gray, palette and colour.*Convert it"):
        read_photo(tmp_path / "x.tif")


# ---------------------------------------------------------------------------------------------- datalists

FORMAT = r"a datalist is a JSON object \{\"training\": \[...\].*fix the file or convert the dataset again"


@pytest.mark.parametrize("content, match", [
    (b'{"test": [{"image": "a.dcm"},]', r"is not valid JSON \(Expecting"),
    (b"", r"is not valid JSON \(Expecting value: line 1 column 1"),
    (b"\xff\xfe\x00garbage", r"is not valid JSON \("),
    (b"training: []\n", r"is not valid JSON"),
    (b'[{"image": "a.dcm"}]', r"holds a JSON list, not an object of splits"),
    (b'"test"', r"holds a JSON str, not an object of splits"),
    (b"3", r"holds a JSON int, not an object of splits"),
    (b'{"test": {"image": "a.dcm"}}', r": split 'test' is a JSON dict, not a list of items"),
    (b'{"test": [{"label": "a.png"}]}', r": item 0 of split 'test' has no \"image\" path \(\{\"label\": \"a.png\"\}\)"),
    (b'{"test": [{"image": "a.dcm"}, {"image": 7}]}', r": item 1 of split 'test' has no \"image\" path"),
    (b'{"test": ["a.dcm"]}', r": item 0 of split 'test' has no \"image\" path \(\"a.dcm\"\)"),
    (b'{"test": [{"image": ""}]}', r": item 0 of split 'test' has no \"image\" path"),
    (b'{"test": [{"image": "a.dcm", "label": 3}]}', r": item 0 of split 'test' has a \"label\" that is not a path"),
])
def test_broken_datalists_give_one_message_with_the_format(tmp_path, content, match):
    (tmp_path / "datalist.json").write_bytes(content)
    with refused(tmp_path, "datalist.json" + ("" if match.startswith(":") else " ") + match + ".*" + FORMAT):
        read_datalist(tmp_path, "test")


def test_a_missing_split_is_named(tmp_path):
    (tmp_path / "datalist.json").write_text('{"training": []}')
    with refused(tmp_path, r"Split 'test' not in .*datalist.json; it has \['training'\]", KeyError):
        read_datalist(tmp_path, "test")


# ---------------------------------------------------------------------------------------------- converters

def isic_folders(root: Path, suffix: str, cases: int) -> tuple[Path, Path, Path]:
    """ISIC images and masks of ``cases`` cases under ``root``, the last image truncated; returns it and the folders."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 256, (ROWS, COLS, 3), dtype=np.uint8)
    for i in range(cases):
        Image.fromarray(noise).save(images / f"ISIC_{i:07d}.{suffix}")
        Image.fromarray(np.zeros((ROWS, COLS), np.uint8)).save(masks / f"ISIC_{i:07d}_segmentation.png")
    cut = images / f"ISIC_{cases - 1:07d}.{suffix}"
    cut.write_bytes(cut.read_bytes()[:-400])
    return cut, images, masks


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_isic_conversion_refuses_a_truncated_image_and_writes_nothing(tmp_path, suffix):
    """The header of a truncated file is intact: the converter used to copy it into the dataset."""
    cut, images, masks = isic_folders(tmp_path / "in", suffix, cases=3)
    with refused(tmp_path / "in", rf"Cannot read image .*{cut.name}: .*truncated or corrupt: download it again"):
        convert_isic(images, masks, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_convert_isic_script_reports_the_truncated_file(tmp_path):
    cut, images, masks = isic_folders(tmp_path / "in", "jpg", cases=1)
    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_isic.py"
    before = snapshot(tmp_path / "in")
    result = subprocess.run([sys.executable, str(script), "--images", str(images), "--masks", str(masks),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 1 and f"convert_isic: error: Cannot read image {cut}" in result.stderr
    assert "truncated" in result.stderr and not (tmp_path / "out").exists()
    assert snapshot(tmp_path / "in") == before


# ---------------------------------------------------------------------------------------------- DICOM export

@pytest.mark.parametrize("writer", ["seg", "secondary capture"])
def test_a_multi_valued_patient_name_is_copied_as_it_is(tmp_path, writer):
    """highdicom refused a Patient Name with a backslash (TypeError: Invalid type for a person name)."""
    source = chest(tmp_path / "in" / "x.dcm", PatientName="Doe^John\\Roe^Jane", ReferringPhysicianName="A^B\\C^D")
    before = snapshot(tmp_path / "in")
    out = tmp_path / "out" / "o.dcm"
    if writer == "seg":
        write_seg(source, np.zeros((ROWS, COLS), np.uint8), out, class_names=["background", "heart"],
                  algorithm_name="test", algorithm_version="1", series_description="test")
    else:
        write_secondary_capture(source, np.zeros((ROWS, COLS, 3), np.uint8), out,
                                series_instance_uid=generate_uid(), series_description="test")
    written = pydicom.dcmread(out)
    assert list(written.PatientName) == ["Doe^John", "Roe^Jane"]
    assert list(written.ReferringPhysicianName) == ["A^B", "C^D"]
    assert snapshot(tmp_path / "in") == before


def test_a_multi_valued_patient_name_is_replaced_when_de_identifying(tmp_path):
    source = chest(tmp_path / "x.dcm", PatientName="Doe^John\\Roe^Jane")
    out = write_seg(source, np.zeros((ROWS, COLS), np.uint8), tmp_path / "o.dcm", class_names=["bg", "heart"],
                    algorithm_name="test", algorithm_version="1", series_description="test", deidentify=True)
    assert str(pydicom.dcmread(out).PatientName).startswith("ANON^")


# ---------------------------------------------------------------------------------------------- output files

@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        with _files.atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_remove_orphans_deletes_what_dead_writers_left_and_keeps_the_rest(tmp_path):
    host = _files._HOST
    dead = tmp_path / f".seg.{host}-{_dead_pid()}-0123abcd.part.dcm"
    old_style = tmp_path / ".seg.k2j_9xq1.part.dcm"  # tempfile.mkstemp's names, from older versions
    live = tmp_path / f".seg.{host}-{os.getppid()}-0123abcd.part.dcm"
    other_host = tmp_path / f".seg.{'0000' if host != '0000' else '1111'}-1-0123abcd.part.dcm"
    kept = [live, other_host, tmp_path / "seg.dcm", tmp_path / ".hidden.part"]
    for path in [dead, old_style, *kept]:
        path.write_bytes(b"")
    assert sorted(_files.remove_orphans(tmp_path)) == sorted([dead, old_style])
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    old = os.stat(other_host).st_mtime - _files.OTHER_HOST_AGE - 60
    os.utime(other_host, (old, old))
    assert _files.remove_orphans(tmp_path) == [other_host]


def test_a_rerun_after_a_killed_writer_leaves_no_partial_file(tmp_path):
    """A writer killed inside atomic_path leaves its temporary file; the next write into the folder removes it."""
    folder = tmp_path / "case"
    code = ("import importlib.util, sys, time\n"
            f"spec = importlib.util.spec_from_file_location('files', {str(Path(_files.__file__))!r})\n"
            "files = importlib.util.module_from_spec(spec); spec.loader.exec_module(files)\n"
            f"with files.atomic_path({str(folder / 'seg.dcm')!r}) as tmp:\n"
            "    tmp.write_bytes(b'half'); print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert len(list(folder.glob(".seg.*.part.dcm"))) == 1
    with _files.atomic_path(folder / "seg.dcm") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in folder.iterdir()) == ["seg.dcm"] and (folder / "seg.dcm").read_bytes() == b"whole"

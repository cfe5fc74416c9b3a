"""scripts/xray_contrast.py: the heart - lung step of an unlabelled radiograph, measured from boxes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bundle.config import BUNDLE_ROOT
from bundle.data.dicom_writer import write_dx

sys.path.insert(0, str(BUNDLE_ROOT / "scripts"))
import xray_contrast  # noqa: E402

LUNG_VALUE, HEART_VALUE = 1000, 3000  # stored MONOCHROME2 values of the synthetic radiograph
BOXES = ["--lung", "0.1", "0.2", "0.4", "0.6", "--lung", "0.6", "0.2", "0.9", "0.6", "--heart", "0.45", "0.7", "0.7", "0.9"]


@pytest.fixture(params=["MONOCHROME1", "MONOCHROME2"])
def radiograph(tmp_path, request):
    """A 128x128 DX: lung fields 1000 and a heart 3000 where BOXES put them, black air, a white bone strip."""
    pixels = np.full((128, 128), 2000, dtype=np.uint16)
    pixels[16:88, 8:56] = pixels[16:88, 72:120] = LUNG_VALUE
    pixels[80:120, 52:96] = HEART_VALUE
    pixels[:, :4], pixels[:, -4:] = 0, 4095
    return write_dx(tmp_path / "chest.dcm", pixels, photometric=request.param, window=(2047.5, 4096),
                    patient_id="P1", patient_name="Test^Chest")


def test_contrast_of_a_known_radiograph_in_model_units(radiograph, capsys, tmp_path):
    figure = tmp_path / "boxes.png"
    assert xray_contrast.main([str(radiograph), *BOXES, "--figure", str(figure)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the window spans 0..4095, so the step of 2000 stored units is 2 * 2000 / 4096 model units either way
    # (the image also reaches 0 and 4095, so its own min / max rescaling is the same map)
    assert "contrast 0.977 model units" in lines[0] and "contrast 0.977 model units" in lines[1]
    assert figure.is_file()


@pytest.mark.parametrize("box, message", [
    (["0.7", "0.7", "0.45", "0.9"], "Option --heart 0.7 0.7 0.45 0.9 is not a box"),
    (["0.45", "0.7", "0.7", "1.5"], "Option --heart 0.45 0.7 0.7 1.5 is not a box"),
])
def test_a_bad_box_is_named_and_nothing_written(radiograph, capsys, tmp_path, box, message):
    figure = tmp_path / "boxes.png"
    with pytest.raises(SystemExit) as info:
        xray_contrast.main([str(radiograph), *BOXES[:10], "--heart", *box, "--figure", str(figure)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not figure.exists()


def test_a_file_that_is_not_dicom_is_named(tmp_path, capsys):
    bad = tmp_path / "chest.dcm"
    bad.write_text("not a radiograph")
    with pytest.raises(SystemExit):
        xray_contrast.main([str(bad), *BOXES])
    assert f"{bad} is not a readable DICOM image" in capsys.readouterr().err
    assert bad.read_text() == "not a radiograph"


@pytest.mark.parametrize("option, message", [
    (["--model_grid", "500", "500"], "Option model_grid should be [H, W], two positive multiples of 16"),
    (["--figure", "missing/boxes.png"], "does not exist; create it or pick another path"),
])
def test_a_bad_grid_or_figure_folder_is_named_before_anything_is_read(radiograph, capsys, option, message):
    with pytest.raises(SystemExit) as info:
        xray_contrast.main([str(radiograph), *BOXES, *option])
    assert info.value.code == 2
    assert message in capsys.readouterr().err

"""The MONAI Label app (apps/monailabel/) under a real ``monailabel start_server`` on loopback, in the venv of
scripts/setup_monailabel.sh, with a datastore of phantom DICOMs and photos: ``/info/`` lists the tasks, ``/infer/``
returns the label maps the bundle's own runs write (``advseg segment``, ``advseg attack pgd_heart``, run in that venv:
same torch) pixel for pixel, and the attack's adversarial image lands in the datastore equal to the bundle's export."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from io import BytesIO
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from skimage import data

from _util import checkout_mismatch

VENV = Path(os.environ.get("ADVSEG_MONAILABEL", Path.home() / ".cache" / "advseg-monailabel"))
APP = Path(__file__).resolve().parents[1] / "apps" / "monailabel"
STEPS = 10  # of the attack (the recipe's 100 take minutes on a loaded 2-core machine)
FILES = {"cxr": "images/*.dcm", "fundus": "images/*.jpg", "dermoscopy": "images/*.jpg"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@pytest.fixture(scope="module")
def studies(tiny_datasets, tmp_path_factory):
    """One test image of each task, named by its task."""
    root = tmp_path_factory.mktemp("studies")
    for task, pattern in FILES.items():
        source = sorted(tiny_datasets[task].glob(pattern))[0]
        shutil.copy(source, root / f"{task}_case{source.suffix}")
    Image.fromarray(data.astronaut()).save(root / "astronaut.png")  # a photograph that is no fundus
    return root


@pytest.fixture(scope="module")
def server(studies, tmp_path_factory):
    if not (VENV / "bin" / "monailabel").is_file():
        pytest.skip(f"MONAI Label is not set up in {VENV}: run `bash scripts/setup_monailabel.sh` (or set "
                    f"ADVSEG_MONAILABEL to its venv)")
    mismatch = checkout_mismatch(VENV / "bin" / "python", APP.parents[1])
    if mismatch:  # the venv is shared by clones: the last one to run the set-up is the one it serves
        pytest.fail(f"{mismatch}: run `bash scripts/setup_monailabel.sh` in this checkout")
    app = tmp_path_factory.mktemp("app") / "monailabel"  # the server makes model/, logs/, bin/ in the app folder
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "model", "logs", "bin"))
    url = f"http://127.0.0.1:{_free_port()}"
    log = open(app.parent / "server.log", "w")
    proc = subprocess.Popen([VENV / "bin" / "monailabel", "start_server", "--app", app, "--studies", studies,
                             "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]],
                            stdout=log, stderr=subprocess.STDOUT,  # its script runs the `python` on PATH
                            env={**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _get(f"{url}/info/")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"monailabel start_server did not answer: {(app.parent / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _advseg(*args) -> None:
    """The bundle's own run, in the server's venv."""
    result = subprocess.run([VENV / "bin" / "advseg", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _post_infer(url: str, model: str, image: str, output: str, **params) -> bytes:
    form = urllib.parse.urlencode({"params": json.dumps(params)}).encode()
    request = urllib.request.Request(f"{url}/infer/{model}?image={image}&output={output}", data=form, method="POST")
    with urllib.request.urlopen(request, timeout=300) as response:
        return response.read()


def _infer(url: str, model: str, image: str, **params) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(_post_infer(url, model, image, "image", **params))))


def _infer_params(url: str, model: str, image: str) -> dict:
    return json.loads(_post_infer(url, model, image, "json"))


def test_infer_names_an_image_unlike_the_tasks_images(server):
    """As ``advseg segment`` does: the result names the structures of a photograph that is no fundus; a phantom's
    result has no warning."""
    assert "disc_rim in" in _infer_params(server, "segment_fundus", "astronaut")["warning"]
    assert "warning" not in _infer_params(server, "segment_fundus", "fundus_case")


def test_info_lists_a_task_per_model_and_the_attack(server, bundle_root):
    models = json.loads(_get(f"{server}/info/"))["models"]
    assert sorted(models) == ["attack_cxr_pgd_heart", "segment_cxr", "segment_dermoscopy", "segment_fundus"]
    for task in FILES:
        meta = bundle_root / "configs" / ("metadata.json" if task == "cxr" else f"metadata_{task}.json")
        channels = json.loads(meta.read_text())["network_data_format"]["outputs"]["pred"]["channel_def"]
        assert models[f"segment_{task}"]["labels"] == {v.lower(): int(k) for k, v in channels.items() if int(k)}
    assert models["attack_cxr_pgd_heart"]["labels"] == models["segment_cxr"]["labels"]


@pytest.mark.parametrize("task", list(FILES))
def test_clean_infer_equals_advseg_segment(server, studies, task, tmp_path):
    source = next(studies.glob(f"{task}_case.*"))
    _advseg("segment", "--task", task, "--input", source, "--output", tmp_path)
    (saved,) = tmp_path.glob("*/label.png")
    label = _infer(server, f"segment_{task}", source.stem)
    np.testing.assert_array_equal(label, np.asarray(Image.open(saved)))
    assert len(np.unique(label)) > 1


def test_attack_infer_equals_advseg_attack_and_stores_the_adversarial_image(server, studies, tmp_path):
    source = studies / "cxr_case.dcm"
    _advseg("attack", "pgd_heart", "--input", source, "--output", tmp_path, "--export_nifti", "true",
            "--attack::steps", STEPS)
    (export,) = (tmp_path / "export").iterdir()
    expected = nib.load(export / "adv_pred.nii.gz").get_fdata()[..., 0].T
    label = _infer(server, "attack_cxr_pgd_heart", source.stem, steps=STEPS)
    np.testing.assert_array_equal(label, expected)
    clean = _infer(server, "segment_cxr", source.stem)
    assert (label == 3).sum() != (clean == 3).sum()  # the heart changed shape
    stored = studies / "cxr_case_pgd_heart_small.dcm"
    np.testing.assert_array_equal(pydicom.dcmread(stored).pixel_array,
                                  pydicom.dcmread(export / "adversarial.dcm").pixel_array)

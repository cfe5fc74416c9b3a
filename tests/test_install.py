"""`pip install .` outside a checkout: the wheel carries configs and weights, and its `advseg` works from any folder."""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from bundle.config import BUNDLE_ROOT

SOURCES = ("bundle", "configs", "models", "scripts", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment (seeing this machine's packages for the dependencies) with only the built wheel
    of this project installed into it."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (BUNDLE_ROOT / name).is_dir() else shutil.copy
        copy(BUNDLE_ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                  if (BUNDLE_ROOT / name).is_dir() else {}))
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(source)], check=True, capture_output=True)
    env = root / "venv"
    venv.create(env, system_site_packages=True, with_pip=False)
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    work = root / "empty"
    work.mkdir()
    return env / "bin", work


def run(command, cwd):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd)


def test_the_wheel_runs_segment_and_an_attack_from_an_empty_folder(installed, tiny_datasets):
    bin_dir, work = installed
    scan = sorted((tiny_datasets["cxr"] / "images").glob("*.dcm"))[0]
    where = run([bin_dir / "python", "-c", "import bundle; print(bundle.__file__)"], work)
    assert str(bin_dir.parent) in where.stdout, where  # the wheel's copy, not this checkout
    root = run([bin_dir / "advseg", "where"], work).stdout.strip()
    assert root.startswith(str(bin_dir.parent)) and root.endswith("bundle_root")
    result = run([bin_dir / "advseg", "segment", "--input", scan, "--output", "seg"], work)
    assert result.returncode == 0, result.stderr
    assert (work / "seg" / scan.stem / "seg.dcm").is_file()
    result = run([bin_dir / "advseg", "attack", "pgd_heart", "--input", scan, "--output", "out", "--attack::steps", "2"],
                 work)
    assert result.returncode == 0, result.stderr
    assert (work / "out" / "export" / scan.stem / "adversarial.dcm").is_file() and "target IoU" in result.stdout
    # the documented way without the command: monai.bundle on the installed inference.yaml, with --bundle_root
    result = run([bin_dir / "python", "-m", "monai.bundle", "run", "--config_file", f"{root}/configs/inference.yaml",
                  "--bundle_root", root, "--input_files", str(scan), "--output_dir", "bundle_seg"], work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (work / "bundle_seg" / scan.stem / "label.png").is_file()
    assert not (Path(root) / "outputs").exists() and not (Path(root) / "data").exists()  # site-packages stays clean

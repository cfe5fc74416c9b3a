"""scripts/bench_advlib.py without adv-lib: a user's mistake exits 2 with one line that names the fix."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_advlib.py"


@pytest.mark.skipif(importlib.util.find_spec("adv_lib") is not None, reason="adv-lib is installed here")
def test_missing_advlib_names_the_install_command(tmp_path):
    env = tmp_path / "no-env"  # no environment there, so the script cannot re-run itself inside one
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--task", "cxr", "--advlib_env", str(env), "--csv", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "adv-lib is not installed" in lines[0]
    assert "python scripts/bench_advlib.py --install" in lines[0] and str(env) in lines[0]
    assert "--skip_advlib" in lines[0]
    assert proc.stdout == "" and not out.exists()


def test_bad_budget_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--budget", "0", "--advlib_env", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "bench_advlib: --budget and --n should be positive and --eps non-negative."


def test_install_commands_never_touch_torch(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_advlib
    finally:
        sys.path.remove(str(SCRIPT.parent))
    commands = bench_advlib.install_commands(tmp_path / "env")
    assert commands[0][-2:] == ["--system-site-packages", str(tmp_path / "env")]
    for cmd in commands[1:]:
        assert "--no-deps" in cmd
        assert not any(arg.split("=")[0] in ("torch", "torchvision") for arg in cmd)
    assert "adv-lib==0.2.8" in commands[-1]

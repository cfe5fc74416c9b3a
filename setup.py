"""Build hook: a wheel carries the bundle root (configs/, models/, scripts/) as package data in ``bundle/bundle_root/``,
so that ``pip install .`` outside a checkout gives a working ``advseg`` and ``python -m monai.bundle run
--bundle_root "$(advseg where)"``. An editable install reads them from the checkout instead. The rest of the
project's metadata is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLE_FOLDERS = ("configs", "models", "scripts")


class BuildWithBundleRoot(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "bundle" / "bundle_root"
        for folder in BUNDLE_FOLDERS:
            shutil.rmtree(target / folder, ignore_errors=True)
            shutil.copytree(Path(__file__).parent / folder, target / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildWithBundleRoot})

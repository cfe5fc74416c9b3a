"""Ignite handler: each attacked case as files clinical software opens, and the round trip through them.

DICOM inputs give a derived adversarial DICOM (same study), three DICOM SEGs (clean prediction, adversarial
prediction, target), with ``sr=True`` the same three as DICOM SR reports of outlines (TID 1500), and a Secondary
Capture of the overlay; photographs give a lossless PNG. Every case also
gets its perturbation as NIfTI and its attack target as a PNG label map, and with ``nifti=True`` the adversarial image and the masks too. The written
adversarial file is then read back through the bundle's own preprocessing and segmented again:
``roundtrip_target_iou`` (and, for DICOM, the perturbation's ``l2_stored`` / ``linf_stored`` in stored pixel
units) join the case's row in ``metrics.csv``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import torch
from ignite.engine import Engine, Events
from pydicom.uid import generate_uid

from bundle._choices import check_choice
from bundle._files import safe_name
from bundle.attacks._utils import model_guard
from bundle.handlers.attack_metrics import GROUND_TRUTH, case_names
from bundle.inputs import is_dicom
from bundle.io._dicom import research_description
from bundle.io.dicom_derived import LOSSLESS_SYNTAXES
from bundle.io import (BEYOND_WINDOW, UIDMap, deidentify_file, label_to_native, perturbation_to_stored,
                       photo_perturbation_to_uint8, write_contour_sr, write_derived_dicom, write_nifti, write_png,
                       write_secondary_capture, write_seg)
from bundle.metrics import paper_iou
from bundle.transforms import read_photo, read_xray_dicom
from bundle.visualize import render_overlay

__all__ = ["ClinicalExporter"]

# key, what it is, Series Number, the kind its Series Description starts with (research_description)
SEG_KINDS = (("clean_pred", "clean prediction", 911, "Clean prediction SEG"),
             ("adv_pred", "adversarial prediction", 912, "Adversarial pred. SEG"),
             ("target", "attack target", 913, "Attack target SEG"))
# the same three as SR reports of outlines (sr=True): key, Series Number, kind
SR_KINDS = (("clean_pred", 931, "Clean prediction SR"), ("adv_pred", 932, "Adversarial pred. SR"),
            ("target", 933, "Attack target SR"))


class ClinicalExporter:
    """Write ``<output_dir>/export/<case>/`` for every case (after ``AttackHandler``, before the metrics writer).

    A case's files are written into a hidden ``.<case>.part`` folder that becomes ``<case>`` once all are written,
    so an error or a kill never leaves a half-exported case.

    Args:
        output_dir: run folder.
        class_names: class names in label order.
        attack_name: named in the derivation description and the series descriptions.
        bounds: ``(low, high)`` of the model domain: overlay display, and the perturbation's scale in file units.
        preprocessing: the run's preprocessing (file -> model input), used to read the written files back.
        nifti: also write the adversarial image and the three masks as NIfTI.
        deidentify: remove patient identity from every DICOM written (PS3.15 basic profile); the source is
            written de-identified beside them so the study stays complete.
        deidentify_secret: key of the UID pseudonyms; fix it to get the same pseudonyms across runs.
        transfer_syntax: ``None`` writes the adversarial DICOM uncompressed; a lossless syntax UID (RLE,
            JPEG-LS or JPEG 2000 lossless) compresses it without changing a pixel.
        sr: also write the three segmentations as DICOM SR measurement reports of their outlines
            (``sr_clean_pred.dcm``, ``sr_adv_pred.dcm``, ``sr_target.dcm``; :func:`bundle.io.write_contour_sr`),
            which OHIF 3.13 draws over the radiograph as outlines with each one's finding site and area (a viewer
            that draws no SEG on a projection radiograph may draw these; docs/export.md, "Viewers").
        beyond_window: DICOM pixels beyond the VOI window: ``"edge"`` (the file shows what the model was attacked
            with) or ``"keep"`` (natural under any window; the attack's part there is lost);
            :func:`bundle.io.perturbation_to_stored`, docs/export.md "The VOI window and the file".
    """

    def __init__(self, output_dir: str | Path, class_names: Sequence[str], attack_name: str, bounds: Sequence[float],
                 preprocessing: Callable[[dict], dict], nifti: bool = False, deidentify: bool = False,
                 deidentify_secret: str | None = None, transfer_syntax: str | None = None,
                 algorithm_version: str = "0.1.0", sr: bool = False, beyond_window: str = "edge") -> None:
        self.folder = Path(output_dir) / "export"
        self.class_names, self.attack_name, self.bounds = list(class_names), attack_name, tuple(bounds)
        self.preprocessing, self.nifti = preprocessing, nifti
        self.uid_map = UIDMap(deidentify_secret) if deidentify else False
        if transfer_syntax is not None and transfer_syntax not in LOSSLESS_SYNTAXES:
            raise ValueError(f"Option export_transfer_syntax should be null or a lossless syntax UID, one of "
                             f"{', '.join(f'{uid} ({name})' for uid, name in LOSSLESS_SYNTAXES.items())}; got "
                             f"{transfer_syntax!r} (a lossy syntax would change the adversarial pixels).")
        self.transfer_syntax = transfer_syntax
        self.algorithm_version = algorithm_version
        if not isinstance(sr, bool):
            raise TypeError(f"Option export_sr should be true or false, got {sr!r}.")
        self.sr = sr
        self.beyond_window = check_choice(beyond_window, BEYOND_WINDOW, "Option export_beyond_window")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        written, extra = [], {"roundtrip_target_iou": [], "l2_stored": [], "linf_stored": []}
        sources = out["image"].meta["filename_or_obj"]
        for i, case in enumerate(case_names(engine)):
            source = Path(str(sources[i]))
            final, folder = self.folder / safe_name(case), self.folder / f".{safe_name(case)}.part"
            shutil.rmtree(folder, ignore_errors=True)  # what a killed run left of this case
            if is_dicom(source):
                path, delta, spacing = self._export_dicom(out, i, case, source, folder)
                extra["l2_stored"].append(float(np.linalg.norm(delta)))
                extra["linf_stored"].append(float(np.abs(delta).max()))
            else:
                path, delta, spacing = self._export_photo(out, i, source, folder)
            # the attack target at native resolution, lossless, for later robustness checks of the file
            write_png(label_to_native(out["target"][i], delta.shape[:2]).astype(np.uint8), folder / "target.png")
            channels = [("", delta)] if delta.ndim == 2 else [(f"_{c}", delta[..., k]) for k, c in enumerate("rgb")]
            for suffix, plane in channels:
                write_nifti(plane.astype(np.float32), folder / f"perturbation{suffix}.nii.gz", spacing=spacing)
            shutil.rmtree(final, ignore_errors=True)  # a case's folder appears whole or not at all
            os.replace(folder, final)
            written.append(final / path.name)
        extra["roundtrip_target_iou"] = self._round_trip(engine.network, written, out["target"])
        metrics = out.setdefault("extra_metrics", {})
        metrics.update({k: torch.as_tensor(v, dtype=torch.float32) for k, v in extra.items() if len(v)})

    def _export_dicom(self, out: dict, i: int, case: str, source: Path, folder: Path) -> tuple[Path, np.ndarray, list]:
        """Write the case's DICOM objects; return the adversarial file, the stored-unit perturbation, the spacing."""
        ds = pydicom.dcmread(source)  # read and decoded once for the three uses below
        stored = perturbation_to_stored(source, out["image"][i], out["adv"][i], bounds=self.bounds,
                                        beyond_window=self.beyond_window, dataset=ds)
        _, meta = read_xray_dicom(source, force=True, dataset=ds)  # the run accepted it (--force covers the body part)
        native = tuple(int(s) for s in meta["spatial_shape"])
        uid = lambda kind: generate_uid(entropy_srcs=[self.attack_name, case, kind])  # noqa: E731
        if self.uid_map:
            deidentify_file(source, folder / "source.dcm", self.uid_map)
        description = f"{self.attack_name} adversarial image (research, not for diagnosis)"
        adv_path = write_derived_dicom(source, stored, folder / "adversarial.dcm", series_instance_uid=uid("image"),
                                       derivation_description=f"adversarial perturbation added: {self.attack_name}",
                                       deidentify=self.uid_map, transfer_syntax=self.transfer_syntax)
        for key, what, number, kind in SEG_KINDS:
            write_seg(adv_path if key == "adv_pred" else source, label_to_native(out[key][i], native),
                      folder / f"seg_{key}.dcm", class_names=self.class_names, algorithm_name="bundle U-Net",
                      algorithm_version=self.algorithm_version, series_description=research_description(kind),
                      content_description=f"{self.attack_name}: {what}"[:64], series_instance_uid=uid(key),
                      series_number=number, content_label=key.upper()[:16], deidentify=self.uid_map)
        for key, number, kind in SR_KINDS if self.sr else ():
            write_contour_sr(adv_path if key == "adv_pred" else source, label_to_native(out[key][i], native),
                             folder / f"sr_{key}.dcm", class_names=self.class_names, algorithm_name="bundle U-Net",
                             algorithm_version=self.algorithm_version, series_description=research_description(kind),
                             series_instance_uid=uid(f"sr_{key}"), series_number=number, deidentify=self.uid_map)
        overlay = render_overlay(out["image"][i], out["adv"][i], out["label"][i], out["adv_pred"][i], out["target"][i],
                                 bounds=self.bounds, class_names=self.class_names, title=description,
                                 reference=out.get("reference", GROUND_TRUTH))
        write_secondary_capture(source, overlay, folder / "overlay.dcm", series_instance_uid=uid("overlay"),
                                series_description=research_description("Overlay figure"),
                                derivation_description=f"{self.attack_name}: segmentation overlay rendered on the "
                                                       f"source image", deidentify=self.uid_map)
        if self.nifti:
            self._write_masks(out, i, folder, native, meta["pixel_spacing"])
            write_nifti(stored, folder / "adversarial.nii.gz", spacing=meta["pixel_spacing"])
        return adv_path, stored.astype(np.float64) - ds.pixel_array, meta["pixel_spacing"]

    def _export_photo(self, out: dict, i: int, source: Path, folder: Path) -> tuple[Path, np.ndarray, tuple]:
        """Write the adversarial PNG; return it, the perturbation in 0..255 units and a unit spacing."""
        rgb = photo_perturbation_to_uint8(source, out["image"][i], out["adv"][i], bounds=self.bounds)
        path = write_png(rgb, folder / "adversarial.png")
        clean = (read_photo(source)[0] * 255).round()
        if self.nifti:
            self._write_masks(out, i, folder, rgb.shape[:2], (1.0, 1.0))
            write_nifti(rgb.mean(2), folder / "adversarial_gray.nii.gz", spacing=(1.0, 1.0))
        return path, rgb.astype(np.float64) - clean, (1.0, 1.0)

    def _write_masks(self, out: dict, i: int, folder: Path, native: Sequence[int], spacing: Sequence[float]) -> None:
        for key, *_ in SEG_KINDS:
            write_nifti(label_to_native(out[key][i], native), folder / f"{key}.nii.gz", spacing=spacing)

    def _round_trip(self, network: torch.nn.Module, paths: Sequence[Path], target: torch.Tensor) -> list[float]:
        """Target IoU of the network on the written files, read back through the run's preprocessing."""
        images = torch.stack([self.preprocessing({"image": str(p)})["image"].as_tensor() for p in paths])
        with model_guard(network), torch.no_grad():
            pred = network(images.to(target.device)).argmax(1, keepdim=True)
        return paper_iou(pred, target).tolist()


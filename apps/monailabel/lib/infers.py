"""MONAI Label infer tasks over the bundle: clean segmentation by configs/inference.yaml, and the adversarial
prediction of one of the bundle's attack recipes. Both return the label map as a PNG at the source's size, written
as the bundle writes its ``label.png``."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleConstants, BundleInferTask
from pydicom.uid import generate_uid

from bundle.config import bundle_config, require_task
from bundle.inputs import is_dicom
from bundle.io import perturbation_to_stored, photo_perturbation_to_uint8, write_derived_dicom, write_png
from bundle.metrics import implausible_structures


class TaskConstants(BundleConstants):
    """Where BundleInferTask finds a task's config, metadata and weights in the bundle."""

    def __init__(self, task: str) -> None:
        self.task = task

    def configs(self) -> list[str]:
        return ["inference.yaml"]

    def metadata_json(self) -> str:
        return "metadata.json" if self.task == "cxr" else f"metadata_{self.task}.json"

    def model_pytorch(self) -> str:
        return f"{self.task}.pt"


class SegmentTask(BundleInferTask):
    """Clean segmentation of ``task`` (cxr, fundus, dermoscopy): configs/inference.yaml with ``task`` set."""

    def __init__(self, bundle_root: str | Path, task: str, **kwargs) -> None:
        self.task = task
        self.class_names = bundle_config(task, bundle_root=bundle_root).get_parsed_content("class_names")
        super().__init__(str(bundle_root), conf={}, const=TaskConstants(task), type=InferType.SEGMENTATION,
                         add_post_restore=False, **kwargs)  # the postprocessing already ends at the source's size
        del self._config["model_filename"]  # a choice of every models/*.pt: the others are other tasks' networks

    def _load_bundle_config(self, path, config):
        parser = super()._load_bundle_config(path, config)
        parser.config["task"] = self.task
        return parser

    def writer(self, data: dict, extension=None, dtype=None) -> tuple[str, dict]:
        """The label PNG, and the result's ``labels``; ``warning`` names the structures missing or in many pieces,
        as ``advseg segment`` does (an image unlike the ones the model was trained on)."""
        path = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
        label = np.asarray(data["pred"][0], dtype=np.uint8)
        write_png(label, path)
        warning = self.result_warning(data, label)
        return path, {"labels": self.labels, **({"warning": warning} if warning else {})}

    def result_warning(self, data: dict, label: np.ndarray) -> str:
        """The structures of the returned ``label`` that are missing or in many pieces, or ``""``."""
        return implausible_structures(torch.from_numpy(label.astype(np.int64))[None, None], self.class_names)[0]


class AttackTask(SegmentTask):
    """The adversarial prediction: ``configs/<recipe>.yaml`` attacks the posted image as ``advseg attack <recipe>
    --input <image>`` does (no label: the clean prediction is the reference), the network segments the adversarial
    image, and that image is written in the source's format (a derived DICOM, or a PNG) into a temporary folder of its
    own, named ``adversarial_file`` in the result for the app to store (main.py); ``warning`` names the clean
    prediction's structures that are missing or in many pieces, as the command line does. A request may set the
    recipe's ``eps`` and ``steps`` (the task's options, which MONAI Label's viewer plugins show)."""

    def __init__(self, bundle_root: str | Path, task: str, recipe: str, **kwargs) -> None:
        config = bundle_config(task, ["attack.yaml", f"{recipe}.yaml"], bundle_root)
        require_task(task, config.get_parsed_content("recipe_tasks"), recipe)
        self.recipe_name = config.get_parsed_content("recipe_name")
        self.attack, self.make_target, self.make_region, self.bounds = (
            config.get_parsed_content(k) for k in ("attack", "make_target", "make_region", "intensity_bounds_checked"))
        super().__init__(bundle_root, task, **kwargs)
        self.description = f"Adversarial prediction: {task} model under the bundle's {self.recipe_name} attack"
        self.options = {k: v for k, v in self.attack.keywords.items() if k in ("eps", "steps")}
        self._config.update(self.options)

    def run_inferer(self, data: dict, convert_to_batch: bool = True, device: str = "cuda") -> dict:
        network = self._get_network(device, data)
        image = data["image"].as_tensor()[None].to(device)
        with torch.no_grad():
            reference = network(image).argmax(1, keepdim=True)
        data["clean_warning"] = implausible_structures(reference.cpu(), self.class_names)[0]
        target = reference if self.make_target is None else self.make_target(reference)
        region = {} if self.make_region is None else {"region": self.make_region(reference)}
        attack = functools.partial(self.attack, **{k: type(v)(data[k]) for k, v in self.options.items()})
        adv = attack(network, image, target, **region).adv
        with torch.no_grad():
            data["pred"] = network(adv)[0]
        data["adversarial"] = adv[0]
        return data

    def result_warning(self, data: dict, label: np.ndarray) -> str:
        """Of the clean prediction (run_inferer's): the attack's success is meant to change the returned shapes."""
        return f"clean prediction: {data['clean_warning']}" if data["clean_warning"] else ""

    def writer(self, data: dict, extension=None, dtype=None) -> tuple[str, dict]:
        label, result = super().writer(data)
        source, clean, adv = Path(data["image_path"]), data["image"].as_tensor(), data["adversarial"]
        if is_dicom(source):
            path = Path(tempfile.mkdtemp()) / f"{source.stem}_{self.recipe_name}.dcm"
            write_derived_dicom(source, perturbation_to_stored(source, clean, adv, bounds=self.bounds), path,
                                derivation_description=f"adversarial perturbation added: {self.recipe_name}",
                                series_instance_uid=generate_uid())
        else:
            path = Path(tempfile.mkdtemp()) / f"{source.stem}_{self.recipe_name}.png"
            write_png(photo_perturbation_to_uint8(source, clean, adv, bounds=self.bounds), path)
        return label, {**result, "adversarial_file": str(path)}

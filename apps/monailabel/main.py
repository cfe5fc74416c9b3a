"""MONAI Label app serving the bundle's shipped models: ``segment_<task>`` for the clean segmentation of each task and
``attack_cxr_pgd_heart`` for the prediction under the heart-symbol attack (its adversarial image goes into the
datastore beside the posted one). Set up and start: docs/monailabel.md."""

from __future__ import annotations

import shutil
from pathlib import Path

from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp

from bundle.config import BUNDLE_ROOT
from lib.infers import AttackTask, SegmentTask

TASKS = ("cxr", "fundus", "dermoscopy")
ATTACKS = {"attack_cxr_pgd_heart": ("cxr", "pgd_heart")}


class AdversarialSegmentationApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="Adversarial segmentation",
                         description="The bundle's U-Nets (chest X-ray, fundus, dermoscopy) and an adversarial attack "
                                     "on them", version="0.3.0")

    def init_datastore(self):
        """The local datastore, with the DICOM radiographs (``*.dcm``) the cxr model reads."""
        return LocalDatastore(self.studies, extensions=[*settings.MONAI_LABEL_DATASTORE_FILE_EXT, "*.dcm"],
                              auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
                              read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY)

    def init_infers(self):
        infers = {f"segment_{task}": SegmentTask(BUNDLE_ROOT, task) for task in TASKS}
        infers.update({name: AttackTask(BUNDLE_ROOT, task, recipe) for name, (task, recipe) in ATTACKS.items()})
        return infers

    def infer(self, request, datastore=None):
        """Run the task; an attack's adversarial image is added to the datastore, its id in ``adversarial_image``."""
        result = super().infer(request, datastore)
        params = result.get("params") or {}
        if "adversarial_file" in params:
            path = Path(params.pop("adversarial_file"))
            datastore = datastore or self.datastore()
            params["adversarial_image"] = datastore.add_image(path.stem, str(path), {"source": request["image"]})
            shutil.rmtree(path.parent)  # the task's temporary folder
        return result

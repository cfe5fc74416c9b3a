"""Probe a CXR checkpoint's robustness: clean per-class IoU, heart-symbol PGD (small, eps 0.04, 100 steps) and
untargeted PGD (eps 0.02) on the first 4 test phantoms (the goals of issue 3).

    python scripts/heart_probe.py outputs/cxr/train_target/model_best.pt
"""

import sys, torch
from bundle import load_examples
from bundle.config import bundle_config, load_weights
from bundle.attacks import pgd
from bundle.targets import heart_symbol_target
from bundle.metrics import class_iou, mean_iou
net = load_weights(bundle_config("cxr").get_parsed_content("network_def"), sys.argv[1]).eval()
b = load_examples("cxr", "test", n=4)
with torch.no_grad():
    clean = net(b["image"]).argmax(1, keepdim=True)
print("clean per-class IoU", [round(float(v), 3) for v in class_iou(clean, b["label"], 6).mean(0)[1:]])
t = heart_symbol_target(b["label"], "small")
r = pgd(net, b["image"], t, eps=0.04, steps=100, bounds=(-1.0, 1.0))
print("heart small eps0.04 heart IoU", round(float(class_iou(r.pred, t, 6)[:, 3].mean()), 3))
r = pgd(net, b["image"], b["label"], eps=0.02, steps=100, bounds=(-1.0, 1.0), targeted=False)
print("untargeted eps0.02 mIoU", round(float(mean_iou(r.pred, b["label"], 6).mean()), 3))

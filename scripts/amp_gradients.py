"""How closely the attacks' input gradients under mixed precision follow float32's, on the shipped models.

    python scripts/amp_gradients.py [--device cuda] [--cases 2]

For the heart-symbol PGD losses (CXR model, soft IoU, cross-entropy, margin) it prints, per autocast dtype, the
fraction of input-gradient entries that are exactly 0, the largest magnitude (float16 overflows above 65,504) and
the fraction whose sign agrees with float32, both for the loss as it is (a mean over pixels) and multiplied by
``loss_scale`` as ``pgd`` does; the sign is all a PGD step uses. For ASMA's objective (fundus model, another
case's label as target) it prints the relative L2 error of the gradient, whose size ASMA's step uses. Run it on
the device you attack on: autocast on a GPU and on a CPU differ in their kernels, and a CPU without float16
arithmetic runs the float16 rows slowly.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import torch

from bundle import load_examples, load_network
from bundle.attacks._utils import check_classes, loss_scale, model_guard, predicted_classes, segmentation_loss
from bundle.attacks.asma import asma_objective
from bundle.targets import heart_symbol_target, swap_targets

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def input_gradient(objective, net: torch.nn.Module, images: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``grad_x objective(logits)`` at ``images``, the forward and backward passes under autocast to ``dtype``."""
    x = images.clone().requires_grad_(True)
    with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        (grad,) = torch.autograd.grad(objective(net(x)), x)
    return grad


def row(attack: str, dtype: str, factor: float, grad: torch.Tensor, reference: torch.Tensor) -> str:
    """The table row's first columns, up to the last one."""
    return (f"| {attack} | {dtype} | {factor:g} | {(grad == 0).float().mean():.4f} | {grad.abs().max():.3g} | "
            f"{(grad.sign() == reference.sign()).float().mean():.4f} |")


def pgd_rows(net: torch.nn.Module, device: torch.device, cases: int) -> Iterator[str]:
    """Rows for the CXR model ``net`` (on ``device``, inside ``model_guard``) and its first ``cases`` test cases."""
    batch = load_examples("cxr", "test", n=cases)
    images = batch["image"].to(device)
    target = heart_symbol_target(batch["label"])[:, 0].to(device)
    scale = loss_scale(images)
    for loss in ("iou", "ce", "margin"):
        classes = torch.tensor(check_classes(None, net(images[:1]).shape[1], loss), device=device)  # pgd's default
        reference = input_gradient(lambda z: segmentation_loss(z, target, loss, classes).sum(), net, images, None)
        for name, dtype in DTYPES.items():
            for factor in (1.0, scale):
                objective = lambda z: factor * segmentation_loss(z, target, loss, classes).sum()  # noqa: E731
                grad = input_gradient(objective, net, images, dtype)
                yield row(f"pgd, {loss}", name, factor, grad, reference) + " - |"


def asma_rows(net: torch.nn.Module, device: torch.device, cases: int) -> Iterator[str]:
    """Rows for the fundus model ``net`` (on ``device``, inside ``model_guard``) and its first ``cases`` test cases."""
    batch = load_examples("fundus", "test", n=cases)
    images, target = batch["image"].to(device), swap_targets(batch["label"])[:, 0].to(device)
    objective = lambda z: asma_objective(z, predicted_classes(z), target).sum()  # noqa: E731
    reference = input_gradient(objective, net, images, None)
    for name, dtype in DTYPES.items():
        grad = input_gradient(objective, net, images, dtype)
        error = (grad - reference).norm() / reference.norm()
        yield row("asma", name, 1.0, grad, reference) + f" {error:.3f} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", type=int, default=2, help="first test cases of each task")
    args = parser.parse_args(argv)
    if args.cases < 2:
        parser.error(f"--cases should be at least 2 (ASMA's target is another case's label), got {args.cases}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device} is not a torch device; use cpu or cuda (cuda:1, ...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch sees no CUDA device; use --device cpu")
    print(f"Device: {device}, the first {args.cases} test cases; agreement and error against float32's gradient\n")
    print("| attack, loss | autocast | loss multiplied by | zeros | largest | sign agreement | relative L2 error |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for task, rows in (("cxr", pgd_rows), ("fundus", asma_rows)):
        net = load_network(task).to(device)
        with model_guard(net):
            for line in rows(net, device, args.cases):
                print(line, flush=True)


if __name__ == "__main__":
    main()

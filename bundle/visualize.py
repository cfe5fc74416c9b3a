"""Per-case figures like the papers': clean image with ground truth, adversarial image with prediction and
target, amplified perturbation. Rendered off-screen to an RGB array."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["render_overlay"]

COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")


def _display(image: torch.Tensor, bounds: Sequence[float]) -> np.ndarray:
    """``(C, H, W)`` model-domain image -> ``(H, W)`` or ``(H, W, 3)`` in ``[0, 1]``."""
    lo, hi = bounds
    x = ((image.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1).numpy()
    return x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)


def _contours(ax, label: torch.Tensor, num_classes: int, style: str = "-", colour: str | None = None) -> None:
    lab = label.detach().cpu().numpy().reshape(label.shape[-2:])
    for c in range(1, num_classes):
        mask = (lab == c).astype(float)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[colour or COLOURS[(c - 1) % len(COLOURS)]],
                       linewidths=1.0, linestyles=style)


def render_overlay(image: torch.Tensor, adv: torch.Tensor, label: torch.Tensor, adv_pred: torch.Tensor,
                   target: torch.Tensor, *, bounds: Sequence[float], class_names: Sequence[str],
                   title: str = "", reference: str = "ground truth", dpi: int = 100) -> np.ndarray:
    """Three panels as an RGB ``(H', W', 3)`` uint8 array.

    Args:
        image, adv: ``(C, H, W)`` clean and adversarial images in the model domain ``bounds``.
        label, adv_pred, target: ``(1, H, W)`` reference, adversarial prediction, attack target.
        reference: what ``label`` is, in the first panel's title: ``"ground truth"`` or ``"clean prediction"``.
        class_names: names in label order (index 0 = background, not drawn).
    """
    n = len(class_names)
    cmap = "gray" if image.shape[0] == 1 else None
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), dpi=dpi)
    axes[0].imshow(_display(image, bounds), cmap=cmap, vmin=0, vmax=1)
    _contours(axes[0], label, n)
    axes[0].set_title(f"clean image, reference: {reference}")
    axes[1].imshow(_display(adv, bounds), cmap=cmap, vmin=0, vmax=1)
    _contours(axes[1], target, n, style="--", colour="#d0d0d0")
    _contours(axes[1], adv_pred, n)
    axes[1].set_title("adversarial image, prediction (target dashed)")
    delta = (adv - image).detach().float().cpu()
    scale = float(delta.abs().max()) or 1.0
    amplified = (delta / scale).mean(0).numpy()
    shown = axes[2].imshow(amplified, cmap="seismic", vmin=-1, vmax=1)
    axes[2].set_title(f"perturbation / {scale:.3g} (its largest change)")
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    handles = [matplotlib.lines.Line2D([], [], color=COLOURS[(c - 1) % len(COLOURS)], label=class_names[c])
               for c in range(1, n)]
    fig.legend(handles=handles, loc="lower center", ncol=min(n - 1, 6), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb

"""The one U-Net every config builds, and ``load_network`` for the shipped weights."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import UNet

__all__ = ["build_unet", "load_network"]

CHANNELS = (16, 32, 64, 128, 256)


def build_unet(in_channels: int, out_channels: int, num_res_units: int = 2, dropout: float = 0.0) -> UNet:
    """MONAI 2-D ``UNet``: strided convolutions instead of pooling, batch norm after every convolution.

    This follows the network of Bortsova et al. (a U-Net with a quarter of the original features, strided
    convolutions, batch normalisation); MONAI's residual units give it a receptive field larger than a third
    of the 256x256 model grid.

    Shape:
        input ``(B, in_channels, H, W)`` with H, W multiples of 16; output logits ``(B, out_channels, H, W)``.
    """
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=CHANNELS,
        strides=(2, 2, 2, 2),
        num_res_units=num_res_units,
        norm="batch",
        dropout=dropout,
    )


def load_network(task: str, variant: str = "target", device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped trained U-Net of ``task`` (``fundus``, ``dermoscopy``, ``cxr``) in eval mode.

    The network is built from the task's bundle config, so it is exactly the one the configs train and attack.
    ``variant`` is ``"target"`` or ``"surrogate"`` (the black-box surrogate exists for ``cxr`` only).
    """
    from bundle.config import bundle_config, model_path  # local: config parsing imports every layer

    parser = bundle_config(task)
    path = model_path(task, variant)
    if not path.is_file():
        raise FileNotFoundError(f"No weights for task {task!r}, variant {variant!r} at {path}; train them with "
                                f"the train config or restore the file from the repository.")
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(device).eval()

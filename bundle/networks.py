"""The networks the configs build (the bundle's U-Net and two more of its family) and ``load_network``."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import AttentionUnet, BasicUNetPlusPlus, UNet

from bundle._choices import check_choice

__all__ = ["ARCHITECTURES", "build_unet", "build_network", "load_network"]

CHANNELS = (16, 32, 64, 128, 256)
ARCHITECTURES = ("unet", "attention_unet", "unet_plus_plus")


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


class _FinalOutput(torch.nn.Module):
    """``BasicUNetPlusPlus`` returns a list of outputs; every attack and metric expects the one logits tensor."""

    def __init__(self, net: BasicUNetPlusPlus):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[-1]


def build_network(architecture: str, in_channels: int, out_channels: int) -> torch.nn.Module:
    """One of ``ARCHITECTURES``, all 2-D, logits ``(B, out_channels, H, W)`` for ``(B, in_channels, H, W)``.

    - ``unet``: ``build_unet`` (1.63 M parameters for 1 -> 6 channels), the network of every shipped default;
    - ``attention_unet``: MONAI ``AttentionUnet`` with the same channels and strides (1.99 M), attention gates
      on the skip connections;
    - ``unet_plus_plus``: MONAI ``BasicUNetPlusPlus`` with nested dense skip paths and a quarter of the
      default features, (8, 8, 16, 32, 64, 8) (0.15 M): the smallest of the three, yet the slowest per pixel
      (its dense full-resolution paths), which is why its features were cut to train it on a CPU.

    The three sizes test Wang and Xu's claim that parameter count does not predict attack success.
    """
    check_choice(architecture, ARCHITECTURES, "Option architecture", fix=" Or give your own network as network_def.")
    if architecture == "unet":
        return build_unet(in_channels, out_channels)
    if architecture == "attention_unet":
        return AttentionUnet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                             channels=CHANNELS, strides=(2, 2, 2, 2))
    return _FinalOutput(BasicUNetPlusPlus(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                                          features=(8, 8, 16, 32, 64, 8)))


def load_network(task: str, variant: str = "target", device: str | torch.device = "cpu",
                 architecture: str = "unet", model_file: str | Path | None = None, **overrides) -> torch.nn.Module:
    """The shipped trained network of ``task`` (``fundus``, ``dermoscopy``, ``cxr``) in eval mode.

    The network is built from the task's bundle config, so it is exactly the one the configs train and attack.
    ``variant`` is ``"target"`` or ``"surrogate"`` (the black-box surrogate exists for ``cxr`` only);
    ``architecture`` one of ``ARCHITECTURES`` (the other two are shipped for ``cxr`` only); ``model_file`` a
    state_dict of your own (e.g. a training run's ``model_best.pt``) instead of the shipped weights;
    ``overrides`` replace config values as on the training command line, e.g.
    ``network_def="$bundle.networks.build_unet(1, 6, 1)"`` for a run trained with that override.
    """
    from bundle.config import bundle_config, load_weights, model_path  # local: config parsing imports every layer

    path = model_path(task, variant, architecture) if model_file is None else Path(model_file)
    if model_file is None and not path.is_file():
        raise FileNotFoundError(f"No weights for task {task!r}, variant {variant!r}, architecture {architecture!r} "
                                f"at {path}; train them with the train config or restore the file from the repository.")
    net = bundle_config(task, architecture=architecture, **overrides).get_parsed_content("network_def")
    return load_weights(net, path).to(device).eval()

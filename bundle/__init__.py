"""Adversarial attacks on medical image segmentation, as a MONAI bundle (import name ``bundle``)."""

from bundle.examples import load_examples
from bundle.networks import load_network

__all__ = ["load_examples", "load_network"]

"""Layer 4: attacks as pure PyTorch functions (tensors in, :class:`AttackResult` out; no I/O, no device moves)."""

from bundle.attacks._utils import AttackResult
from bundle.attacks.apgd import apgd
from bundle.attacks.asma import asma
from bundle.attacks.fgsm import fgsm
from bundle.attacks.pgd import pgd

__all__ = ["AttackResult", "apgd", "asma", "fgsm", "pgd"]

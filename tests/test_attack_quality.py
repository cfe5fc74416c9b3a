"""The issue's quality targets for the attacks, on a few test phantoms with the shipped models.

The attack parameters come from the recipes in configs/, so these tests check what users run.
"""

import pytest
import torch

from bundle import load_examples, load_network
from bundle.attacks import pgd
from bundle.config import bundle_config
from bundle.metrics import class_iou, mean_iou, paper_iou, pixel_accuracy
from bundle.targets import heart_symbol_target, swap_targets

N = 4  # cases per check: small enough for a 2-core CPU


def recipe(task, *files, **overrides):
    """The ``attack`` partial that ``configs/attack.yaml`` + ``files`` build, with ``overrides`` applied."""
    parser = bundle_config(task, ["attack.yaml", *files])
    parser.update({f"attack#{k}": v for k, v in overrides.items()})
    return parser.get_parsed_content("attack")


@pytest.fixture(scope="module")
def fundus():
    return load_network("fundus"), load_examples("fundus", "test", n=N)


@pytest.fixture(scope="module")
def cxr():
    return load_network("cxr"), load_examples("cxr", "test", n=N)


def test_asma_reaches_the_target_on_fundus(fundus):
    net, batch = fundus
    target = swap_targets(batch["label"], seed=0)
    res = recipe("fundus", "asma.yaml")(net, batch["image"], target)
    assert paper_iou(res.pred, target).mean() >= 0.97
    assert pixel_accuracy(res.pred, target).mean() >= 0.99


def test_asma_ablation_follows_the_papers_ordering(fundus):
    """SSM < ASM <= ASMA in IoU, ASMA with no larger L2 than ASM, with the recipe's budget (2 cases).

    Samples stop at the recipe's ``stop_iou``: above it a sample is done, so IoUs are compared capped there.
    """
    net, batch = fundus
    batch = {k: v[:2] for k, v in batch.items()}
    target = swap_targets(batch["label"], seed=0)
    attacks = {v: recipe("fundus", "asma.yaml", variant=v) for v in ("ssm", "asm", "asma")}
    results = {v: attack(net, batch["image"], target) for v, attack in attacks.items()}
    stop = attacks["asma"].keywords["stop_iou"]
    iou = {v: float(paper_iou(r.pred, target).clamp(max=stop).mean()) for v, r in results.items()}
    l2 = {v: float((r.adv - batch["image"]).flatten(1).norm(dim=1).mean()) for v, r in results.items()}
    assert iou["ssm"] < iou["asm"] <= iou["asma"]
    assert l2["asma"] <= l2["asm"]


def test_asma_on_dermoscopy():
    net, batch = load_network("dermoscopy"), load_examples("dermoscopy", "test", n=N)
    target = swap_targets(batch["label"], seed=0)
    res = recipe("dermoscopy", "asma.yaml")(net, batch["image"], target)
    assert paper_iou(res.pred, target).mean() >= 0.90


# Not reached with the paper's step rule (constant alpha = eps / 20): on these 4 cases the shipped CXR model
# (version-4 phantoms) keeps a heart IoU with the small symbol of 0.953 after 100 steps at eps 0.04;
# configs/pgd_momentum.yaml (momentum and a cosine step, same eps and steps) reaches it. The paper's rule does
# reach the large symbol (0.978, the other structures 0.994) and the untargeted goal (mean IoU 0.003 at eps 0.02),
# which the version-2 model resisted (0.850, 0.953 and 0.395; docs/attacks.md).
# strict: a pass is reported as a failure, so the marker comes off as soon as the goal is met.
PAPER_STEPS = pytest.mark.xfail(strict=True, reason="reached with pgd_momentum.yaml, not the paper's step rule")
RULES = {"paper": ["pgd_heart.yaml"], "momentum": ["pgd_heart.yaml", "pgd_momentum.yaml"]}
HEART_CASES = [pytest.param("paper", "small", 0.97, marks=PAPER_STEPS),
               ("paper", "large", 0.95),
               ("momentum", "small", 0.97), ("momentum", "large", 0.95)]


@pytest.mark.parametrize("size, paper, others", [("small", 0.344, 1.0), ("large", 0.418, 0.879)])
def test_heart_symbols_overlap_the_heart_as_the_papers_do(size, paper, others):
    """The symbols' IoU with the true heart on the 20 test phantoms is the paper's (Table 2, eps 0.16,
    where its predictions fit the symbols): a symbol of another size would be a different attack. The large
    one takes lung pixels, so the other structures' target is not their ground truth (docs/attacks.md)."""
    label = load_examples("cxr", "test", n=20)["label"]
    iou = class_iou(heart_symbol_target(label, size), label, 6)
    assert iou[:, 3].mean() == pytest.approx(paper, abs=0.01)
    assert iou[:, [1, 2, 4, 5]].mean() == pytest.approx(others, abs=0.005)


@pytest.fixture(scope="module")
def heart_attacks(cxr):
    """(target, result) of both step rules' heart-symbol recipes for both sizes, computed once per module."""
    net, batch = cxr
    out = {}
    for rule, files in RULES.items():
        for size in ("small", "large"):
            target = heart_symbol_target(batch["label"], size)
            out[rule, size] = target, recipe("cxr", *files)(net, batch["image"], target)
    return out


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("size", ["small", "large"])
def test_heart_symbol_pgd_stays_in_the_eps_ball(cxr, heart_attacks, rule, size):
    _, batch = cxr
    _, res = heart_attacks[rule, size]
    assert (res.adv - batch["image"]).abs().max() <= 0.04 + 1e-6


@pytest.mark.parametrize("rule, size, goal", HEART_CASES)
def test_heart_symbol_pgd_reaches_the_symbol(heart_attacks, rule, size, goal):
    """100 steps at eps 0.04, "attack all"."""
    target, res = heart_attacks[rule, size]
    assert class_iou(res.pred, target, 6)[:, 3].mean() >= goal


@pytest.mark.parametrize("rule, size", [("paper", "small"), ("paper", "large"),
                                        ("momentum", "small"), ("momentum", "large")])
def test_heart_symbol_pgd_keeps_the_other_structures(heart_attacks, rule, size):
    """Scored as the paper's Table 3: against their target, the ground truth outside the symbol. Against the
    ground truth itself a perfect large-symbol attack could not pass (0.879: the symbol takes lung pixels)."""
    target, res = heart_attacks[rule, size]
    assert class_iou(res.pred, target, 6)[:, [1, 2, 4, 5]].mean() >= 0.98  # lungs, clavicles


@pytest.mark.parametrize("files, overrides", [
    pytest.param(["pgd_untargeted.yaml"], {}, id="paper"),
    pytest.param(["pgd_untargeted.yaml", "pgd_strong.yaml"], {"steps": 100}, id="strong")])
def test_untargeted_pgd_destroys_the_segmentation(cxr, files, overrides):
    """eps 0.02: the paper's recipe (100 steps, soft IoU) and the strongest this bundle has (pgd_strong.yaml: its
    loss and step rule, here with the paper's 100 steps instead of its 1000, which cost 3.5 min on 2 cores)."""
    net, batch = cxr
    res = recipe("cxr", *files, **overrides)(net, batch["image"], batch["label"])
    assert (res.adv - batch["image"]).abs().max() <= 0.02 + 1e-6
    assert mean_iou(res.pred, batch["label"], 6).mean() <= 0.05


def test_float16_pgd_steps_follow_the_float32_gradient(cxr):
    """Under float16 autocast (a GPU's usual mixed precision, here the CPU's float16 autocast) one PGD step of the
    shipped CXR model moves the pixels as in float32. The losses are means over 65,536 pixels and, unscaled, their
    gradients underflow inside the network: 4.2 % of the input gradient became exactly 0 and 87.4 % of the signs
    agreed (version-3 model; version 2: 3.6 %, 86.7 %). Scaled, nothing underflows; what still differs is float16's
    rounding of small gradients: 96.9 % of the signs agree (version 2: 98.2 %; scripts/amp_gradients.py)."""
    net, batch = cxr
    images, target = batch["image"][:2], heart_symbol_target(batch["label"][:2])
    step = lambda: pgd(net, images, target, eps=0.04, alpha=0.04, steps=1, bounds=(-1.0, 1.0)).adv - images  # noqa: E731
    full = step()
    with torch.autocast("cpu", dtype=torch.float16):
        half = step()
    assert ((half == 0) & (full != 0)).float().mean() <= 0.001  # no underflow to a zero step
    assert (half.sign() == full.sign()).float().mean() >= 0.96

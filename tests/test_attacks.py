"""Known-answer tests of the attacks on a per-pixel linear segmenter whose decision boundary is exact."""

from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode

from bundle.attacks import asma, fgsm, pgd
from bundle.attacks._utils import predicted_classes, segmentation_loss
from bundle.metrics import paper_iou


def linear_segmenter(num_classes: int) -> torch.nn.Module:
    """1x1 conv: logit_k = 4 * x_k (3 channels), so argmax is the brightest of the first K channels."""
    net = torch.nn.Conv2d(3, num_classes, 1)
    with torch.no_grad():
        net.weight.copy_(4 * torch.eye(3)[:num_classes, :, None, None])
        net.bias.zero_()
    return net


def make_case(num_classes: int, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, 12, 12, generator=g) * 0.8 + 0.1
    target = torch.randint(0, num_classes, (batch, 1, 12, 12), generator=g)
    return images, target


def check_invariants(net, images, res, bounds=(0.0, 1.0), eps=None):
    assert res.adv.shape == images.shape and res.pred.shape == (images.shape[0], 1, *images.shape[2:])
    assert res.adv.min() >= bounds[0] and res.adv.max() <= bounds[1]
    if eps is not None:
        assert (res.adv - images).abs().max() <= eps + 1e-6
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        torch.testing.assert_close(res.pred, net(res.adv).argmax(1, keepdim=True))


def test_predicted_classes_is_argmax_with_first_index_on_ties():
    logits = torch.randn(2, 6, 5, 7, generator=torch.Generator().manual_seed(0))
    logits[0, :, 0, 0] = 1.0  # a six-way tie: class 0
    logits[1, 2:5, 1, 1] = 100.0  # a tie of classes 2, 3, 4: class 2
    torch.testing.assert_close(predicted_classes(logits), logits.argmax(1))
    assert predicted_classes(logits)[0, 0, 0] == 0 and predicted_classes(logits)[1, 1, 1] == 2


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("batch", [1, 8])
def test_targeted_pgd_reaches_target(num_classes, batch):
    net = linear_segmenter(num_classes).train()
    images, target = make_case(num_classes, batch)
    res = pgd(net, images, target, eps=0.9, alpha=0.05, steps=60, bounds=(0.0, 1.0), loss="ce")
    check_invariants(net, images, res, eps=0.9)
    assert net.training
    torch.testing.assert_close(res.score, torch.ones(batch))
    assert torch.equal(res.pred, target)


@pytest.mark.parametrize("loss", ["iou", "dice", "ce", "margin"])
def test_every_loss_drives_pgd_to_the_target(loss):
    net = linear_segmenter(3)
    images, target = make_case(3, 4)
    res = pgd(net, images, target, eps=0.9, alpha=0.05, steps=80, bounds=(0.0, 1.0), loss=loss, stop_iou=1.0)
    check_invariants(net, images, res, eps=0.9)
    assert res.score.min() == 1.0
    assert (res.steps < 80).all()  # each sample stopped on its own once it was done


@pytest.mark.parametrize("loss", ["iou", "margin"])
def test_untargeted_pgd_destroys_the_ground_truth(loss):
    net = linear_segmenter(3)
    images, _ = make_case(3, 4)
    with torch.no_grad():
        truth = net(images).argmax(1, keepdim=True)
    res = pgd(net, images, truth, eps=0.5, alpha=0.05, steps=30, bounds=(0.0, 1.0), targeted=False, loss=loss)
    check_invariants(net, images, res, eps=0.5)
    assert paper_iou(res.pred, truth).max() < 0.05


def test_pgd_eps_ball_binds_and_region_limits_noise():
    net = linear_segmenter(3)
    images, target = make_case(3, 2)
    region = torch.zeros(2, 1, 12, 12, dtype=torch.bool)
    region[:, :, :6] = True
    res = pgd(net, images, target, eps=0.05, steps=20, bounds=(0.0, 1.0), region=region, random_start=True,
              generator=torch.Generator().manual_seed(1))
    check_invariants(net, images, res, eps=0.05)
    delta = res.adv - images
    assert delta[:, :, 6:].abs().max() == 0
    assert delta[:, :, :6].abs().max() == pytest.approx(0.05, abs=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.75])
def test_cosine_schedule_moves_by_the_sum_of_its_steps(momentum):
    """Cross-entropy on the linear segmenter keeps every pixel's gradient sign, so each pixel moves by the sum of
    alpha * (1 + cos(pi t / n)) / 2 over t < n, which is alpha * (n + 1) / 2; momentum keeps the sign too."""
    net = linear_segmenter(3)
    images, target = make_case(3, 2)
    res = pgd(net, images, target, eps=1.0, alpha=0.01, steps=10, bounds=(0.0, 1.0), loss="ce", schedule="cosine",
              momentum=momentum)
    check_invariants(net, images, res, eps=1.0)
    torch.testing.assert_close((res.adv - images).abs(), torch.full_like(images, 0.055))


def test_margin_loss_counts_only_the_pixels_still_to_flip():
    """Logits of 2 classes at 4 pixels, the class map [0, 1, 1, 0] against the target [1, 1, 1, 0]:
    trails d = z_other - z_target of 3, -0.5, -4 and -6 (the last pixel's target, background, is not covered)."""
    logits = torch.tensor([[2.0, -1.0, 0.0, 3.0], [-1.0, -0.5, 4.0, -3.0]]).view(1, 2, 1, 4)
    target = torch.tensor([[[1, 1, 1, 0]]])
    targeted = segmentation_loss(logits, target, "margin", [1])
    untargeted = segmentation_loss(logits, target, "margin", [1], targeted=False)
    torch.testing.assert_close(targeted, torch.tensor([(3.0 - 0.5 - 1.0) / 3]))  # -4 clipped at -1: done
    torch.testing.assert_close(untargeted, torch.tensor([(1.0 - 0.5 - 4.0) / 3]))  # 3 clipped at 1: done
    with pytest.raises(ValueError, match="Loss 'margin' needs logits of at least 2 classes"):
        segmentation_loss(logits[:, :1], torch.zeros_like(target), "margin", [0])


def test_fgsm_is_one_signed_step_of_size_eps():
    net = linear_segmenter(3)
    images, target = make_case(3, 3)
    res = fgsm(net, images, target, eps=0.02, bounds=(0.0, 1.0), loss="ce")
    check_invariants(net, images, res, eps=0.02)
    assert torch.equal(res.steps, torch.ones(3, dtype=torch.long))
    moved = (res.adv - images).abs()
    assert ((moved - 0.02).abs() < 1e-6).float().mean() > 0.5  # every pixel with a gradient moved by exactly eps


@pytest.mark.parametrize("num_classes", [2, 3])
def test_asma_variants_reach_target_and_follow_the_papers_ordering(num_classes):
    net = linear_segmenter(num_classes)
    images, target = make_case(num_classes, 8)
    results = {v: asma(net, images, target, bounds=(0.0, 1.0), steps=300, beta=2e-2, tau=1e-3, variant=v, alpha=5e-3)
               for v in ("ssm", "asm", "asma")}
    for res in results.values():
        check_invariants(net, images, res)
        assert res.score.mean() >= 0.99
    l2 = {v: (r.adv - images).flatten(1).norm(dim=1).mean() for v, r in results.items()}
    assert l2["asm"] < l2["ssm"]  # the adaptive mask stops pushing pixels that are already right


def test_asma_stops_each_sample_and_keeps_its_best_iterate():
    net = linear_segmenter(3)
    images, target = make_case(3, 8)
    res = asma(net, images, target, bounds=(0.0, 1.0), steps=300, beta=2e-2, tau=1e-3, stop_iou=0.95)
    assert (res.score >= 0.95).all()
    assert res.steps.max() < 300 and len(set(res.steps.tolist())) > 1
    torch.testing.assert_close(res.score, paper_iou(res.pred, target))


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("amp", [None, torch.bfloat16, torch.float16], ids=["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("attack", ["pgd", "pgd_momentum", "asma"])
def test_attacks_reach_the_target_on_every_device_and_under_autocast(device, amp, attack):
    """The images' device is the attack's; under autocast the adversarial images stay float32 inside bounds."""
    net = linear_segmenter(3).to(device)
    images, target = (v.to(device) for v in make_case(3, batch=4))
    run = {"pgd": lambda: pgd(net, images, target, eps=0.5, alpha=0.05, steps=40, bounds=(0.0, 1.0), stop_iou=1.0),
           "pgd_momentum": lambda: pgd(net, images, target, eps=0.5, steps=40, bounds=(0.0, 1.0), stop_iou=1.0,
                                       momentum=0.75, schedule="cosine"),
           "asma": lambda: asma(net, images, target, bounds=(0.0, 1.0), steps=200, beta=0.5, tau=0.01, stop_iou=1.0)}
    with torch.autocast(device, dtype=amp or torch.float32, enabled=amp is not None):
        res = run[attack]()
    assert all(v.device.type == device for v in (res.adv, res.pred, res.score, res.steps))
    assert res.adv.dtype == images.dtype and res.adv.min() >= 0 and res.adv.max() <= 1
    if attack != "asma":
        assert (res.adv - images).abs().max() <= 0.5 + 1e-6
    assert paper_iou(res.pred, target).min() == 1.0 and (res.steps < {"asma": 200}.get(attack, 40)).all()


@pytest.mark.parametrize("attack", ["asma", "pgd", "pgd_momentum"])
def test_batch_invariance(attack):
    """A sample attacked alone and inside a batch of 8 gives the same result."""
    net = linear_segmenter(3)
    images, target = make_case(3, 8)
    run = {"asma": lambda x, t: asma(net, x, t, bounds=(0.0, 1.0), steps=200, beta=2e-2, tau=1e-3, stop_iou=0.97),
           "pgd": lambda x, t: pgd(net, x, t, eps=0.6, steps=60, bounds=(0.0, 1.0), stop_iou=0.97),
           "pgd_momentum": lambda x, t: pgd(net, x, t, eps=0.6, alpha=0.03, steps=60, bounds=(0.0, 1.0),
                                            stop_iou=0.97, momentum=0.75, schedule="cosine")}[attack]
    batch = run(images, target)
    assert len(set(batch.steps.tolist())) > 1  # samples leave the batch at different steps
    for i in (0, 5):
        alone = run(images[i:i + 1], target[i:i + 1])
        torch.testing.assert_close(alone.adv[0], batch.adv[i])
        assert alone.steps[0] == batch.steps[i]


def test_attack_under_no_grad_and_batchnorm_in_train_mode():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 3, 1)).train()
    running = net[1].running_mean.clone()
    images, target = make_case(3, 2)
    with torch.no_grad():
        res = pgd(net, images, target, eps=0.1, steps=3, bounds=(0.0, 1.0))
    assert net.training and torch.equal(net[1].running_mean, running)
    assert (res.adv != images).any()
    assert all(p.grad is None for p in net.parameters())


class HostSyncCounter(TorchFunctionMode):
    """Counts the tensor operations that make the host wait for the device (a GPU's ``.item()`` and the like)."""

    SYNCS = {"__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy", "cpu", "nonzero", "equal",
             "masked_select"}

    def __init__(self):
        super().__init__()
        self.calls = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        index = args[1] if name in ("__getitem__", "__setitem__") else ()
        bool_index = any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                         for i in (index if isinstance(index, tuple) else (index,)))
        if name in self.SYNCS or bool_index:
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("attack", ["asma", "pgd", "pgd_momentum_margin"])
def test_host_syncs_per_step_none_without_early_stopping_one_with_it(attack):
    """The issue allows no host synchronisation per step except what early stopping needs: the stop decision."""
    net = linear_segmenter(3)
    images, target = make_case(3, 4)
    run = {"asma": lambda steps, stop: asma(net, images, target, bounds=(0.0, 1.0), steps=steps, beta=1e-9, tau=1e-9,
                                            stop_iou=stop),
           "pgd": lambda steps, stop: pgd(net, images, target, eps=0.01, steps=steps, bounds=(0.0, 1.0), stop_iou=stop),
           "pgd_momentum_margin": lambda steps, stop: pgd(net, images, target, eps=0.01, steps=steps, bounds=(0.0, 1.0),
                                                          loss="margin", momentum=0.75, schedule="cosine",
                                                          stop_iou=stop)}[attack]
    for stop, per_step in ((None, 0), (1.0, 1)):  # steps tiny enough that no sample reaches the target
        counts = []
        for steps in (2, 12):
            with HostSyncCounter() as counter:
                run(steps, stop)
            counts.append(sum(counter.calls.values()))
        assert counts[1] - counts[0] == 10 * per_step, (stop, counts)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"eps": -0.1}, ValueError, r"Argument eps should be a non-negative float, got -0.1."),
    ({"steps": 2.5}, ValueError, r"Argument steps should be a non-negative integer, got 2.5."),
    ({"bounds": (1.0, 0.0)}, ValueError, r"Argument bounds should be \(low, high\) with low < high"),
    ({"loss": "iuo"}, ValueError, r"iuo"),
    ({"stop_iou": 1.5}, ValueError, r"Argument stop_iou should be a float in \[0, 1\]"),
    ({"classes": [7]}, ValueError, r"Argument classes should list class indices in 0..2"),
    ({"region": torch.ones(2, 1, 4, 4, dtype=torch.bool)}, ValueError, r"Argument region should have shape"),
    ({"momentum": 1.0}, ValueError, r"Argument momentum should be a float in \[0, 1\), got 1.0."),
    ({"schedule": "cosin"}, ValueError, r"cosin"),
    ({"bounds": (-1.0, 0.5)}, ValueError, r"Argument images should lie inside bounds"),
])
def test_pgd_argument_errors(kwargs, error, match):
    images, target = make_case(3, 2)
    args = {"eps": 0.1, "steps": 2, "bounds": (0.0, 1.0)} | kwargs
    with pytest.raises(error, match=match):
        pgd(linear_segmenter(3), images, target, **args)


def test_target_errors():
    net = linear_segmenter(3)
    images, target = make_case(3, 2)
    with pytest.raises(ValueError, match=r"Argument target should have shape \(B, 1, H, W\) = \(2, 1, 12, 12\)"):
        asma(net, images, target[:, :, :6], bounds=(0.0, 1.0), steps=1)
    with pytest.raises(ValueError, match=r"Argument target should hold classes in 0..2"):
        asma(net, images, target + 5, bounds=(0.0, 1.0), steps=1)
    with pytest.raises(ValueError, match="asmx"):
        asma(net, images, target, bounds=(0.0, 1.0), steps=1, variant="asmx")
    with pytest.raises(ValueError, match=r"Argument beta should be a non-negative float"):
        asma(net, images, target, bounds=(0.0, 1.0), steps=1, beta=-1.0)

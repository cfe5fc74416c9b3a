"""Known-answer tests of APGD, its losses and the worst-case ensemble on the per-pixel linear segmenter."""

import functools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from bundle.attacks import AttackResult, apgd
from bundle.attacks._losses import ApgdLoss, Weighting, apgd_loss, fast_mean_iou, js_divergence
from bundle.attacks._utils import class_onehot
from bundle.attacks.apgd import _update, checkpoints
from bundle.metrics import mean_iou, paper_iou
from bundle.robustness import robustness_sweep, worst_case
from tests.test_attacks import check_invariants, linear_segmenter, make_case

LN3 = math.log(3.0)


def four_pixels():
    """2 classes, 4 pixels: logits (0, ln 3) or (ln 3, 0), so the predicted class has probability 3/4 and
    cross-entropy ln(4/3) where it is the reference's class, ln 4 where it is not. Reference [1, 1, 1, 0]:
    pixels 0, 1 and 3 are right, pixel 2 wrong."""
    logits = torch.tensor([[0.0, 0.0, LN3, LN3], [LN3, LN3, 0.0, 0.0]]).view(1, 2, 1, 4)
    ref = torch.tensor([[[1, 1, 1, 0]]])
    return logits, ref, logits.argmax(1)


def loss_of(name, targeted=False, weighting="none", progress=0.0):
    logits, ref, pred = four_pixels()
    classes = torch.tensor([0, 1])
    return apgd_loss(logits, ref, pred, ApgdLoss(name), classes, class_onehot(ref, classes), targeted,
                     Weighting(weighting), progress)


def test_masked_and_balanced_cross_entropy_known_answers():
    small, big = math.log(4 / 3), math.log(4.0)
    torch.testing.assert_close(loss_of("masked_ce"), torch.tensor([3 * small / 4]))  # the 3 right pixels
    torch.testing.assert_close(loss_of("masked_ce", targeted=True), torch.tensor([big / 4]))  # the one to flip
    torch.testing.assert_close(loss_of("ce"), torch.tensor([(3 * small + big) / 4]))
    # each reference class alike: class 1 (pixels 0-2, two of them right) and class 0 (pixel 3, right)
    torch.testing.assert_close(loss_of("balanced_ce"), torch.tensor([0.5 * 2 * small / 3 + 0.5 * small]))
    torch.testing.assert_close(loss_of("balanced_ce", targeted=True), torch.tensor([0.5 * big / 3]))


def test_jensen_shannon_known_answers():
    logits, ref, _ = four_pixels()
    p = logits.softmax(1)
    q = F.one_hot(ref, 2).permute(0, 3, 1, 2).float()
    m = (p + q) / 2
    kl = lambda a, b: (a * (a.clamp_min(1e-30).log() - b.log())).sum(1)  # noqa: E731
    torch.testing.assert_close(js_divergence(logits, ref), 0.5 * (kl(p, m) + kl(q, m)))
    assert js_divergence(torch.tensor([[30.0, -30.0]]).view(1, 2, 1, 1), torch.tensor([[[0]]])).item() == \
        pytest.approx(0.0, abs=1e-6)
    assert js_divergence(torch.tensor([[30.0, -30.0]]).view(1, 2, 1, 1), torch.tensor([[[1]]])).item() == \
        pytest.approx(math.log(2.0), abs=1e-6)
    torch.testing.assert_close(loss_of("js"), (0.5 * (kl(p, m) + kl(q, m))).mean(-1).flatten())


def test_segpgd_and_cospgd_weightings_known_answers():
    small, big = math.log(4 / 3), math.log(4.0)
    # SegPGD: at the start only the pixels still to flip count (masked CE), at the end both halves weigh 1/2
    torch.testing.assert_close(loss_of("ce", weighting="segpgd", progress=0.0), loss_of("masked_ce"))
    torch.testing.assert_close(loss_of("ce", weighting="segpgd", progress=1.0), loss_of("ce") / 2)
    torch.testing.assert_close(loss_of("ce", weighting="segpgd", progress=0.5),
                               torch.tensor([(0.75 * 3 * small + 0.25 * big) / 4]))
    # CosPGD: cosine of sigmoid(logits) = (1/2, 3/4) or (3/4, 1/2) with the one-hot reference
    right, wrong = 0.75 / math.hypot(0.5, 0.75), 0.5 / math.hypot(0.5, 0.75)
    torch.testing.assert_close(loss_of("ce", weighting="cospgd"),
                               torch.tensor([(3 * right * small + wrong * big) / 4]))
    torch.testing.assert_close(loss_of("ce", weighting="cospgd", targeted=True),
                               torch.tensor([(3 * (1 - right) * small + (1 - wrong) * big) / 4]))
    with pytest.raises(ValueError, match="Argument weighting 'segpgd' weights pixel losses only"):
        loss_of("iou", weighting="segpgd")


def test_fast_mean_iou_is_mean_iou():
    g = torch.Generator().manual_seed(0)
    pred, ref = torch.randint(0, 4, (3, 9, 7), generator=g), torch.randint(0, 4, (3, 9, 7), generator=g)
    ref[1] = 0  # classes absent from both count as 1
    pred[1] = ref[1]
    torch.testing.assert_close(fast_mean_iou(pred, ref, 4), mean_iou(pred, ref, 4))


def test_checkpoints_follow_croce_and_hein():
    # p: 0, .22, .41, .57, .70, .80, .87, .93, .99
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [3, 5, 6, 7, 8, 9, 10]


def test_step_size_halves_when_fewer_than_rho_of_the_steps_improved_or_nothing_changed():
    """Three samples, 22 steps to the first checkpoint of 100: the loss rises on 17, 16 and 22 of them (rho 0.75:
    16.5); the third then stalls for the 19 steps to the second checkpoint, the first keeps rising."""
    x = torch.zeros(3, 1, 1, 1)
    rises = torch.tensor([17, 16, 22])
    state, restart = _update(None, x, x, torch.zeros(3), False, radius=0.5, rho=0.75)
    assert restart is None and torch.equal(state["eta"], torch.ones(3))  # 2 eps at first
    f = torch.zeros(3)
    for k in range(1, 23):
        f = torch.where(k <= rises, f + 1, f - 0.1)
        state, restart = _update(state, x, x, f, k == 22, radius=0.5, rho=0.75)
    assert restart.flatten().tolist() == [False, True, False]
    torch.testing.assert_close(state["eta"], torch.tensor([1.0, 0.5, 1.0]))
    for k in range(23, 42):
        f = torch.where(torch.tensor([True, False, False]), f + 1, f)
        state, restart = _update(state, x, x, f, k == 41, radius=0.5, rho=0.75)
    # sample 1: its step was halved at the last checkpoint and its best loss did not change, but only 0 of 19
    # steps improved; sample 2: unchanged step and best loss
    assert restart.flatten().tolist() == [False, True, True]
    torch.testing.assert_close(state["eta"], torch.tensor([1.0, 0.25, 0.5]))


def test_first_step_is_a_signed_step_of_two_eps_projected():
    """Cross-entropy on the linear segmenter keeps its gradient's sign: after one step every pixel with a gradient
    sits on the eps ball (the best iterate is that point: the untargeted score cannot rise)."""
    net = linear_segmenter(3)
    images, _ = make_case(3, 2)
    with torch.no_grad():
        truth = net(images).argmax(1, keepdim=True)
    res = apgd(net, images, truth, eps=0.05, steps=1, bounds=(0.0, 1.0), loss="ce", targeted=False)
    moved = (res.adv - images).abs()
    assert ((moved - 0.05).abs() < 1e-6).float().mean() > 0.6
    check_invariants(net, images, res, eps=0.05)


@pytest.mark.parametrize("loss", ["masked_ce", "balanced_ce", "js", "ce", "margin", "iou", "dice"])
@pytest.mark.parametrize("radius_reduction", [False, True])
def test_untargeted_apgd_breaks_the_reference_with_every_loss(loss, radius_reduction):
    net = linear_segmenter(3).train()
    images, _ = make_case(3, 4)
    with torch.no_grad():
        truth = net(images).argmax(1, keepdim=True)
    res = apgd(net, images, truth, eps=0.3, steps=10, bounds=(0.0, 1.0), loss=loss, targeted=False,
               radius_reduction=radius_reduction)
    check_invariants(net, images, res, eps=0.3)
    assert net.training
    torch.testing.assert_close(res.score, mean_iou(res.pred, truth, 3))
    assert res.score.max() < 0.1


@pytest.mark.parametrize("loss, weighting", [("masked_ce", "none"), ("balanced_ce", "segpgd"), ("js", "cospgd"),
                                             ("margin", "none"), ("iou", "none")])
def test_targeted_apgd_reaches_the_target_and_stops_each_sample(loss, weighting):
    net = linear_segmenter(3)
    images, target = make_case(3, 4)
    res = apgd(net, images, target, eps=0.9, steps=40, bounds=(0.0, 1.0), loss=loss, weighting=weighting,
               stop_score=1.0)
    check_invariants(net, images, res, eps=0.9)
    torch.testing.assert_close(res.score, torch.ones(4))
    torch.testing.assert_close(res.score, paper_iou(res.pred, target))
    assert (res.steps < 40).all()


def test_untargeted_early_exit_per_sample():
    net = linear_segmenter(3)
    images, _ = make_case(3, 8)
    with torch.no_grad():
        truth = net(images).argmax(1, keepdim=True)
    res = apgd(net, images, truth, eps=0.2, steps=40, bounds=(0.0, 1.0), loss="masked_ce", targeted=False,
               stop_score=0.5, momentum=1.0)
    assert (res.score <= 0.5).all() and (res.steps < 40).all()
    torch.testing.assert_close(res.score, mean_iou(res.pred, truth, 3))


class CountingNet(torch.nn.Module):
    """The linear segmenter, counting the samples of every forward pass."""

    def __init__(self):
        super().__init__()
        self.net, self.rows = linear_segmenter(3), 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.net(x)


@pytest.mark.parametrize("radius_reduction", [False, True])
@pytest.mark.parametrize("stop", [None, 1.0])
def test_budget_counts_forward_and_backward_passes(radius_reduction, stop):
    """``steps`` passes per sample at most, each one forward and one backward; one last forward pass."""
    net = CountingNet()
    images, target = make_case(3, 4)
    res = apgd(net, images, target, eps=0.3, steps=12, bounds=(0.0, 1.0), loss="ce", stop_score=stop,
               radius_reduction=radius_reduction)
    if stop is None:
        assert res.steps.tolist() == [12] * 4
    assert (res.steps <= 12).all()
    assert net.rows == int((res.steps + 1).sum())


@pytest.mark.parametrize("loss", ["balanced_ce", "iou"])
def test_apgd_batch_invariance(loss):
    """A sample attacked alone and inside a batch of 8 gives the same result."""
    net = linear_segmenter(3)
    images, target = make_case(3, 8)
    run = lambda x, t: apgd(net, x, t, eps=0.3, steps=30, bounds=(0.0, 1.0), loss=loss, stop_score=0.9)  # noqa: E731
    batch = run(images, target)
    assert len(set(batch.steps.tolist())) > 1
    for i in (0, 5):
        alone = run(images[i:i + 1], target[i:i + 1])
        torch.testing.assert_close(alone.adv[0], batch.adv[i])
        assert alone.steps[0] == batch.steps[i]


def test_progress_observer_sees_every_step():
    net = linear_segmenter(3)
    images, target = make_case(3, 2)
    seen = []
    apgd(net, images, target, eps=0.1, steps=5, bounds=(0.0, 1.0), progress=lambda s, a, v: seen.append((s, len(a))))
    assert seen == [(s, 2) for s in range(6)]


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, r"Argument eps should be a non-negative float, got -0.1."),
    ({"steps": 2.5}, r"Argument steps should be a non-negative integer, got 2.5."),
    ({"loss": "masked_cee"}, r"Argument loss should be one of .* Did you mean 'masked_ce'\?"),
    ({"weighting": "segpg"}, r"Argument weighting should be one of none, segpgd, cospgd, got 'segpg'"),
    ({"loss": "margin", "weighting": "cospgd"}, r"Argument weighting 'cospgd' weights pixel losses only"),
    ({"rho": 0.0}, r"Argument rho should be a float in \(0, 1\], got 0.0."),
    ({"momentum": 1.5}, r"Argument momentum should be a float in \(0, 1\], got 1.5."),
    ({"stop_score": 2.0}, r"Argument stop_score should be a float in \[0, 1\] or None, got 2.0."),
    ({"classes": [5]}, r"Argument classes should list class indices in 0..2"),
])
def test_apgd_argument_errors(kwargs, match):
    images, target = make_case(3, 2)
    with pytest.raises(ValueError, match=match):
        apgd(linear_segmenter(3), images, target, **({"eps": 0.1, "steps": 2, "bounds": (0.0, 1.0)} | kwargs))


def idle(model, images, target, *, eps, stop_score=None):
    """An attack that changes nothing and spends 3 passes."""
    with torch.no_grad():
        pred = model(images).argmax(1, keepdim=True)
    return AttackResult(adv=images.clone(), steps=torch.full((len(images),), 3), pred=pred,
                        score=torch.zeros(len(images)))


def clean_case(batch):
    """The linear segmenter, images and its own clean prediction as the reference."""
    net = linear_segmenter(3)
    images, _ = make_case(3, batch)
    with torch.no_grad():
        return net, images, net(images).argmax(1, keepdim=True)


def test_worst_case_keeps_the_winner_and_skips_broken_samples():
    net, images, truth = clean_case(4)
    strong = functools.partial(apgd, steps=10, bounds=(0.0, 1.0), loss="masked_ce", targeted=False)
    res = worst_case(net, images, truth, [("idle", idle), ("apgd", strong), ("late", idle)], eps=0.3,
                     stop_score=0.2)
    torch.testing.assert_close(res.clean_score, torch.ones(4))
    assert res.winner.tolist() == [1] * 4 and (res.score <= 0.2).all()
    torch.testing.assert_close(res.score, mean_iou(res.pred, truth, 3))
    assert (res.adv - images).abs().max() <= 0.3 + 1e-6
    assert res.attack_passes[0].tolist() == [3] * 4 and res.attack_passes[2].tolist() == [0] * 4
    assert torch.isnan(res.attack_scores[2]).all() and torch.equal(res.passes, 3 + res.attack_passes[1])
    assert (res.attack_passes[1] < 10).all()  # APGD left each sample once broken


def test_sweep_without_early_exit_runs_every_attack_on_every_sample():
    net, images, truth = clean_case(2)
    strong = functools.partial(apgd, steps=6, bounds=(0.0, 1.0), loss="balanced_ce", targeted=False)
    results = robustness_sweep(net, images, truth, {"apgd": strong, "late": idle}, eps=[0.0, 0.3], stop_score=0.2,
                               exit_early=False)
    assert [r.eps for r in results] == [0.0, 0.3]
    torch.testing.assert_close(results[0].score, torch.ones(2))  # eps 0 changes nothing
    assert results[0].winner.tolist() == [-1, -1]
    assert not torch.isnan(results[1].attack_scores).any()
    with pytest.raises(ValueError, match="Argument eps should be a non-empty list of non-negative floats"):
        robustness_sweep(net, images, truth, {"late": idle}, eps=[-0.1])
    with pytest.raises(ValueError, match="Argument attacks should be a non-empty mapping"):
        worst_case(net, images, truth, [], eps=0.1)


def test_score_classes_make_the_score_and_the_early_exit_about_those_classes():
    """Targeted with score_classes [1]: the score is class 1's IoU with the target, the ensemble's too, and a
    sample stops once that alone reaches stop_score."""
    net = linear_segmenter(3)
    images, target = make_case(3, 4)
    run = functools.partial(apgd, steps=12, bounds=(0.0, 1.0), loss="masked_ce", targeted=True)
    res = run(net, images, target, eps=0.3, score_classes=[1])
    torch.testing.assert_close(res.score, paper_iou(res.pred, target, classes=[1]))
    early = run(net, images, target, eps=0.3, score_classes=[1], stop_score=0.5)
    done = early.score >= 0.5
    assert done.any() and (early.steps[done] < 12).all()
    ens = worst_case(net, images, target, {"apgd": run}, eps=0.3, targeted=True, stop_score=0.5, score_classes=[1])
    torch.testing.assert_close(ens.score, paper_iou(ens.pred, target, classes=[1]))
    torch.testing.assert_close(ens.clean_score, paper_iou(net(images).argmax(1, keepdim=True), target, classes=[1]))
    for bad in ([0], [3], [], "1"):
        with pytest.raises(ValueError, match=r"Argument score_classes should list foreground class indices in 1..2"):
            run(net, images, target, eps=0.3, score_classes=bad)


def test_sweep_starts_each_radius_from_the_smaller_ones_worst_case():
    """A perturbation inside a small ball lies inside every larger one: a sample broken at 0.3 is not attacked at
    0.4 (0 passes, same image), and no sample's worst case gets better as eps grows, whatever order eps is given in."""
    net, images, truth = clean_case(4)
    strong = functools.partial(apgd, steps=10, bounds=(0.0, 1.0), loss="masked_ce", targeted=False)
    small, large = robustness_sweep(net, images, truth, {"apgd": strong}, eps=[0.3, 0.4], stop_score=0.2)
    broken = small.score <= 0.2
    assert broken.any() and (small.passes[broken] > 0).all()
    assert (large.passes[broken] == 0).all() and torch.isnan(large.attack_scores[0, broken]).all()
    torch.testing.assert_close(large.adv[broken], small.adv[broken])
    assert torch.equal(large.winner[broken], small.winner[broken])
    weak = functools.partial(apgd, steps=2, bounds=(0.0, 1.0), loss="masked_ce", targeted=False)
    results = robustness_sweep(net, images, truth, {"apgd": weak}, eps=[0.2, 0.05, 0.1], exit_early=False)
    assert [r.eps for r in results] == [0.2, 0.05, 0.1]
    assert (results[2].score <= results[1].score).all() and (results[0].score <= results[2].score).all()
    with pytest.raises(ValueError, match="Argument smaller should be the worst case of the same 4 samples at a radius"):
        worst_case(net, images, truth, {"apgd": weak}, eps=0.05, smaller=results[0])


def test_robustness_recipe_writes_rows_per_case_and_eps_a_report_and_resumes(bundle_root, tiny_datasets, tmp_path):
    from monai.bundle import ConfigWorkflow

    from bundle.config import bundle_config

    torch.manual_seed(0)
    weights = tmp_path / "cxr.pt"
    torch.save(bundle_config("cxr").get_parsed_content("network_def").state_dict(), weights)
    out = tmp_path / "robust"
    files = [str(bundle_root / "configs" / n) for n in ("common.yaml", "cxr.yaml", "attack.yaml", "robustness.yaml")]

    def run(**extra):
        wf = ConfigWorkflow(config_file=files, meta_file=str(bundle_root / "configs" / "metadata.json"),
                            workflow_type="infer", bundle_root=str(bundle_root), dataset_dir=str(tiny_datasets["cxr"]),
                            output_dir=str(out), model_file=str(weights), batch_size=2, robustness_steps=2,
                            robustness_eps=[0.01, 0.02], robustness_stop=0.0, model_grid=[64, 64], **extra)
        wf.initialize()
        wf.run()
        wf.finalize()

    run(num_cases=1)
    run()  # resumes with the second case
    with open(out / "metrics.csv", newline="") as f:
        rows = list(__import__("csv").DictReader(f))
    assert sorted((r["case"], float(r["eps"])) for r in rows) == [
        ("cxr_0006", 0.01), ("cxr_0006", 0.02), ("cxr_0007", 0.01), ("cxr_0007", 0.02)]
    for r in rows:
        assert float(r["linf"]) <= float(r["eps"]) + 1e-6
        assert int(r["passes"]) == sum(int(r[f"passes_{a}"]) for a in ("apgd_iou", "apgd_balanced_ce", "apgd_margin"))
        assert float(r["worst_score"]) <= float(r["clean_score"])
        assert r["winner"] in ("clean", "apgd_iou", "apgd_balanced_ce", "apgd_margin")
    report = (out / "report.md").read_text()
    assert "Worst case over 3 attacks on cxr: 2 cases (reference: ground truth)" in report
    assert "## By structure size" in report and "PSNR" in report
    assert (out / "robustness_miou.png").stat().st_size > 0 and (out / "robustness_structures.png").is_file()
    assert json.loads((out / "settings.json").read_text())["attack"]["eps"] == [0.01, 0.02]

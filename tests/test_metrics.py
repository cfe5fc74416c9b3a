"""Known answers for the papers' metrics."""

import pytest
import torch

from bundle.metrics import (class_dice, class_iou, errors_at_outline, heart_lung_contrast, l2_norm, linf_norm,
                            mean_iou, paper_iou, pixel_accuracy)

PRED = torch.tensor([[[[0, 1], [2, 2]]]])
GT = torch.tensor([[[[0, 1], [2, 0]]]])


def test_class_scores_known_answer():
    torch.testing.assert_close(class_iou(PRED, GT, 3), torch.tensor([[0.5, 1.0, 0.5]]))
    torch.testing.assert_close(class_dice(PRED, GT, 3), torch.tensor([[2 / 3, 1.0, 2 / 3]]))
    torch.testing.assert_close(mean_iou(PRED, GT, 3), torch.tensor([0.75]))


def test_paper_iou_counts_only_foreground_union():
    # union of foreground pixels = 3, agreeing among them = 2
    torch.testing.assert_close(paper_iou(PRED, GT), torch.tensor([2 / 3]))
    zero = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    torch.testing.assert_close(paper_iou(zero, zero), torch.tensor([1.0]))
    torch.testing.assert_close(pixel_accuracy(PRED, GT), torch.tensor([0.75]))


def test_scores_over_chosen_classes_alone():
    # class 2 alone: predicted at 2 pixels, true at 1 of them -> 1 / 2; class 1 alone: 1
    torch.testing.assert_close(paper_iou(PRED, GT, classes=[2]), torch.tensor([0.5]))
    torch.testing.assert_close(paper_iou(PRED, GT, classes=[1]), torch.tensor([1.0]))
    torch.testing.assert_close(mean_iou(PRED, GT, 3, classes=[2]), torch.tensor([0.5]))


def test_absent_class_scores_one_and_batch_is_per_sample():
    batch = torch.cat([PRED, GT])
    iou = class_iou(batch, torch.cat([GT, GT]), 4)
    assert iou.shape == (2, 4)
    torch.testing.assert_close(iou[:, 3], torch.ones(2))
    torch.testing.assert_close(iou[1], torch.ones(4))


def test_norms_per_sample():
    delta = torch.zeros(2, 3, 4, 4)
    delta[0, 0, 0, 0], delta[0, 1, 1, 1] = 3.0, -4.0
    torch.testing.assert_close(l2_norm(delta), torch.tensor([5.0, 0.0]))
    torch.testing.assert_close(linf_norm(delta), torch.tensor([4.0, 0.0]))


def test_label_shape_error():
    with pytest.raises(ValueError, match=r"Argument label should have one channel"):
        class_iou(torch.zeros(1, 2, 4, 4, dtype=torch.long), GT, 3)


def test_heart_lung_contrast_is_the_step_between_the_medians_per_sample():
    label = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    label[:, :, :4, :4], label[:, :, :4, 4:], label[:, :, 4:, 2:6] = 1, 2, 3
    image = torch.full((2, 1, 8, 8), 0.9)
    image[label == 1], image[label == 2] = -0.3, -0.3
    image[label == 3] = 0.5
    image[1] *= 0.5
    image[0, 0, 0, 0] = -1.0  # one outlier moves a mean, not a median
    torch.testing.assert_close(heart_lung_contrast(image, label), torch.tensor([0.8, 0.4]))
    label[1][label[1] == 3] = 0
    with pytest.raises(ValueError, match=r"should mark both lungs \(1, 2\) and the heart \(3\) in every sample"):
        heart_lung_contrast(image, label)


def test_errors_at_outline_tells_a_shifted_outline_from_a_hole():
    target = torch.zeros(2, 1, 12, 12, dtype=torch.long)
    target[:, :, 3:9, 3:9] = 3
    pred = target.clone()
    pred[0, :, 3:9, 9] = 3  # sample 0: the shape one column too wide, all on its outline
    pred[1, :, 5:7, 5:7] = 0  # sample 1: a hole in the middle, away from it
    pred[1, :, 3, 3] = 0  # and one corner pixel
    wrong, share = errors_at_outline(pred, target, 3)
    torch.testing.assert_close(wrong, torch.tensor([6.0, 5.0]))
    torch.testing.assert_close(share, torch.tensor([1.0, 0.2]))
    torch.testing.assert_close(errors_at_outline(target, target, 3)[1], torch.zeros(2))
    with pytest.raises(ValueError, match=r"should be \(B, 1, H, W\) maps of the same shape"):
        errors_at_outline(pred[:, 0], target[:, 0], 3)

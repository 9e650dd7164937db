"""Semantic probabilities from marched logits: opacity decides background, softmax shares the rest."""

from __future__ import annotations

import pytest
import torch

from engine.triplane.semantics import BACKGROUND, label_map, mean_iou, semantic_nll, semantic_probs


def test_probs_sum_to_one_per_pixel() -> None:
    torch.manual_seed(0)
    sem = torch.randn(2, 5, 4, 4) * 3
    op = torch.rand(2, 1, 4, 4)
    p = semantic_probs(sem, op)
    assert p.shape == (2, 5, 4, 4)
    assert torch.all(p >= 0)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, 4, 4), atol=1e-6)
    assert torch.allclose(p[:, BACKGROUND : BACKGROUND + 1], 1 - op)


@pytest.mark.parametrize("scale", [0.0, 1.0, 1e3])
def test_empty_ray_is_background_whatever_the_logits(scale: float) -> None:
    torch.manual_seed(1)
    sem = torch.randn(1, 5, 3, 3) * scale
    op = torch.zeros(1, 1, 3, 3)
    p = semantic_probs(sem, op)
    assert torch.equal(p[:, BACKGROUND], torch.ones(1, 3, 3))
    assert torch.equal(p[:, 1:], torch.zeros(1, 4, 3, 3))
    assert torch.equal(label_map(sem, op), torch.zeros(1, 3, 3, dtype=torch.long))


def test_opaque_pixel_takes_the_largest_logit() -> None:
    sem = torch.zeros(1, 4, 1, 2)
    sem[0, 2, 0, 0] = 5.0  # pixel 0: class 2
    sem[0, 3, 0, 1] = 5.0  # pixel 1: class 3
    op = torch.ones(1, 1, 1, 2)
    assert label_map(sem, op).tolist() == [[[2, 3]]]


def test_nll_lower_for_the_right_label() -> None:
    sem = torch.zeros(1, 4, 2, 2)
    sem[0, 2] = 4.0
    op = torch.full((1, 1, 2, 2), 0.95)
    right = semantic_nll(sem, op, torch.full((1, 2, 2), 2))
    wrong = semantic_nll(sem, op, torch.full((1, 2, 2), 1))
    background = semantic_nll(sem, op, torch.zeros(1, 2, 2, dtype=torch.long))
    assert right < wrong
    assert right < background


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        semantic_probs(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2))


def test_mean_iou_on_hand_made_maps() -> None:
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 2]])
    miou, per = mean_iou(pred, target, num_classes=4)
    # class 0: inter 3, union 4; class 1: inter 3, union 5; class 2: inter 0, union 1; class 3 absent.
    assert per == pytest.approx({0: 3 / 4, 1: 3 / 5, 2: 0.0})
    assert miou == pytest.approx((3 / 4 + 3 / 5 + 0.0) / 3)
    assert mean_iou(target, target, num_classes=4) == (1.0, {0: 1.0, 1: 1.0})

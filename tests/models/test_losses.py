"""Lovasz-softmax and the collision-aware planning loss on hand-computed cases."""
import math

import torch

from drivepi.models.losses import PlanCollisionLoss, box_signed_distance, lovasz_softmax
from drivepi.registry import MODELS


def test_lovasz_softmax_hand_computed():
    # two voxels, labels [0, 1]; p(class 0) = [0.8, 0.3].
    # class 0: errors [0.2, 0.3] sorted -> fg [0, 1], Jaccard steps [0.5, 0.5] -> 0.3*0.5 + 0.2*0.5 = 0.25
    # class 1: errors [0.2, 0.3] sorted -> fg [1, 0], Jaccard steps [1, 0]     -> 0.3
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    assert torch.allclose(lovasz_softmax(probs, torch.tensor([0, 1])), torch.tensor(0.275))


def test_lovasz_softmax_equals_one_minus_iou_for_hard_predictions():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 1, 0, 1, 2, 2])
    probs = torch.nn.functional.one_hot(predicted, 3).float()
    ious = []
    for c in range(3):
        inter = ((labels == c) & (predicted == c)).sum().item()
        union = ((labels == c) | (predicted == c)).sum().item()
        ious.append(inter / union)
    expected = 1 - sum(ious) / 3
    assert math.isclose(lovasz_softmax(probs, labels).item(), expected, rel_tol=1e-6)
    assert lovasz_softmax(torch.nn.functional.one_hot(labels, 3).float(), labels).item() == 0


def test_lovasz_loss_module_gradients():
    loss = MODELS.build(dict(type='LovaszSoftmaxLoss', loss_weight=2.0))
    logits = torch.randn(50, 4, requires_grad=True)
    labels = torch.randint(0, 4, (50,))
    value = loss(logits, labels)
    value.backward()
    assert torch.allclose(value, 2 * lovasz_softmax(logits.softmax(-1), labels))
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_lovasz_subset_estimates_the_full_loss():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (20000,))
    logits = torch.randn(20000, 5) + 2 * torch.nn.functional.one_hot(labels, 5)
    full = MODELS.build(dict(type='LovaszSoftmaxLoss'))(logits, labels)
    assert MODELS.build(dict(type='LovaszSoftmaxLoss', max_voxels=20000))(logits, labels) == full
    estimate = MODELS.build(dict(type='LovaszSoftmaxLoss', max_voxels=4000))(logits, labels)
    assert estimate != full and abs(estimate - full) < 0.02


def test_box_signed_distance_rotated_box():
    box = torch.tensor([[0.0, 10.0, 0.0, 4.0, 2.0, 1.5, math.pi / 2]])  # 4 m long along +y
    points = torch.tensor([[0.0, 11.5], [1.5, 10.0], [0.0, 14.0], [3.0, 14.0], [0.0, 10.0]])
    expected = torch.tensor([-0.5, 0.5, 2.0, math.hypot(2.0, 2.0), -1.0])
    assert torch.allclose(box_signed_distance(points, box)[:, 0], expected, atol=1e-5)


def straight_plan():
    return torch.tensor([[[2.0 * (t + 1), 0.0] for t in range(6)]])


def test_collision_loss_through_a_box_hand_computed():
    loss = PlanCollisionLoss(ego_length=4.084, ego_width=1.85)
    boxes = [torch.zeros(0, 7)] * 6
    boxes[4] = torch.tensor([[10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])  # the ego stands at (10, 0) at step 4
    # circles at x = 10 and 10 +- 1.117 (radius 0.925): depths 0.925 + 1 and twice 0.925 + 0.883
    expected = (1.925 + 2 * (0.925 + 2 - 1.117)) / 6
    value = loss(straight_plan(), [boxes], torch.ones(1, 6))
    assert math.isclose(value.item(), expected, rel_tol=1e-5)


def test_collision_loss_is_zero_clear_of_boxes_and_pushes_away():
    loss = PlanCollisionLoss(margin=0.0)
    boxes = [torch.tensor([[10.0, 5.0, 0.0, 4.0, 2.0, 1.5, 0.0]])] * 6  # 5 m to the left, 2.1 m gap
    assert loss(straight_plan(), [boxes], torch.ones(1, 6)) == 0
    plan = straight_plan().requires_grad_(True)
    near = [torch.tensor([[10.0, 1.5, 0.0, 4.0, 2.0, 1.5, 0.0]])] * 6
    value = loss(plan, [near], torch.ones(1, 6))
    value.backward()
    assert value > 0 and plan.grad[0, 4, 1] > 0  # descending the gradient moves the ego away (to -y)
    masked = loss(straight_plan(), [near], torch.tensor([[1.0, 1, 1, 1, 0, 1]]))
    assert masked < value  # steps outside the mask do not count

"""Lovasz-softmax and the collision-aware planning loss on hand-computed cases, and their batched (sync-free)
forms against the per-class and per-sample loops they replaced."""
import math

import pytest
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


# ----------------------------------------------------------------------------- fast paths vs per-class/per-sample loops
def loop_lovasz_softmax(probs, labels):
    """The per-class loop the vectorised loss replaced (one sort per present class)."""
    if probs.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in labels.unique():
        foreground = (labels == c).to(probs.dtype)
        errors, order = (foreground - probs[:, c]).abs().sort(descending=True)
        gt = foreground[order]
        jaccard = 1.0 - (gt.sum() - gt.cumsum(0)) / (gt.sum() + (1.0 - gt).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
        losses.append(errors @ jaccard)
    return torch.stack(losses).mean()


@pytest.mark.parametrize('skip_absent', [False, True])  # False: what a GPU runs (every class, absent ones weigh 0)
def test_lovasz_all_classes_at_once_equals_the_per_class_loop(skip_absent):
    torch.manual_seed(0)
    for trial in range(12):
        n, c = int(torch.randint(1, 200, ())), int(torch.randint(2, 7, ()))
        logits = torch.randn(n, c, dtype=torch.float64, requires_grad=True)
        if trial == 1:  # ties
            logits = (8 * torch.nn.functional.one_hot(torch.randint(0, c, (n,)), c).double()).requires_grad_(True)
        labels = torch.randint(0, max(1, c - 2), (n,))  # the last classes are absent
        valid = torch.rand(n) < 0.6
        if trial == 2:
            valid[:] = False  # no voxel counts
        for mask in (None, valid):
            fast = lovasz_softmax(logits.softmax(-1), labels, mask, skip_absent=skip_absent)
            probs = logits.softmax(-1)
            slow = loop_lovasz_softmax(probs if mask is None else probs[mask], labels if mask is None else labels[mask])
            assert torch.allclose(fast, slow, atol=1e-12), (trial, mask is None)
            grad_fast, = torch.autograd.grad(fast, logits)
            grad_slow = torch.autograd.grad(slow, logits, allow_unused=True)[0]
            assert torch.allclose(grad_fast, torch.zeros_like(logits) if grad_slow is None else grad_slow, atol=1e-12)


def test_lovasz_subset_of_valid_voxels():
    from drivepi.models.losses.lovasz_softmax import random_valid_subset
    valid = torch.rand(1000) < 0.3
    subset = random_valid_subset(valid, 100)
    assert len(set(subset.tolist())) == 100 and valid[subset].all()  # enough valid voxels: only those
    subset = random_valid_subset(valid, 600)
    assert set(valid.nonzero().squeeze(1).tolist()) <= set(subset.tolist())  # too few: every one of them
    logits, labels = torch.randn(1000, 4), torch.randint(0, 4, (1000,))
    loss = MODELS.build(dict(type='LovaszSoftmaxLoss', max_voxels=int(valid.sum())))
    # max_voxels = the number of valid voxels: the subset is all of them (in some order)
    assert torch.allclose(loss(logits, labels, valid), lovasz_softmax(logits[valid].softmax(-1), labels[valid]))


def loop_collision_loss(pred_traj, fut_boxes, traj_mask, ego_length, ego_width, margin):
    """The per-sample, per-step loop the batched loss replaced."""
    total = pred_traj.sum() * 0.0
    for traj, boxes_per_step, mask in zip(pred_traj, fut_boxes, traj_mask):
        previous = torch.cat([traj.new_zeros(1, 2), traj[:-1]])
        heading = (traj - previous) / (traj - previous).norm(dim=-1, keepdim=True).clamp(min=1e-3)
        centres = traj[:, None, :] + torch.tensor([-1.0, 0.0, 1.0])[None, :, None] * (ego_length - ego_width) / 2 \
            * heading[:, None, :]
        for t, boxes in enumerate(boxes_per_step):
            if len(boxes) and mask[t] > 0:
                distance = box_signed_distance(centres[t], boxes)
                total = total + (ego_width / 2 + margin - distance).clamp(min=0).sum()
    return total / traj_mask.sum().clamp(min=1)


def test_batched_collision_loss_equals_the_per_sample_loop():
    torch.manual_seed(0)
    loss = PlanCollisionLoss(ego_length=4.084, ego_width=1.85, margin=0.3)
    for _ in range(10):
        b = int(torch.randint(1, 5, ()))
        plan = (2 * torch.randn(b, 6, 2)).cumsum(1).requires_grad_(True)
        fut_boxes = []
        for i in range(b):  # fewer step lists than steps, empty steps, rotated boxes around the plan
            counts = torch.randint(0, 4, (int(torch.randint(0, 7, ())),)).tolist()
            fut_boxes.append([torch.cat([plan[i, t].detach() + 4 * torch.randn(k, 2), torch.randn(k, 1),
                                         0.5 + 4 * torch.rand(k, 3), 3 * torch.randn(k, 1)], 1)
                              for t, k in enumerate(counts)])
        mask = (torch.rand(b, 6) < 0.7).float()
        fast, slow = loss(plan, fut_boxes, mask), loop_collision_loss(plan, fut_boxes, mask, 4.084, 1.85, 0.3)
        assert torch.allclose(fast, slow, atol=1e-6)
        grads = [torch.autograd.grad(value, plan, allow_unused=True)[0] for value in (fast, slow)]
        grads = [torch.zeros_like(plan) if g is None else g for g in grads]
        assert torch.allclose(*grads, atol=1e-6)
    no_boxes = [[torch.zeros(0, 7)] * 6, []]
    assert loss(torch.randn(2, 6, 2), no_boxes, torch.ones(2, 6)) == 0


def test_pad_future_boxes_layout():
    from drivepi.models.losses.plan_collision_loss import pad_future_boxes
    a, b = torch.ones(2, 7), 2 * torch.ones(1, 7)
    boxes, valid = pad_future_boxes([[a, torch.zeros(0, 7)], [], [b]], 3)
    assert boxes.shape == (3, 3, 2, 7) and valid.tolist() == [[[True, True], [False, False], [False, False]],
                                                             [[False, False]] * 3,
                                                             [[True, False], [False, False], [False, False]]]
    assert torch.equal(boxes[0, 0], a) and torch.equal(boxes[2, 0, 0], b[0])
    assert (boxes[~valid][:, :2] > 1e3).all()  # padding boxes lie far away
    loss = PlanCollisionLoss()
    plan, fut = straight_plan(), [[torch.tensor([[10.0, 1.0, 0.0, 4.0, 2.0, 1.5, 0.0]])] * 6]
    assert loss(plan, pad_future_boxes(fut, 6), torch.ones(1, 6)) == loss(plan, fut, torch.ones(1, 6)) > 0

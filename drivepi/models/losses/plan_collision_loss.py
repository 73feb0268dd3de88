"""Collision-aware planning loss: penetration of the ego footprint into future agent boxes.

The loss of a batch is computed at once: the per-sample, per-step box lists are padded into one
``(B, T, N, 7)`` tensor with a validity mask (:func:`pad_future_boxes`, sizes known on the host), so no
Python loop over samples or steps reads a GPU value back.
"""
from typing import Sequence, Tuple

import torch
from torch import nn

from drivepi.device_copies import to_device
from drivepi.geometry import EGO_LENGTH, EGO_WIDTH
from drivepi.registry import MODELS

PAD_BOX_DISTANCE = 1e4  # metres: padding boxes sit this far away (and are masked out as well)


def box_signed_distance(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Signed distance (m) from BEV points to oriented boxes, negative inside.

    Args:
        points: (..., P, 2) x, y.
        boxes: (..., N, 7) ``[x, y, z_bottom, l, w, h, yaw]`` (l along the heading); leading dimensions
            broadcast with those of ``points``.

    Returns:
        (..., P, N) distances.
    """
    offset = points[..., :, None, :] - boxes[..., None, :, :2]
    cos, sin = boxes[..., None, :, 6].cos(), boxes[..., None, :, 6].sin()
    local = torch.stack([offset[..., 0] * cos + offset[..., 1] * sin,
                         -offset[..., 0] * sin + offset[..., 1] * cos], dim=-1)
    excess = local.abs() - boxes[..., None, :, 3:5] / 2
    outside = excess.clamp(min=0).norm(dim=-1)
    inside = excess.max(dim=-1).values.clamp(max=0)
    return outside + inside


def ego_circle_centres(traj: torch.Tensor, ego_length: float, ego_width: float) -> torch.Tensor:
    """Centres of three circles of radius ego_width / 2 covering the ego box at each waypoint.

    Args:
        traj: (..., T, 2) waypoints; the heading at step t is the direction from step t-1 (the origin
            for t = 0) to step t.

    Returns:
        (..., T, 3, 2) rear, middle and front circle centres.
    """
    previous = torch.cat([torch.zeros_like(traj[..., :1, :]), traj[..., :-1, :]], dim=-2)
    step = traj - previous
    heading = step / step.norm(dim=-1, keepdim=True).clamp(min=1e-3)
    half_spacing = (ego_length - ego_width) / 2
    offsets = torch.stack([-heading, torch.zeros_like(heading), heading], dim=-2)  # (..., T, 3, 2)
    return traj[..., None, :] + half_spacing * offsets


def pad_future_boxes(fut_boxes: Sequence[Sequence], num_steps: int,
                     device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-step box lists as one padded tensor.

    Args:
        fut_boxes: B lists of up to ``num_steps`` box sets (N_bt, 7) (tensors on one device, or arrays);
            steps beyond a list's length have no boxes, extra steps are ignored.
        num_steps: T.
        device: of the result (None: that of the boxes, the CPU for arrays).

    Returns:
        boxes float32 (B, T, N, 7), N the largest box count (padding boxes lie ``PAD_BOX_DISTANCE`` away),
        and valid bool (B, T, N). Only box counts (shapes) are read on the host; the values are copied once.
    """
    sets = {(b, t): torch.as_tensor(boxes) for b, steps in enumerate(fut_boxes)
            for t, boxes in enumerate(list(steps)[:num_steps])}
    sets = {key: boxes for key, boxes in sets.items() if len(boxes)}
    num_boxes = max((len(boxes) for boxes in sets.values()), default=0)
    source = next(iter(sets.values())).device if sets else torch.device('cpu')
    device = source if device is None else torch.device(device)
    # host-side layout: destination row of every box in the (B * T * N) padded rows
    rows = torch.cat([torch.arange(len(boxes)) + (b * num_steps + t) * num_boxes for (b, t), boxes in sets.items()]
                     ) if sets else torch.zeros(0, dtype=torch.long)
    size = len(fut_boxes) * num_steps * num_boxes
    valid = torch.zeros(size, dtype=torch.bool).index_fill_(0, rows, True)
    flat = (torch.cat([to_device(boxes.reshape(-1, 7).float(), source) for boxes in sets.values()])
            if sets else torch.zeros(0, 7))
    padded = torch.zeros(size, 7, device=source)
    padded[:, :2] = PAD_BOX_DISTANCE
    padded = padded.index_copy(0, to_device(rows, source), flat)
    shape = (len(fut_boxes), num_steps, num_boxes)
    return to_device(padded, device).view(*shape, 7), to_device(valid, device).view(shape)


@MODELS.register_module()
class PlanCollisionLoss(nn.Module):
    """Mean penetration depth (m) of the ego footprint into the GT agent boxes of each future step.

    The ego box (``ego_length`` x ``ego_width``) is covered by three circles of radius
    ``ego_width / 2``; the loss of a circle is ``relu(radius + margin - signed_distance)`` to each box
    of that step: zero when the plan stays clear of every box, positive when it runs through one.

    Args:
        ego_length, ego_width: ego footprint in metres (default: the nuScenes car of :mod:`drivepi.geometry`).
        margin: extra clearance in metres.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, ego_length: float = EGO_LENGTH, ego_width: float = EGO_WIDTH, margin: float = 0.0,
                 loss_weight: float = 1.0):
        super().__init__()
        self.ego_length, self.ego_width = ego_length, ego_width
        self.margin = margin
        self.loss_weight = loss_weight

    def forward(self, pred_traj: torch.Tensor, fut_boxes: Sequence, traj_mask: torch.Tensor) -> torch.Tensor:
        """Collision loss of a batch.

        Args:
            pred_traj: (B, T, 2) planned waypoints (m, ego frame).
            fut_boxes: B lists of T tensors (N_t, 7) of agent boxes at each future step (see
                :func:`pad_future_boxes`), or that function's ``(boxes, valid)`` for the batch.
            traj_mask: (B, T), steps where it is > 0 count.

        Returns:
            Scalar: sum of penetrations over circles and boxes, averaged over valid steps (float32).
        """
        if isinstance(fut_boxes, tuple) and len(fut_boxes) == 2 and isinstance(fut_boxes[0], torch.Tensor):
            boxes, valid = fut_boxes
        else:
            boxes, valid = pad_future_boxes(fut_boxes, pred_traj.shape[1], pred_traj.device)
        traj = pred_traj.float()
        if boxes.shape[2] == 0:  # no box in the batch (a shape: known on the host)
            return traj.sum() * 0.0
        centres = ego_circle_centres(traj, self.ego_length, self.ego_width)  # (B, T, 3, 2)
        distance = box_signed_distance(centres, boxes.to(traj.device, traj.dtype))  # (B, T, 3, N)
        counted = valid[:, :, None, :] & (traj_mask > 0)[:, :, None, None]
        penetration = (self.ego_width / 2 + self.margin - distance).clamp(min=0) * counted
        return self.loss_weight * penetration.sum() / traj_mask.sum().clamp(min=1)

"""Collision-aware planning loss: penetration of the ego footprint into future agent boxes."""
import torch
from torch import nn

from drivepi.geometry import EGO_LENGTH, EGO_WIDTH
from drivepi.registry import MODELS


def box_signed_distance(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Signed distance (m) from BEV points to oriented boxes, negative inside.

    Args:
        points: (P, 2) x, y.
        boxes: (N, 7) ``[x, y, z_bottom, l, w, h, yaw]`` (l along the heading).

    Returns:
        (P, N) distances.
    """
    offset = points[:, None, :] - boxes[None, :, :2]
    cos, sin = boxes[:, 6].cos(), boxes[:, 6].sin()
    local = torch.stack([offset[..., 0] * cos + offset[..., 1] * sin,
                         -offset[..., 0] * sin + offset[..., 1] * cos], dim=-1)
    excess = local.abs() - boxes[None, :, 3:5] / 2
    outside = excess.clamp(min=0).norm(dim=-1)
    inside = excess.max(dim=-1).values.clamp(max=0)
    return outside + inside


def ego_circle_centres(traj: torch.Tensor, ego_length: float, ego_width: float) -> torch.Tensor:
    """Centres of three circles of radius ego_width / 2 covering the ego box at each waypoint.

    Args:
        traj: (T, 2) waypoints; the heading at step t is the direction from step t-1 (the origin
            for t = 0) to step t.

    Returns:
        (T, 3, 2) rear, middle and front circle centres.
    """
    previous = torch.cat([traj.new_zeros(1, 2), traj[:-1]])
    step = traj - previous
    heading = step / step.norm(dim=-1, keepdim=True).clamp(min=1e-3)
    half_spacing = (ego_length - ego_width) / 2
    return traj[:, None, :] + torch.tensor([-1.0, 0.0, 1.0], device=traj.device)[None, :, None] \
        * half_spacing * heading[:, None, :]


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

    def forward(self, pred_traj: torch.Tensor, fut_boxes: list, traj_mask: torch.Tensor) -> torch.Tensor:
        """Collision loss of a batch.

        Args:
            pred_traj: (B, T, 2) planned waypoints (m, ego frame).
            fut_boxes: B lists of T tensors (N_t, 7) of agent boxes at each future step.
            traj_mask: (B, T), 1 where the step is valid.

        Returns:
            Scalar: sum of penetrations over circles and boxes, averaged over valid steps.
        """
        total = pred_traj.sum() * 0.0
        for traj, boxes_per_step, mask in zip(pred_traj, fut_boxes, traj_mask):
            centres = ego_circle_centres(traj, self.ego_length, self.ego_width)
            for t, boxes in enumerate(boxes_per_step):
                if len(boxes) and mask[t] > 0:
                    distance = box_signed_distance(centres[t], boxes.to(traj))
                    total = total + (self.ego_width / 2 + self.margin - distance).clamp(min=0).sum()
        return self.loss_weight * total / traj_mask.sum().clamp(min=1)

"""Planning head: ego waypoints from the LLM hidden states of the planning queries."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.registry import MODELS


@MODELS.register_module()
class PlanningHead(BaseModule):
    """Waypoints (B, T, 2) in metres (ego frame) conditioned on the driving command.

    The Q query hidden states are flattened and projected; a learned embedding of the command
    (0 right, 1 left, 2 straight) and, optionally, a projection of the ego status
    (vx, vy, ax, ay, yaw_rate) are added; an MLP predicts per-step displacements whose cumulative
    sum gives the waypoints.

    Args:
        in_channels: hidden size D of the query states (B, Q, D).
        num_queries: Q.
        hidden_channels: width of the MLP.
        num_waypoints: T (6 at 0.5 s).
        num_commands: number of driving commands.
        use_ego_status: add the ego status (B, 5) as input.
        loss_plan: config of the waypoint regression loss (masked by ``gt_traj_mask``).
        loss_collision: config of the collision-aware loss against future agent boxes.
    """

    def __init__(self, in_channels: int, num_queries: int = 6, hidden_channels: int = 256,
                 num_waypoints: int = 6, num_commands: int = 3, use_ego_status: bool = False,
                 loss_plan: dict = dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_collision: dict = dict(type='PlanCollisionLoss', loss_weight=1.0), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels, self.num_queries, self.num_waypoints = in_channels, num_queries, num_waypoints
        self.num_commands = num_commands
        self.query_proj = nn.Linear(num_queries * in_channels, hidden_channels)
        self.command_embed = nn.Embedding(num_commands, hidden_channels)
        self.ego_proj = nn.Linear(5, hidden_channels) if use_ego_status else None
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                                 nn.Linear(hidden_channels, num_waypoints * 2))
        self.loss_plan = MODELS.build(loss_plan)
        self.loss_collision = MODELS.build(loss_collision)

    def forward(self, query_states: torch.Tensor, command: torch.Tensor,
                ego_status: Optional[torch.Tensor] = None) -> torch.Tensor:
        """query_states (B, Q, D), command long (B,), ego_status (B, 5) -> waypoints (B, T, 2)."""
        b = query_states.shape[0]
        if query_states.shape[1:] != (self.num_queries, self.in_channels):
            raise ValueError(f'PlanningHead expects query states (B, {self.num_queries}, {self.in_channels}), '
                             f'got {tuple(query_states.shape)}')
        if command.min() < 0 or command.max() >= self.num_commands:
            raise ValueError(f'driving commands must lie in [0, {self.num_commands - 1}], got {command.tolist()}')
        x = self.query_proj(query_states.reshape(b, -1)) + self.command_embed(command)
        if self.ego_proj is not None:
            if ego_status is None or ego_status.shape != (b, 5) or not torch.isfinite(ego_status).all():
                raise ValueError('PlanningHead(use_ego_status=True) needs a finite ego_status (B, 5), got '
                                 f'{None if ego_status is None else tuple(ego_status.shape)}')
            x = x + self.ego_proj(ego_status)
        return self.mlp(x).view(b, self.num_waypoints, 2).cumsum(dim=1)

    def loss(self, pred_traj: torch.Tensor, gt_traj: torch.Tensor, gt_traj_mask: torch.Tensor,
             gt_fut_boxes: list) -> dict:
        """``dict(loss_plan, loss_plan_col)`` for waypoints (B, T, 2), masks (B, T) and B lists of boxes."""
        if gt_traj.shape != pred_traj.shape:
            raise ValueError(f'gt_traj shape {tuple(gt_traj.shape)} does not match {tuple(pred_traj.shape)}')
        weight = gt_traj_mask[..., None].expand_as(pred_traj).float()
        return dict(loss_plan=self.loss_plan(pred_traj, gt_traj.float(), weight,
                                             avg_factor=weight.sum().clamp(min=1)),
                    loss_plan_col=self.loss_collision(pred_traj, gt_fut_boxes, gt_traj_mask))

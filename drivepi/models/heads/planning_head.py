"""Planning head: ego waypoints from the LLM hidden states of the planning queries."""
from typing import Optional, Sequence

import torch
from torch import nn

from drivepi.geometry import COMMANDS
from drivepi.models.device_copies import to_device
from drivepi.registry import MODELS

from .base_head import BaseDrivePIHead, HeadInputs, stack_field

EGO_STATUS_DIM = 5  # vx, vy (m/s), ax, ay (m/s^2), yaw rate (rad/s)


@MODELS.register_module()
class PlanningHead(BaseDrivePIHead):
    """Waypoints ``traj`` (B, T, 2) in metres (ego frame) conditioned on the driving command.

    The Q query hidden states are flattened and projected; a learned embedding of the command
    (metainfo ``ego_fut_cmd``: 0 right, 1 left, 2 straight) and, optionally, a projection of the ego
    status (metainfo ``ego_status``: vx, vy, ax, ay, yaw_rate) are added; an MLP predicts per-step
    displacements whose cumulative sum gives the waypoints. Predicts ``pred_traj`` (T, 2).

    Args:
        in_channels: hidden size D of the query states (filled in by DrivePI).
        num_queries: Q (filled in by DrivePI).
        num_waypoints: T (6 at 0.5 s).
        hidden_channels: width of the MLP.
        use_ego_status: condition on the ego status.
        loss_plan: config of the waypoint regression loss (masked by ``gt_traj_mask``).
        loss_collision: config of the collision-aware loss against ``gt_fut_boxes``.
    """
    feature = 'plan_states'

    def __init__(self, in_channels: int, num_queries: int, num_waypoints: int, hidden_channels: int = 256,
                 use_ego_status: bool = False, loss_plan: dict = dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_collision: dict = dict(type='PlanCollisionLoss', loss_weight=1.0), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels, self.num_queries, self.num_waypoints = in_channels, num_queries, num_waypoints
        self.query_proj = nn.Linear(num_queries * in_channels, hidden_channels)
        self.command_embed = nn.Embedding(len(COMMANDS), hidden_channels)
        self.ego_proj = nn.Linear(EGO_STATUS_DIM, hidden_channels) if use_ego_status else None
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                                 nn.Linear(hidden_channels, num_waypoints * 2))
        self.loss_plan = MODELS.build(loss_plan)
        self.loss_collision = MODELS.build(loss_collision)

    def forward(self, feats: HeadInputs, batch_data_samples: Sequence) -> dict:
        device = feats.plan_states.device
        command = stack_field(batch_data_samples, 'ego_fut_cmd', (), torch.long, metainfo=True)
        if command.min() < 0 or command.max() >= len(COMMANDS):  # on the CPU: no wait for the GPU
            raise ValueError(f'driving commands must lie in [0, {len(COMMANDS) - 1}], got {command.tolist()}')
        command = to_device(command, device)
        ego_status = (stack_field(batch_data_samples, 'ego_status', (EGO_STATUS_DIM,), torch.float32, device,
                                  metainfo=True) if self.ego_proj is not None else None)
        return dict(traj=self.waypoints(feats.plan_states, command, ego_status))

    def waypoints(self, query_states: torch.Tensor, command: torch.Tensor,
                  ego_status: Optional[torch.Tensor] = None) -> torch.Tensor:
        """query_states (B, Q, D), command long (B,) in ``[0, len(COMMANDS))``, ego_status (B, 5) or None ->
        waypoints (B, T, 2)."""
        b = query_states.shape[0]
        if query_states.shape[1:] != (self.num_queries, self.in_channels):
            raise ValueError(f'PlanningHead expects query states (B, {self.num_queries}, {self.in_channels}), '
                             f'got {tuple(query_states.shape)}')
        x = self.query_proj(query_states.reshape(b, -1)) + self.command_embed(command)
        if self.ego_proj is not None:
            if ego_status is None or ego_status.shape != (b, EGO_STATUS_DIM):
                raise ValueError(f'PlanningHead(use_ego_status=True) needs ego_status (B, {EGO_STATUS_DIM}), got '
                                 f'{None if ego_status is None else tuple(ego_status.shape)}')
            x = x + self.ego_proj(ego_status)
        return self.mlp(x).view(b, self.num_waypoints, 2).cumsum(dim=1)

    def loss_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> dict:
        """``dict(loss_plan, loss_plan_col)`` of ``traj`` against the samples' ``gt_traj`` (T, 2), masked by
        ``gt_traj_mask`` (T,), and their future agent boxes ``gt_fut_boxes`` (T lists of (N, 7))."""
        traj = outputs['traj']
        steps, device = (self.num_waypoints,), traj.device
        gt_traj = stack_field(batch_data_samples, 'gt_traj', steps + (2,), torch.float32, device)
        gt_mask = stack_field(batch_data_samples, 'gt_traj_mask', steps, torch.float32, device)
        fut_boxes = [[torch.as_tensor(b, dtype=torch.float32, device=device) for b in sample.get('gt_fut_boxes', [])]
                     for sample in batch_data_samples]
        weight = gt_mask[..., None].expand_as(traj)
        return dict(loss_plan=self.loss_plan(traj, gt_traj, weight, avg_factor=weight.sum().clamp(min=1)),
                    loss_plan_col=self.loss_collision(traj, fut_boxes, gt_mask))

    def predict_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> None:
        """``pred_traj``: (T, 2) waypoints in metres, ego frame."""
        for sample, traj in zip(batch_data_samples, outputs['traj'].cpu()):
            sample.pred_traj = traj

"""Planning head: ego waypoints from the LLM hidden states of the planning queries, one mode or several.

With ``num_modes`` M > 1 it is a multi-mode planner as in VAD and SparseDrive (and the official DrivePI head):
``M`` trajectory anchors per driving command (k-means of the training futures, :mod:`.plan_anchors`), an
offset from each anchor and a score per mode, trained winner-take-all. ``num_modes=1`` is the single-mode
regression head of the first recipes, with the same parameters (its checkpoints load unchanged).
"""
from typing import Optional, Sequence

import torch
from torch import nn

from drivepi.device_copies import to_device
from drivepi.geometry import COMMANDS
from drivepi.registry import MODELS

from .base_head import BaseDrivePIHead, HeadInputs, stack_field
from .plan_anchors import AnchorSource, load_plan_anchors

EGO_STATUS_DIM = 5  # vx, vy (m/s), ax, ay (m/s^2), yaw rate (rad/s)
ANCHOR_SCALE = 10.0  # m: anchor coordinates are divided by it before their embedding
ASSIGNMENTS = ('anchor', 'prediction')
COLLISION_MODES = ('winner', 'best')


@MODELS.register_module()
class PlanningHead(BaseDrivePIHead):
    """Waypoints ``traj`` (B, T, 2) in metres (ego frame) conditioned on the driving command.

    The Q query hidden states are flattened and projected; a learned embedding of the command
    (metainfo ``ego_fut_cmd``: 0 right, 1 left, 2 straight) and, optionally, a projection of the ego
    status (metainfo ``ego_status``: vx, vy, ax, ay, yaw_rate) are added; an MLP predicts per-step
    displacements whose cumulative sum gives the waypoints. Predicts ``pred_traj`` (T, 2).

    With ``num_modes`` M > 1, the command's M anchors (``anchors[command]``, (M, T, 2)) are embedded by an MLP
    and added to that feature, one feature per mode; the same waypoint MLP then predicts per-step offset
    increments whose cumulative sum is added to the anchor (mode ``m`` = anchor ``m`` + offsets), and a score
    MLP gives one logit per mode. Training is winner-take-all: the mode whose anchor (``assign_by='anchor'``) or
    prediction (``'prediction'``) is closest to the ground truth (summed L2 over the valid steps) is the winner;
    ``loss_plan`` regresses the winner only, ``loss_plan_cls`` is the cross entropy of the logits with the
    winner as target, and ``loss_plan_col`` penalises the winner's (``collision_on='winner'``) or the
    best-scoring mode's (``'best'``) collisions. ``traj`` is the best-scoring mode; the outputs also hold
    ``traj_modes`` (B, M, T, 2), ``traj_scores`` (B, M) logits and ``traj_anchors`` (B, M, T, 2), and the
    predictions ``pred_traj_modes`` (M, T, 2) and ``pred_traj_scores`` (M,) softmax probabilities, which the
    ``plan_refiner`` (``OccupancyGuidedStop``) chooses among.

    Args:
        in_channels: hidden size D of the query states (filled in by DrivePI).
        num_queries: Q (filled in by DrivePI).
        num_waypoints: T (6 at 0.5 s).
        hidden_channels: width of the MLP.
        use_ego_status: condition on the ego status.
        num_modes: M; 1 is the single-mode head (``anchors`` are then not used).
        anchors: with M > 1: a ``.npy`` file (``tools/make_plan_anchors.py``) or an array (C, M, T, 2); kept
            in the state dict (a checkpoint brings its own anchors).
        assign_by: which distance picks the winner, ``'anchor'`` or ``'prediction'``.
        collision_on: the mode the collision loss sees, ``'winner'`` or ``'best'``.
        loss_plan: config of the waypoint regression loss (masked by ``gt_traj_mask``).
        loss_collision: config of the collision-aware loss against ``gt_fut_boxes``.
        loss_cls: config of the mode classification loss (M > 1).
    """
    feature = 'plan_states'

    def __init__(self, in_channels: int, num_queries: int, num_waypoints: int, hidden_channels: int = 256,
                 use_ego_status: bool = False, num_modes: int = 1, anchors: Optional[AnchorSource] = None,
                 assign_by: str = 'anchor', collision_on: str = 'winner',
                 loss_plan: dict = dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_collision: dict = dict(type='PlanCollisionLoss', loss_weight=1.0),
                 loss_cls: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_modes < 1:
            raise ValueError(f'PlanningHead: num_modes must be positive, got {num_modes}')
        if assign_by not in ASSIGNMENTS or collision_on not in COLLISION_MODES:
            raise ValueError(f'PlanningHead: assign_by must be one of {ASSIGNMENTS} and collision_on one of '
                             f'{COLLISION_MODES}, got {assign_by!r}, {collision_on!r}')
        if num_modes > 1 and anchors is None:
            raise ValueError(f'PlanningHead(num_modes={num_modes}) needs anchors (C, {num_modes}, {num_waypoints}, 2): '
                             'a .npy file from tools/make_plan_anchors.py or an array')
        self.in_channels, self.num_queries, self.num_waypoints = in_channels, num_queries, num_waypoints
        self.num_modes, self.assign_by, self.collision_on = num_modes, assign_by, collision_on
        self.query_proj = nn.Linear(num_queries * in_channels, hidden_channels)
        self.command_embed = nn.Embedding(len(COMMANDS), hidden_channels)
        self.ego_proj = nn.Linear(EGO_STATUS_DIM, hidden_channels) if use_ego_status else None
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                                 nn.Linear(hidden_channels, num_waypoints * 2))
        self.loss_plan = MODELS.build(loss_plan)
        self.loss_collision = MODELS.build(loss_collision)
        if num_modes > 1:
            self.register_buffer('anchors', torch.from_numpy(load_plan_anchors(anchors, num_modes, num_waypoints)))
            self.anchor_embed = nn.Sequential(nn.Linear(num_waypoints * 2, hidden_channels), nn.ReLU(),
                                              nn.Linear(hidden_channels, hidden_channels))
            self.score_mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                                           nn.Linear(hidden_channels, 1))
            self.loss_cls = MODELS.build(loss_cls)

    def forward(self, feats: HeadInputs, batch_data_samples: Sequence) -> dict:
        """``dict(traj)`` (B, T, 2); with modes also ``traj_modes``, ``traj_scores``, ``traj_anchors``."""
        device = feats.plan_states.device
        command = stack_field(batch_data_samples, 'ego_fut_cmd', (), torch.long, metainfo=True)
        if command.min() < 0 or command.max() >= len(COMMANDS):  # on the CPU: no wait for the GPU
            raise ValueError(f'driving commands must lie in [0, {len(COMMANDS) - 1}], got {command.tolist()}')
        command = to_device(command, device)
        ego_status = (stack_field(batch_data_samples, 'ego_status', (EGO_STATUS_DIM,), torch.float32, device,
                                  metainfo=True) if self.ego_proj is not None else None)
        if self.num_modes == 1:
            return dict(traj=self.waypoints(feats.plan_states, command, ego_status))
        return self.modes(feats.plan_states, command, ego_status)

    def features(self, query_states: torch.Tensor, command: torch.Tensor,
                 ego_status: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, hidden) feature of the query states (B, Q, D), command long (B,) and ego status (B, 5) or None."""
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
        return x

    def waypoints(self, query_states: torch.Tensor, command: torch.Tensor,
                  ego_status: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Single mode: query_states (B, Q, D), command long (B,) in ``[0, len(COMMANDS))``, ego_status (B, 5) or
        None -> waypoints (B, T, 2)."""
        x = self.features(query_states, command, ego_status)
        return self.mlp(x).view(x.shape[0], self.num_waypoints, 2).cumsum(dim=1)

    def modes(self, query_states: torch.Tensor, command: torch.Tensor,
              ego_status: Optional[torch.Tensor] = None) -> dict:
        """Several modes: ``traj_modes`` (B, M, T, 2) = anchors of the command + offsets, ``traj_scores`` (B, M)
        logits, ``traj_anchors`` (B, M, T, 2) and ``traj`` (B, T, 2), the best-scoring mode."""
        x = self.features(query_states, command, ego_status)
        b, m, t = x.shape[0], self.num_modes, self.num_waypoints
        anchors = self.anchors[command]  # (B, M, T, 2)
        mode_feats = x[:, None] + self.anchor_embed(anchors.flatten(2) / ANCHOR_SCALE)  # (B, M, hidden)
        modes = anchors + self.mlp(mode_feats).view(b, m, t, 2).cumsum(dim=2)
        scores = self.score_mlp(mode_feats).squeeze(-1)
        return dict(traj=select_modes(modes, scores.argmax(1)), traj_modes=modes, traj_scores=scores,
                    traj_anchors=anchors)

    def winners(self, outputs: dict, gt_traj: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
        """(B,) long: per sample the mode whose anchor or (detached) prediction lies closest to ``gt_traj``
        (B, T, 2), by the L2 distances summed over the valid steps of ``gt_mask`` (B, T)."""
        reference = outputs['traj_anchors'] if self.assign_by == 'anchor' else outputs['traj_modes'].detach()
        distance = ((reference - gt_traj[:, None]).norm(dim=-1) * gt_mask[:, None]).sum(-1)  # (B, M)
        return distance.argmin(1)

    def loss_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> dict:
        """``dict(loss_plan, loss_plan_col)`` of ``traj`` against the samples' ``gt_traj`` (T, 2), masked by
        ``gt_traj_mask`` (T,), and their future agent boxes ``gt_fut_boxes`` (T lists of (N, 7)); with modes, of
        the winner (``loss_plan_col``: as ``collision_on`` says), plus ``loss_plan_cls``."""
        traj = outputs['traj']
        steps, device = (self.num_waypoints,), traj.device
        gt_traj = stack_field(batch_data_samples, 'gt_traj', steps + (2,), torch.float32, device)
        gt_mask = stack_field(batch_data_samples, 'gt_traj_mask', steps, torch.float32, device)
        fut_boxes = [[to_device(torch.as_tensor(b, dtype=torch.float32), device)
                      for b in sample.get('gt_fut_boxes', [])] for sample in batch_data_samples]
        losses = {}
        if self.num_modes > 1:
            winner = self.winners(outputs, gt_traj, gt_mask)
            valid = (gt_mask.sum(1) > 0).float()
            losses['loss_plan_cls'] = self.loss_cls(outputs['traj_scores'], winner, valid,
                                                    avg_factor=valid.sum().clamp(min=1))
            best = traj
            traj = select_modes(outputs['traj_modes'], winner)
            collision_traj = traj if self.collision_on == 'winner' else best
        else:
            collision_traj = traj
        weight = gt_mask[..., None].expand_as(traj)
        return dict(loss_plan=self.loss_plan(traj, gt_traj, weight, avg_factor=weight.sum().clamp(min=1)),
                    loss_plan_col=self.loss_collision(collision_traj, fut_boxes, gt_mask), **losses)

    def predict_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> None:
        """``pred_traj``: (T, 2) waypoints in metres, ego frame (with modes: the best-scoring one), and with modes
        ``pred_traj_modes`` (M, T, 2) and ``pred_traj_scores`` (M,) probabilities; one copy to the host."""
        b, t = outputs['traj'].shape[:2]
        if self.num_modes == 1:
            for sample, traj in zip(batch_data_samples, outputs['traj'].cpu()):
                sample.pred_traj = traj
            return
        m = self.num_modes
        packed = torch.cat([outputs['traj_modes'].flatten(1), outputs['traj_scores'].softmax(-1)], 1).cpu()
        modes, probs = packed[:, :m * t * 2].view(b, m, t, 2), packed[:, m * t * 2:]
        best = probs.argmax(1)
        for i, sample in enumerate(batch_data_samples):
            sample.pred_traj = modes[i, best[i]]
            sample.pred_traj_modes, sample.pred_traj_scores = modes[i], probs[i]


def select_modes(modes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, T, 2) mode ``index[b]`` (long (B,)) of each sample of ``modes`` (B, M, T, 2), without a host sync."""
    return modes.gather(1, index[:, None, None, None].expand(-1, 1, *modes.shape[2:])).squeeze(1)

"""Occupancy flow head: (vx, vy) in m/s per voxel of the occupancy grid from the LLM-refined BEV map."""
from typing import Sequence

import torch

from drivepi.device_copies import host_reads_are_free
from drivepi.registry import MODELS

from .base_head import BaseDrivePIHead, HeadInputs, stack_field
from .channel_to_height import ChannelToHeightDecoder


@MODELS.register_module()
class FlowHead(BaseDrivePIHead):
    """Flow ``flow`` (B, X, Y, Z, 2), m/s in the ego frame, by channel-to-height; L1 loss against ``gt_flow``
    on the voxels that ``gt_occ`` marks occupied; predicts ``pred_flow`` (X, Y, Z, 2).

    Args:
        in_channels: BEV channels (filled in by DrivePI).
        grid_size: (X, Y, Z) of the occupancy grid.
        free_index: class index of free space in ``gt_occ``; the loss skips those voxels.
        mid_channels, num_convs, norm_cfg: see ``ChannelToHeightDecoder``.
        loss_flow: config of the per-voxel regression loss.
    """
    feature = 'bev'

    def __init__(self, in_channels: int, grid_size: Sequence[int], free_index: int, mid_channels: int = 32,
                 num_convs: int = 1, norm_cfg: dict = dict(type='BN2d'),
                 loss_flow: dict = dict(type='mmdet.L1Loss', loss_weight=1.0), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.grid_size, self.free_index = tuple(grid_size), free_index
        self.decoder = ChannelToHeightDecoder(in_channels, mid_channels, 2, grid_size, num_convs, norm_cfg)
        self.loss_flow = MODELS.build(loss_flow)

    def forward(self, feats: HeadInputs, batch_data_samples: Sequence = ()) -> dict:
        return dict(flow=self.decoder(feats.bev))

    def loss_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> dict:
        """``dict(loss_flow)``: L1 between ``flow`` and the samples' ``gt_flow`` over occupied voxels, zero when there
        are none. On a GPU the free voxels are weighed out (the loss averaged over the occupied ones), nothing read
        back; on the CPU, where that read is free, they are indexed away. Both give the same loss."""
        flow = outputs['flow']
        gt_flow = stack_field(batch_data_samples, 'gt_flow', self.grid_size + (2,), torch.float32, flow.device)
        occupied = stack_field(batch_data_samples, 'gt_occ', self.grid_size, torch.long,
                               flow.device) != self.free_index
        if host_reads_are_free(occupied):
            if not occupied.any():
                return dict(loss_flow=flow.sum() * 0.0)
            return dict(loss_flow=self.loss_flow(flow[occupied].float(), gt_flow[occupied]))
        weight = occupied.unsqueeze(-1).expand_as(flow).float()
        return dict(loss_flow=self.loss_flow(flow.float(), gt_flow, weight, avg_factor=weight.sum()))

    def predict_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> None:
        """``pred_flow``: (X, Y, Z, 2) m/s."""
        for sample, flow in zip(batch_data_samples, outputs['flow'].cpu()):
            sample.pred_flow = flow

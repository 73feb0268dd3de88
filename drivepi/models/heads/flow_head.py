"""Occupancy flow head: (vx, vy) in m/s per voxel of the occupancy grid from a BEV map."""
import torch

from drivepi.geometry import FREE_INDEX
from drivepi.registry import MODELS

from .channel_to_height import ChannelToHeightDecoder


@MODELS.register_module()
class FlowHead(ChannelToHeightDecoder):
    """Flow (B, X, Y, Z, 2) by channel-to-height; L1 loss on occupied voxels.

    Args:
        in_channels, mid_channels, grid_size, num_convs, norm_cfg: see ``ChannelToHeightDecoder``.
        free_index: class index of free space in ``gt_occ``; the loss skips those voxels.
        loss_flow: config of the per-voxel regression loss.
    """

    def __init__(self, in_channels: int, grid_size: tuple, mid_channels: int = 32,
                 num_convs: int = 1, norm_cfg: dict = dict(type='BN2d'), free_index: int = FREE_INDEX,
                 loss_flow: dict = dict(type='mmdet.L1Loss', loss_weight=1.0), init_cfg=None):
        super().__init__(in_channels, mid_channels, 2, grid_size, num_convs, norm_cfg, init_cfg)
        self.free_index = free_index
        self.loss_flow = MODELS.build(loss_flow)

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """(B, C, Hb, Wb) -> flow (B, X, Y, Z, 2), m/s in the ego frame."""
        return super().forward(bev).permute(0, 2, 3, 4, 1)

    def loss(self, flow: torch.Tensor, gt_flow: torch.Tensor, gt_occ: torch.Tensor) -> dict:
        """L1 between predicted and GT flow over voxels that GT marks occupied.

        Args:
            flow, gt_flow: (B, X, Y, Z, 2); gt_occ: long (B, X, Y, Z).

        Returns:
            ``dict(loss_flow)``.
        """
        if gt_flow.shape != flow.shape:
            raise ValueError(f'gt_flow shape {tuple(gt_flow.shape)} does not match flow {tuple(flow.shape)}')
        occupied = gt_occ != self.free_index
        if not occupied.any():
            return dict(loss_flow=flow.sum() * 0.0)
        return dict(loss_flow=self.loss_flow(flow[occupied].float(), gt_flow[occupied].float()))

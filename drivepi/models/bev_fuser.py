"""LiDAR + camera BEV fusion (BEVFusion-style convolutional fuser)."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.registry import MODELS


@MODELS.register_module()
class ConvBEVFuser(BaseModule):
    """Concatenate BEV maps along channels, then 3x3 conv + BatchNorm + ReLU.

    Args:
        in_channels: channels of each input BEV, in the order they are passed (e.g. ``[C_l, C_c]``).
        out_channels: fused BEV channels.
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.fuse = nn.Sequential(nn.Conv2d(sum(in_channels), out_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, *bevs: torch.Tensor) -> torch.Tensor:
        """Args: BEVs ``(B, C_i, Hb, Wb)`` on the same grid. Returns ``(B, out_channels, Hb, Wb)``."""
        channels = [bev.shape[1] for bev in bevs]
        if channels != self.in_channels or len({(bev.shape[0],) + bev.shape[2:] for bev in bevs}) != 1:
            raise ValueError(f'BEV inputs must have channels {self.in_channels} on one (B, Hb, Wb) grid, got '
                             f'{[tuple(bev.shape) for bev in bevs]}')
        return self.fuse(torch.cat(bevs, dim=1))

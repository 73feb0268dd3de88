"""BEV-to-voxel decoding by channel-to-height (FlashOcc): 2D convs, upsampling, reshape to 3D."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn


class ChannelToHeightDecoder(BaseModule):
    """Decode a BEV feature map into ``out_per_voxel`` values per voxel of a 3D grid.

    The BEV map is refined by 3x3 convs at its own resolution, bilinearly upsampled to the
    grid's (X, Y), refined once more, and a 1x1 conv emits ``out_per_voxel * Z`` channels that are
    reshaped into the height axis.

    Args:
        in_channels: C of the input BEV (B, C, Hb, Wb), axis order [ix, iy] like the grid.
        mid_channels: channels of the hidden convs.
        out_per_voxel: values per voxel (e.g. 17 class logits or 2 flow components).
        grid_size: (X, Y, Z) of the output grid.
        num_convs: 3x3 convs at BEV resolution before upsampling.
        norm_cfg: normalisation of the hidden convs.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_per_voxel: int,
                 grid_size: Sequence[int], num_convs: int = 2,
                 norm_cfg: dict = dict(type='BN2d'), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_per_voxel = out_per_voxel
        self.grid_size = tuple(grid_size)
        self.bev_convs = nn.Sequential(*[
            ConvModule(in_channels if i == 0 else mid_channels, mid_channels, 3, padding=1,
                       norm_cfg=norm_cfg) for i in range(num_convs)])
        self.grid_conv = ConvModule(mid_channels, mid_channels, 3, padding=1, norm_cfg=norm_cfg)
        self.out_conv = nn.Conv2d(mid_channels, out_per_voxel * self.grid_size[2], 1)

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """(B, C, Hb, Wb) -> (B, X, Y, Z, out_per_voxel), channels last."""
        if bev.dim() != 4 or bev.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects a BEV (B, {self.in_channels}, Hb, Wb), '
                             f'got {tuple(bev.shape)}')
        x = self.bev_convs(bev)
        x = F.interpolate(x, size=self.grid_size[:2], mode='bilinear', align_corners=False)
        x = self.out_conv(self.grid_conv(x))
        b, _, nx, ny = x.shape
        return x.view(b, self.grid_size[2], self.out_per_voxel, nx, ny).permute(0, 3, 4, 1, 2)

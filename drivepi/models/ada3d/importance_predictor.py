"""Ada3D-style light voxel importance predictors: score every non-empty voxel before the backbone.

Two interchangeable designs with one interface (``feats``, ``coords`` -> one logit per voxel):
- :class:`VoxelImportancePredictor`: one 3x3x3 submanifold sparse conv + a linear classifier;
- :class:`BEVImportancePredictor`: Ada3D's choice, a small dense 2D CNN on the bird's-eye view of the
  voxels (no sparse-conv rulebook to build: on a GPU it costs a fraction of the backbone's first layer).
"""
from typing import Optional, Sequence

import spconv.pytorch as spconv
import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.registry import MODELS


@MODELS.register_module()
class VoxelImportancePredictor(BaseModule):
    """Scores every non-empty voxel; a high logit means the voxel is likely foreground.

    Args:
        in_channels: voxel feature channels (the voxelizer's ``out_channels``).
        hidden_channels: channels of the single 3x3x3 submanifold conv.
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 16, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.context = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, hidden_channels, 3, padding=1, bias=False, indice_key='importance'),
            nn.BatchNorm1d(hidden_channels), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden_channels, 1)

    def forward(self, feats: torch.Tensor, coords: torch.Tensor, spatial_shape: Sequence[int],
                batch_size: int) -> torch.Tensor:
        """Args: feats ``(M, C)``; coords int32 ``(M, 4)`` ``[b, ix, iy, iz]``; spatial_shape ``(nx, ny, nz)``.

        Returns:
            float ``(M,)`` importance logits.
        """
        x = spconv.SparseConvTensor(feats, coords, list(spatial_shape), batch_size)
        return self.classifier(self.context(x).features).squeeze(1)


@MODELS.register_module()
class BEVImportancePredictor(BaseModule):
    """Scores voxels from a bird's-eye view: voxel features are max-pooled over height into a dense
    ``(B, C, nx, ny)`` map, ``num_convs`` 3x3 convs (BN, ReLU) add context of ``num_convs`` cells around
    each column, and each voxel's logit is a linear read-out of its column's context plus a projection
    of its own features (so voxels of one column at different heights score differently).

    Args:
        in_channels: voxel feature channels (the voxelizer's ``out_channels``).
        hidden_channels: channels of the 2D convs and of the per-voxel projection.
        num_convs: 3x3 convs of the BEV context network.
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 16, num_convs: int = 2,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        layers, channels = [], in_channels
        for _ in range(num_convs):
            layers += [nn.Conv2d(channels, hidden_channels, 3, padding=1, bias=False),
                       nn.BatchNorm2d(hidden_channels), nn.ReLU(inplace=True)]
            channels = hidden_channels
        self.context = nn.Sequential(*layers)
        self.voxel_proj = nn.Linear(in_channels, hidden_channels)
        self.classifier = nn.Sequential(nn.ReLU(), nn.Linear(hidden_channels, 1))

    def forward(self, feats: torch.Tensor, coords: torch.Tensor, spatial_shape: Sequence[int],
                batch_size: int) -> torch.Tensor:
        """Args: feats ``(M, C)``; coords int32 ``(M, 4)`` ``[b, ix, iy, iz]``; spatial_shape ``(nx, ny, nz)``.

        Returns:
            float ``(M,)`` importance logits.
        """
        nx, ny = spatial_shape[0], spatial_shape[1]
        coords = coords.long()
        column = (coords[:, 0] * nx + coords[:, 1]) * ny + coords[:, 2]  # (M,) flat (b, ix, iy)
        channels = feats.shape[1]
        bev = feats.new_zeros(batch_size * nx * ny, channels).scatter_reduce(
            0, column[:, None].expand(-1, channels), feats, reduce='amax', include_self=False)
        bev = bev.view(batch_size, nx, ny, channels).permute(0, 3, 1, 2)
        context = self.context(bev).permute(0, 2, 3, 1).reshape(batch_size * nx * ny, -1)
        return self.classifier(context[column] + self.voxel_proj(feats)).squeeze(1)

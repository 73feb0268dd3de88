"""Ada3D-style light voxel importance predictor: one submanifold sparse conv + a linear classifier."""
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

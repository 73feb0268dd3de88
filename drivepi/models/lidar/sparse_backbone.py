"""spconv sparse 3D backbone that turns (filtered) voxels into a LiDAR BEV map."""
from typing import Optional, Sequence, Tuple

import spconv.pytorch as spconv
import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.models.ada3d.sp_batchnorm import SparsityPreservingBatchNorm2d
from drivepi.registry import MODELS


def _sparse_block(conv: nn.Module, channels: int) -> spconv.SparseSequential:
    return spconv.SparseSequential(conv, nn.BatchNorm1d(channels), nn.ReLU(inplace=True))


def dense_volume(volume: spconv.SparseConvTensor) -> torch.Tensor:
    """The sparse volume as a dense float ``(B, C, nx, ny, nz)`` tensor, zero at inactive voxels.

    spconv's own ``SparseConvTensor.dense()`` indexes with a list of index tensors, which torch deprecates
    (a warning on every forward pass) and will read as one tensor index in a later release; this is the
    same scatter with a tuple index.
    """
    idx = volume.indices.long()
    dense = volume.features.new_zeros((volume.batch_size, *volume.spatial_shape, volume.features.shape[1]))
    dense[tuple(idx.t())] = volume.features
    return dense.permute(0, 4, 1, 2, 3)


@MODELS.register_module()
class SparseBEVBackbone(BaseModule):
    """Submanifold/strided sparse 3D convs, height folded into channels, a 3x3 conv with SP-BN.

    Stage ``i`` starts with a strided ``SparseConv3d`` (kernel 3, padding 1) when ``stage_strides[i] > 1``
    and continues with ``blocks_per_stage`` ``SubMConv3d`` blocks; every conv is followed by
    ``BatchNorm1d`` over the active voxels and ReLU. The final sparse volume ``(C, nx', ny', nz')`` is
    densified, height is folded into channels and a 3x3 conv + :class:`SparsityPreservingBatchNorm2d` +
    ReLU maps it to ``out_channels``; BEV cells without any active voxel stay exactly 0.

    Args:
        in_channels: voxel feature channels.
        grid_shape: voxel grid ``(nx, ny, nz)``.
        stage_channels: output channels of each stage.
        stage_strides: stride of each stage (applied to x, y and z).
        blocks_per_stage: submanifold blocks per stage.
        out_channels: BEV channels.
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, in_channels: int, grid_shape: Sequence[int], stage_channels: Sequence[int] = (16, 32, 64),
                 stage_strides: Sequence[int] = (1, 2, 2), blocks_per_stage: int = 1, out_channels: int = 128,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(stage_channels) != len(stage_strides):
            raise ValueError(f'stage_channels {list(stage_channels)} and stage_strides {list(stage_strides)} '
                             'differ in length')
        self.grid_shape = tuple(grid_shape)
        self.out_channels = out_channels
        # a full-resolution first stage shares the stem's rulebook (same active voxels, same 3x3x3 kernel)
        stem_key = 'subm0' if stage_strides[0] == 1 else 'stem'
        layers = [_sparse_block(spconv.SubMConv3d(in_channels, stage_channels[0], 3, padding=1, bias=False,
                                                  indice_key=stem_key), stage_channels[0])]
        shape, prev = list(grid_shape), stage_channels[0]
        for i, (channels, stride) in enumerate(zip(stage_channels, stage_strides)):
            if stride > 1:
                layers.append(_sparse_block(spconv.SparseConv3d(prev, channels, 3, stride=stride, padding=1, bias=False,
                                                                indice_key=f'down{i}'), channels))
                shape = [(n - 1) // stride + 1 for n in shape]
            elif channels != prev:
                raise ValueError(f'stage {i} changes channels {prev} -> {channels} without a stride')
            layers += [_sparse_block(spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False,
                                                       indice_key=f'subm{i}'), channels)
                       for _ in range(blocks_per_stage)]
            prev = channels
        self.encoder = spconv.SparseSequential(*layers)
        self.bev_shape: Tuple[int, int] = (shape[0], shape[1])
        self.bev_conv = nn.Conv2d(prev * shape[2], out_channels, 3, padding=1, bias=False)
        self.bev_norm = SparsityPreservingBatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, feats: torch.Tensor, coords: torch.Tensor, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Args: feats ``(M, in_channels)``; coords int32 ``(M, 4)`` ``[b, ix, iy, iz]``; batch_size B.

        Returns:
            bev float ``(B, out_channels, Hb, Wb)`` indexed ``[ix, iy]``; active bool ``(B, Hb, Wb)``.
        """
        volume = self.encoder(spconv.SparseConvTensor(feats, coords, list(self.grid_shape), batch_size))
        idx = volume.indices.long()
        active = torch.zeros((batch_size,) + self.bev_shape, dtype=torch.bool, device=feats.device)
        active[idx[:, 0], idx[:, 1], idx[:, 2]] = True
        bev = dense_volume(volume).permute(0, 1, 4, 2, 3).flatten(1, 2)
        return self.relu(self.bev_norm(self.bev_conv(bev), active)), active

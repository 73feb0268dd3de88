"""Sparsity Preserving BatchNorm (Ada3D) for sparse BEV maps.

A plain ``BatchNorm2d`` on a sparse BEV map counts the empty cells in its statistics and turns them
into non-zero values (``bias - mean * gamma / std``), destroying the sparsity the voxel filter created.
This norm computes batch statistics over the active cells only and leaves inactive cells exactly 0.
"""
import torch
from torch import nn

from drivepi.registry import MODELS


@MODELS.register_module()
class SparsityPreservingBatchNorm2d(nn.BatchNorm1d):
    """``BatchNorm1d`` over the active cells of a ``(B, C, H, W)`` map; inactive cells stay 0.

    Constructor arguments are those of ``torch.nn.BatchNorm1d`` (``num_features`` = C, ``eps``,
    ``momentum``, ``affine``, ``track_running_stats``); running statistics are active-cell statistics.
    """

    def forward(self, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:  # noqa: D102
        """Args: x float ``(B, C, H, W)``; active bool ``(B, H, W)``. Returns ``(B, C, H, W)``."""
        if x.dim() != 4 or active.shape != (x.shape[0],) + x.shape[2:] or active.dtype != torch.bool:
            raise ValueError(f'expected x (B, C, H, W) and a bool active mask (B, H, W), '
                             f'got {tuple(x.shape)} and {active.dtype} {tuple(active.shape)}')
        channels_last = x.permute(0, 2, 3, 1)
        normed = super().forward(channels_last[active])
        out = torch.zeros_like(channels_last).index_put((active,), normed)
        return out.permute(0, 3, 1, 2)

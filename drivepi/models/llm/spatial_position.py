"""Where each spatial token lies: a Fourier embedding of its BEV cell centre, added to the projected token.

The token filter keeps a data-dependent subset of the BEV positions, and the LLM's rotary positions only
say in which order the kept tokens come; without this embedding a token does not tell the LLM where in
the scene it is, so questions about places, directions and distances cannot be grounded. Like the 3D
position embeddings of PETR / OmniDrive, the metric centre ``(x, y)`` (ego frame) of each kept cell is
encoded with sines and cosines at octave frequencies and mapped to the LLM width by a small MLP.
"""
import math
from typing import Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.registry import MODELS


def token_cell_centers(keep_idx: torch.Tensor, bev_shape: Sequence[int],
                       point_cloud_range: Sequence[float]) -> torch.Tensor:
    """Metric centres of flattened BEV positions.

    Args:
        keep_idx: long (B, K), positions ``ix * Wb + iy`` (:mod:`drivepi.models.bev_grid`).
        bev_shape: ``(Hb, Wb)`` cells along x and y.
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` in metres.

    Returns:
        float32 (B, K, 2) cell centres ``(x, y)`` in metres, ego frame.
    """
    hb, wb = bev_shape
    x_min, y_min, _, x_max, y_max, _ = point_cloud_range
    ix, iy = torch.div(keep_idx, wb, rounding_mode='floor'), keep_idx % wb
    x = x_min + (ix.float() + 0.5) * (x_max - x_min) / hb
    y = y_min + (iy.float() + 0.5) * (y_max - y_min) / wb
    return torch.stack([x, y], dim=-1)


def place_cells(places: torch.Tensor, bev_shape: Sequence[int], point_cloud_range: Sequence[float]):
    """The flattened BEV position (``ix * Wb + iy``) of the cell holding each place, the inverse of
    :func:`token_cell_centers`.

    Args:
        places: float (..., 2) ``(x, y)`` in metres, ego frame; NaN for none.
        bev_shape: ``(Hb, Wb)``. point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``, m.

    Returns:
        long (...) positions (0 where not valid) and bool (...) valid: the place is given and inside the range.
    """
    hb, wb = bev_shape
    x_min, y_min, _, x_max, y_max, _ = point_cloud_range
    ix = torch.floor((places[..., 0] - x_min) / ((x_max - x_min) / hb))
    iy = torch.floor((places[..., 1] - y_min) / ((y_max - y_min) / wb))
    valid = (ix >= 0) & (ix < hb) & (iy >= 0) & (iy < wb)  # False for NaN
    return torch.where(valid, ix * wb + iy, 0).long(), valid


@MODELS.register_module()
class BEVPositionEmbedding(BaseModule):
    """``(B, K)`` kept BEV positions -> ``(B, K, out_channels)`` embeddings of their metric centres.

    Coordinates are divided by the half extent of the range (ego at 0, the range's edges at +-1), then
    ``[x, y, sin(2^f pi x), cos(2^f pi x), sin(2^f pi y), cos(2^f pi y)]`` for ``f < num_frequencies``
    (the finest period is ``2 * half_extent / 2^(F-1)`` m) pass a two-layer MLP.

    Args:
        out_channels: the LLM hidden size.
        point_cloud_range: BEV range of the fused map, metres.
        num_frequencies: F octaves.
        hidden_channels: MLP width (default ``out_channels``).
    """

    def __init__(self, out_channels: int, point_cloud_range: Sequence[float], num_frequencies: int = 8,
                 hidden_channels: int = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(point_cloud_range) != 6:
            raise ValueError(f'point_cloud_range must have 6 values, got {list(point_cloud_range)}')
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.register_buffer('frequencies', math.pi * 2.0 ** torch.arange(num_frequencies, dtype=torch.float32),
                             persistent=False)
        in_channels = 2 + 4 * num_frequencies
        hidden_channels = hidden_channels or out_channels
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.GELU(),
                                 nn.Linear(hidden_channels, out_channels))

    def forward(self, keep_idx: torch.Tensor, bev_shape: Sequence[int]) -> torch.Tensor:
        x_min, y_min, _, x_max, y_max, _ = self.point_cloud_range
        centers = token_cell_centers(keep_idx, bev_shape, self.point_cloud_range)
        origin = centers.new_tensor([(x_min + x_max) / 2, (y_min + y_max) / 2])
        half = centers.new_tensor([(x_max - x_min) / 2, (y_max - y_min) / 2])
        unit = (centers - origin) / half  # (B, K, 2) in [-1, 1]
        angles = unit[..., None] * self.frequencies  # (B, K, 2, F)
        feats = torch.cat([unit, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)
        return self.mlp(feats)


__all__ = ['BEVPositionEmbedding', 'place_cells', 'token_cell_centers']

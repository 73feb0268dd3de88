"""Ada3D-style density-guided voxel filter: keep the top-scoring voxels of each range ring.

LiDAR point density falls roughly with 1/r^2, so near rings hold many redundant voxels and far rings
few. The filter therefore keeps a smaller fraction near the sensor than far away: ring ``j`` (voxel
centre horizontal range in ``[range_bins[j-1], range_bins[j])`` metres) keeps ``round(keep_ratios[j] *
n_j)`` voxels per sample, those with the highest importance score. The score of the last kept voxel
of a ring is that ring's (data-dependent) threshold. Fully vectorised (one sort).
"""
import math
from typing import Sequence, Tuple

import torch
from torch import nn

from drivepi.device_copies import count_indices
from drivepi.models.ada3d.straight_through import straight_through_gate
from drivepi.registry import MODELS


def voxel_ranges(centers: torch.Tensor) -> torch.Tensor:
    """Horizontal distance (m) of voxel centres ``(M, 3)`` from the ego origin -> ``(M,)``."""
    return torch.linalg.vector_norm(centers[:, :2], dim=1)


@MODELS.register_module()
class DensityGuidedVoxelFilter(nn.Module):
    """Args:
        range_bins: increasing ring boundaries in metres (J - 1 values for J rings).
        keep_ratios: fraction of voxels kept in each of the J rings, each in (0, 1].
    """

    def __init__(self, range_bins: Sequence[float], keep_ratios: Sequence[float]) -> None:
        super().__init__()
        if len(keep_ratios) != len(range_bins) + 1:
            raise ValueError(f'keep_ratios needs {len(range_bins) + 1} values for range_bins {list(range_bins)}, '
                             f'got {list(keep_ratios)}')
        if any(not 0 < r <= 1 for r in keep_ratios) or list(range_bins) != sorted(range_bins):
            raise ValueError(f'keep_ratios must lie in (0, 1] and range_bins increase: {keep_ratios}, {range_bins}')
        self.register_buffer('range_bins', torch.tensor(range_bins, dtype=torch.float32), persistent=False)
        self.register_buffer('keep_ratios', torch.tensor(keep_ratios, dtype=torch.float32), persistent=False)

    def ring_index(self, ranges: torch.Tensor) -> torch.Tensor:
        """Ring ``(M,)`` long of horizontal ranges ``(M,)`` in metres."""
        return torch.bucketize(ranges, self.range_bins, right=True)

    def forward(self, scores: torch.Tensor, ranges: torch.Tensor, batch_idx: torch.Tensor,
                batch_size: int) -> torch.Tensor:
        """Select voxels.

        Args:
            scores: float ``(M,)`` importance (higher = keep first).
            ranges: float ``(M,)`` horizontal distance of each voxel centre from the ego origin, metres.
            batch_idx: long ``(M,)`` sample of each voxel.
            batch_size: B.

        Returns:
            bool ``(M,)`` keep mask.
        """
        num_rings = len(self.keep_ratios)
        group = batch_idx * num_rings + self.ring_index(ranges)
        # one sort by (group, descending score): atan maps scores into an interval of width < 1 per group
        key = 2.0 * group.double() + 0.5 - torch.atan(scores.detach().double()) / math.pi
        order = torch.argsort(key, stable=True)
        group_sizes = count_indices(group, batch_size * num_rings)
        group_starts = torch.cumsum(group_sizes, 0) - group_sizes
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=order.device) - group_starts[group[order]]
        quota = torch.round(group_sizes * self.keep_ratios.repeat(batch_size)).long()
        return rank < quota[group]


def filter_and_gate_voxels(voxel_filter: DensityGuidedVoxelFilter, logits: torch.Tensor, feats: torch.Tensor,
                           coords: torch.Tensor, centers: torch.Tensor, batch_idx: torch.Tensor,
                           batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keep the voxels the density-guided filter selects and gate their features on ``sigmoid(logits)``.

    The gate (:func:`straight_through_gate`) leaves the kept features unchanged in the forward pass and
    lets the task losses reach the importance predictor.

    Args:
        voxel_filter: the density-guided filter.
        logits: float ``(M,)`` importance logits; feats ``(M, C)``; coords int ``(M, 4)`` ``[b, ix, iy, iz]``;
        centers: float ``(M, 3)`` voxel centres (metres, ego frame); batch_idx long ``(M,)``; batch_size B.

    Returns:
        gated features ``(K, C)`` and coords ``(K, 4)`` of the K kept voxels.
    """
    keep = voxel_filter(logits, voxel_ranges(centers), batch_idx, batch_size)
    kept = torch.nonzero(keep).squeeze(1)  # one host sync for the three gathers
    prob = torch.sigmoid(logits[kept]).unsqueeze(1)
    return straight_through_gate(feats[kept], prob), coords[kept]

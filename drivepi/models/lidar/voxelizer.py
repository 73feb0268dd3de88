"""Dynamic (uncapped) voxelization of multi-sweep point clouds with a mean voxel feature encoder.

Pure, vectorised torch: runs unchanged on CPU and CUDA, with no Python loop over points or voxels.
"""
from typing import Dict, List, Sequence

import torch
from torch import nn

from drivepi.device_copies import count_indices
from drivepi.geometry import grid_shape
from drivepi.models.bev_grid import cell_centers, register_grid_buffers
from drivepi.registry import MODELS


def check_points(points: List[torch.Tensor], num_features: int) -> None:
    """Raise a ``ValueError`` naming the batch element for malformed point clouds (shapes, empty clouds;
    NaN/inf values are checked by :func:`check_values`, in the voxelizer's one read-back of its checks).

    Args:
        points: list of B tensors ``(N_i, num_features)`` ``[x, y, z, intensity, time_lag]``, ego frame.
        num_features: expected number of values per point.
    """
    if not isinstance(points, (list, tuple)) or len(points) == 0:
        raise ValueError(f'points must be a non-empty list of (N, {num_features}) tensors, got {type(points)}')
    for i, pts in enumerate(points):
        if not torch.is_tensor(pts) or pts.dim() != 2 or pts.shape[1] != num_features:
            shape = tuple(pts.shape) if torch.is_tensor(pts) else type(pts)
            raise ValueError(f'points[{i}] must have shape (N, {num_features}) [x, y, z, intensity, time_lag], '
                             f'got {shape}')
        if pts.shape[0] == 0:
            raise ValueError(f'points[{i}] is an empty point cloud')


def check_values(finite: List[bool], num_inside: List[int], point_cloud_range: Sequence[float]) -> None:
    """Raise a ``ValueError`` naming the batch elements with NaN/inf values or no point inside the range.

    Args:
        finite: per batch element, whether all its values are finite.
        num_inside: per batch element, its number of points inside ``point_cloud_range``.
    """
    bad = [i for i, ok in enumerate(finite) if not ok]
    if bad:
        raise ValueError(f'points{bad} contain NaN/inf values')
    empty = [i for i, n in enumerate(num_inside) if n == 0]
    if empty:
        raise ValueError(f'points{empty} have no point inside point_cloud_range {list(point_cloud_range)}')


@MODELS.register_module()
class DynamicVoxelizer(nn.Module):
    """Points -> sparse voxels with mean-pooled features (every point inside the range is kept).

    Voxel features (``out_channels`` = 9): point-mean ``x, y, z`` normalised to [0, 1] over the range,
    mean intensity / ``intensity_scale``, mean time lag (s), offset of the point mean from the voxel
    centre in voxel units (3), ``log1p(number of points)``.

    On a GPU the host waits for it twice: once to read the input checks, once for ``torch.unique``.

    Args:
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` metres, ego frame.
        voxel_size: ``[dx, dy, dz]`` metres.
        num_point_features: values per input point (5: x, y, z, intensity, time_lag).
        intensity_scale: divisor of the raw intensity (nuScenes stores 0..255).
    """

    out_channels = 9

    def __init__(self, point_cloud_range: Sequence[float], voxel_size: Sequence[float],
                 num_point_features: int = 5, intensity_scale: float = 255.0) -> None:
        super().__init__()
        self.point_cloud_range = list(point_cloud_range)
        self.voxel_size = list(voxel_size)
        self.grid_shape = grid_shape(point_cloud_range, voxel_size)  # (nx, ny, nz)
        self.num_point_features = num_point_features
        self.intensity_scale = intensity_scale
        register_grid_buffers(self, point_cloud_range, voxel_size)
        self.register_buffer('grid_shape_cells', torch.tensor(self.grid_shape, dtype=torch.float32), persistent=False)

    def forward(self, points: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Voxelize a batch.

        Args:
            points: list of B float tensors ``(N_i, 5)`` ``[x, y, z, intensity, time_lag]``, ego frame.

        Returns:
            dict with ``feats`` float32 ``(M, 9)``, ``coords`` int32 ``(M, 4)`` ``[b, ix, iy, iz]``
            (sorted by batch, then ix, iy, iz), ``num_points`` long ``(M,)``, ``centers`` float32
            ``(M, 3)`` voxel centres in metres, ``batch_size`` int.
        """
        check_points(points, self.num_point_features)
        B, device = len(points), points[0].device
        pts = torch.cat(points).float()
        batch_idx = torch.cat([torch.full((len(p),), i, dtype=torch.long, device=device) for i, p in enumerate(points)])
        lower, size = self.range_lower, self.cell_size
        idx = torch.floor((pts[:, :3] - lower) / size).long()
        inside = ((idx >= 0) & (idx < self.grid_shape_cells)).all(dim=1)
        num_inside = torch.zeros(B, dtype=torch.long, device=device).index_add_(0, batch_idx, inside.long())
        finite = torch.stack([torch.isfinite(p).all() for p in points])
        stats = torch.cat([finite.long(), num_inside]).tolist()  # the checks' one read-back
        check_values([bool(v) for v in stats[:B]], stats[B:], self.point_cloud_range)
        nx, ny, nz = self.grid_shape
        outside_key = B * nx * ny * nz  # larger than every voxel's key: sorted last by unique, then dropped
        key = ((batch_idx * nx + idx[:, 0]) * ny + idx[:, 1]) * nz + idx[:, 2]
        unique_key, inverse = torch.unique(torch.where(inside, key, outside_key), return_inverse=True)
        num_voxels = len(unique_key) - int(sum(stats[B:]) < len(pts))
        unique_key = unique_key[:num_voxels]
        num_points = count_indices(inverse, num_voxels + 1)[:num_voxels]
        sums = pts.new_zeros((num_voxels + 1, pts.shape[1])).index_add_(0, inverse, pts)[:num_voxels]
        means = sums / num_points.unsqueeze(1).float()
        coords = torch.stack([unique_key // (nx * ny * nz), unique_key // (ny * nz) % nx,
                              unique_key // nz % ny, unique_key % nz], dim=1)
        centers = cell_centers(coords[:, 1:], self.point_cloud_range, self.voxel_size)
        feats = torch.cat([(means[:, :3] - lower) / (self.range_upper - lower),
                           means[:, 3:4] / self.intensity_scale,
                           means[:, 4:5],
                           (means[:, :3] - centers) / size,
                           torch.log1p(num_points.float()).unsqueeze(1)], dim=1)
        return dict(feats=feats, coords=coords.int(), num_points=num_points, centers=centers,
                    batch_size=B)


__all__ = ['DynamicVoxelizer', 'check_points']

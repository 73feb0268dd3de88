"""Dynamic (uncapped) voxelization of multi-sweep point clouds with a mean voxel feature encoder.

Pure, vectorised torch: runs unchanged on CPU and CUDA, with no Python loop over points or voxels.
"""
from typing import Dict, List, Sequence

import torch
from torch import nn

from drivepi.geometry import grid_shape
from drivepi.models.bev_grid import cell_centers
from drivepi.registry import MODELS


def check_points(points: List[torch.Tensor], num_features: int) -> None:
    """Raise a ``ValueError`` naming the batch element for malformed point clouds.

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
    if not all(bool(torch.isfinite(pts).all()) for pts in points):
        bad = [i for i, pts in enumerate(points) if not torch.isfinite(pts).all()]
        raise ValueError(f'points{bad} contain NaN/inf values')


@MODELS.register_module()
class DynamicVoxelizer(nn.Module):
    """Points -> sparse voxels with mean-pooled features (every point inside the range is kept).

    Voxel features (``out_channels`` = 9): point-mean ``x, y, z`` normalised to [0, 1] over the range,
    mean intensity / ``intensity_scale``, mean time lag (s), offset of the point mean from the voxel
    centre in voxel units (3), ``log1p(number of points)``.

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
        device = points[0].device
        counts = torch.tensor([len(p) for p in points], device=device)
        batch_idx = torch.repeat_interleave(torch.arange(len(points), device=device), counts)
        pts = torch.cat(points).float()
        lower = pts.new_tensor(self.point_cloud_range[:3])
        size = pts.new_tensor(self.voxel_size)
        shape = torch.tensor(self.grid_shape, device=device)
        idx = torch.floor((pts[:, :3] - lower) / size).long()
        inside = ((idx >= 0) & (idx < shape)).all(dim=1)
        batch_inside = torch.bincount(batch_idx[inside], minlength=len(points))
        if (batch_inside == 0).any():
            empty = torch.nonzero(batch_inside == 0).flatten().tolist()
            raise ValueError(f'points{empty} have no point inside point_cloud_range {self.point_cloud_range}')
        pts, idx, batch_idx = pts[inside], idx[inside], batch_idx[inside]
        nx, ny, nz = self.grid_shape
        key = ((batch_idx * nx + idx[:, 0]) * ny + idx[:, 1]) * nz + idx[:, 2]
        unique_key, inverse = torch.unique(key, return_inverse=True)
        num_points = torch.bincount(inverse, minlength=len(unique_key))
        sums = pts.new_zeros((len(unique_key), pts.shape[1])).index_add_(0, inverse, pts)
        means = sums / num_points.unsqueeze(1).float()
        coords = torch.stack([unique_key // (nx * ny * nz), unique_key // (ny * nz) % nx,
                              unique_key // nz % ny, unique_key % nz], dim=1)
        centers = cell_centers(coords[:, 1:], self.point_cloud_range, self.voxel_size)
        upper = pts.new_tensor(self.point_cloud_range[3:])
        feats = torch.cat([(means[:, :3] - lower) / (upper - lower),
                           means[:, 3:4] / self.intensity_scale,
                           means[:, 4:5],
                           (means[:, :3] - centers) / size,
                           torch.log1p(num_points.float()).unsqueeze(1)], dim=1)
        return dict(feats=feats, coords=coords.int(), num_points=num_points, centers=centers,
                    batch_size=len(points))


__all__ = ['DynamicVoxelizer', 'check_points']

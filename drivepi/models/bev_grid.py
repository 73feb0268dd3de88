"""Geometry of the regular grids the perception branches share (voxel grid, BEV grid).

A grid covers ``point_cloud_range = [x_min, y_min, z_min, x_max, y_max, z_max]`` (metres, ego frame)
with cells of ``cell_size = [dx, dy, dz]`` metres. Grid indices are ``[ix, iy, iz]`` (x index first),
the same order as the occupancy grid of ``docs/contracts.md``. A BEV map is stored as a tensor
``(B, C, Hb, Wb)`` with ``Hb`` along x and ``Wb`` along y, so ``bev[b, :, ix, iy]`` is the cell whose
centre is ``x = x_min + (ix + 0.5) * dx``, ``y = y_min + (iy + 0.5) * dy``. Flattened BEV positions
(token indices) are ``ix * Wb + iy``. Grid shapes: :func:`drivepi.geometry.grid_shape`.
"""
from typing import Sequence

import torch
from torch import nn

from drivepi.device_copies import device_tensor


def cell_centers(indices: torch.Tensor, point_cloud_range: Sequence[float],
                 cell_size: Sequence[float]) -> torch.Tensor:
    """Metric centres of grid cells.

    Args:
        indices: integer tensor ``(M, D)`` of ``[ix, iy(, iz)]`` (D = len(cell_size)).
        point_cloud_range: grid range, metres.
        cell_size: ``[dx, dy(, dz)]`` metres.

    Returns:
        float32 ``(M, D)`` centres in metres.
    """
    dims = len(cell_size)
    lower = device_tensor(point_cloud_range[:dims], torch.float32, indices.device)
    size = device_tensor(cell_size, torch.float32, indices.device)
    return lower + (indices.float() + 0.5) * size


def register_grid_buffers(module: nn.Module, point_cloud_range: Sequence[float], cell_size: Sequence[float]) -> None:
    """Give ``module`` the grid's constants as float32 buffers on its device (not saved in checkpoints):
    ``range_lower`` and ``range_upper`` ``(3,)`` metres, ``cell_size`` ``(D,)`` metres. A forward pass then copies
    nothing from the host (a copy that would make the host wait, and that a CUDA graph cannot capture)."""
    for name, values in (('range_lower', point_cloud_range[:3]), ('range_upper', point_cloud_range[3:]),
                         ('cell_size', cell_size)):
        module.register_buffer(name, torch.tensor(values, dtype=torch.float32), persistent=False)

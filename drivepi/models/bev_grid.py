"""Geometry of the regular grids the perception branches share (voxel grid, BEV grid).

A grid covers ``point_cloud_range = [x_min, y_min, z_min, x_max, y_max, z_max]`` (metres, ego frame)
with cells of ``cell_size = [dx, dy, dz]`` metres. Grid indices are ``[ix, iy, iz]`` (x index first),
the same order as the occupancy grid of ``docs/contracts.md``. A BEV map is stored as a tensor
``(B, C, Hb, Wb)`` with ``Hb`` along x and ``Wb`` along y, so ``bev[b, :, ix, iy]`` is the cell whose
centre is ``x = x_min + (ix + 0.5) * dx``, ``y = y_min + (iy + 0.5) * dy``. Flattened BEV positions
(token indices) are ``ix * Wb + iy``.
"""
from typing import Sequence, Tuple

import torch


def grid_shape(point_cloud_range: Sequence[float], cell_size: Sequence[float]) -> Tuple[int, ...]:
    """Number of cells ``(nx, ny[, nz])`` of a grid; raises if the range is not a whole number of cells.

    Args:
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` in metres.
        cell_size: ``[dx, dy]`` or ``[dx, dy, dz]`` in metres.
    """
    if len(point_cloud_range) != 6:
        raise ValueError(f'point_cloud_range must have 6 values, got {list(point_cloud_range)}')
    if len(cell_size) not in (2, 3) or min(cell_size) <= 0:
        raise ValueError(f'cell_size must be 2 or 3 positive values, got {list(cell_size)}')
    shape = []
    for axis, size in enumerate(cell_size):
        extent = point_cloud_range[axis + 3] - point_cloud_range[axis]
        cells = round(extent / size)
        if cells <= 0 or abs(cells * size - extent) > 1e-4 * size:
            raise ValueError(f'range {point_cloud_range[axis]}..{point_cloud_range[axis + 3]} m along axis '
                             f'{"xyz"[axis]} is not a whole number of {size} m cells')
        shape.append(int(cells))
    return tuple(shape)


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
    lower = torch.tensor(point_cloud_range[:dims], dtype=torch.float32, device=indices.device)
    size = torch.tensor(cell_size, dtype=torch.float32, device=indices.device)
    return lower + (indices.float() + 0.5) * size

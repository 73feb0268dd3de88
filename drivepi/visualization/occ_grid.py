"""Geometry of the occupancy grid (OpenOcc / Occ3D layout, docs/contracts.md).

Grid ``(X, Y, Z)`` indexed ``[ix, iy, iz]`` over ``pc_range = [x0, y0, z0, x1, y1, z1]`` (metres,
ego frame) with cubic voxels of ``voxel_size`` metres; voxel centre ``x = x0 + (ix + 0.5) * size``.
"""
from typing import Sequence, Tuple

import numpy as np

from drivepi.geometry import OCC_RANGE, OCC_VOXEL_SIZE, grid_shape


def voxel_centers(indices: np.ndarray, pc_range: Sequence[float] = OCC_RANGE,
                  voxel_size: float = OCC_VOXEL_SIZE) -> np.ndarray:
    """Ego-frame centres (N, 3) in metres of integer voxel indices (N, 3) ``[ix, iy, iz]``."""
    return np.asarray(pc_range[:3], dtype=np.float64) + (np.asarray(indices) + 0.5) * voxel_size


def check_grid(array: np.ndarray, name: str, source: str, trailing: Tuple[int, ...] = (),
               pc_range: Sequence[float] = OCC_RANGE, voxel_size: float = OCC_VOXEL_SIZE) -> None:
    """Raise ValueError naming ``source`` unless ``array`` has shape grid + ``trailing`` and no NaN."""
    expected = grid_shape(pc_range, voxel_size) + tuple(trailing)
    if tuple(array.shape) != expected:
        raise ValueError(f'{source}: {name} has shape {tuple(array.shape)}, expected {expected}')
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f'{source}: {name} contains NaN or inf')

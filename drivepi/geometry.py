"""The one home of DrivePI's geometry and vocabularies: grid, range, voxel size, classes, commands, ego size.

A leaf module (imports numpy only): every other module, config and test takes these facts from here.
Conventions are those of ``docs/contracts.md``:

- Occupancy grid (OpenOcc / Occ3D): range :data:`OCC_RANGE` ``[x_min, y_min, z_min, x_max, y_max, z_max]``
  metres in the ego frame, cubic voxels of :data:`OCC_VOXEL_SIZE` m, :data:`OCC_GRID` ``(X, Y, Z)`` voxels
  indexed ``[ix, iy, iz]``, voxel centre ``x = x_min + (ix + 0.5) * size``.
- Boxes ``[x, y, z_bottom, l, w, h, yaw]`` (metres, radians; ``l`` along the heading, z at the bottom), the
  mmdet3d LiDAR-box convention.
"""
from typing import Sequence, Tuple, Union

import numpy as np

# ---------------------------------------------------------------- occupancy grid
OCC_RANGE = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)
OCC_VOXEL_SIZE = 0.4


def grid_shape(point_cloud_range: Sequence[float], cell_size: Union[Sequence[float], float]) -> Tuple[int, ...]:
    """Number of cells ``(nx, ny[, nz])`` of a grid; raises if the range is not a whole number of cells.

    Args:
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` in metres.
        cell_size: ``[dx, dy]`` or ``[dx, dy, dz]`` in metres, or one number for cubic cells.
    """
    if np.isscalar(cell_size):
        cell_size = (float(cell_size),) * 3
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


OCC_GRID = grid_shape(OCC_RANGE, OCC_VOXEL_SIZE)  # (200, 200, 16)

# ---------------------------------------------------------------- vocabularies
# The 10 nuScenes detection classes (mmdet3d NuScenesDataset order); labels index this tuple.
DETECTION_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle',
                     'pedestrian', 'traffic_cone', 'barrier')

# OpenOcc (v2) occupancy classes: 16 semantic classes + free (index 16). Flow moves classes 0-7.
OPENOCC_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle',
                   'pedestrian', 'traffic_cone', 'barrier', 'driveable_surface', 'other_flat', 'sidewalk',
                   'terrain', 'manmade', 'vegetation', 'free')
FREE_INDEX = OPENOCC_CLASSES.index('free')  # 16
NUM_OCC_CLASSES = len(OPENOCC_CLASSES)  # 17

# Occ3D-nuScenes occupancy classes: 17 semantic classes + free (index 17).
OCC3D_CLASSES = ('others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle', 'motorcycle',
                 'pedestrian', 'traffic_cone', 'trailer', 'truck', 'driveable_surface', 'other_flat',
                 'sidewalk', 'terrain', 'manmade', 'vegetation', 'free')

OCC_CLASSES = dict(openocc=OPENOCC_CLASSES, occ3d=OCC3D_CLASSES)

# The flat ground classes (shared by OpenOcc and Occ3D).
GROUND_CLASSES = ('driveable_surface', 'other_flat', 'sidewalk', 'terrain')

# The six nuScenes cameras in the order of the view axis V (mmdet3d v2 info order).
CAMERA_NAMES = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
                'CAM_BACK_RIGHT')

# Driving commands, indexed by the info files' ``ego_fut_cmd`` (VAD order).
COMMANDS = ('turn right', 'turn left', 'go straight')
TURN_RIGHT, TURN_LEFT, GO_STRAIGHT = range(len(COMMANDS))

# ---------------------------------------------------------------- ego vehicle
# nuScenes data-collection car (Renault Zoe): footprint length x width in metres.
EGO_LENGTH = 4.084
EGO_WIDTH = 1.85
# The ego frame's origin is the rear-axle centre; the footprint's centre lies this far ahead of it (m).
EGO_REAR_AXLE_TO_CENTER = 1.385


# ---------------------------------------------------------------- angles and boxes
def wrap_angle(angle):
    """Angles (rad, scalar or array) wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


# corner k of a box has local bits (x, y, z) = (k & 1, k >> 1 & 1, k >> 2 & 1)
BOX_UNIT_CORNERS = np.array([[(k & 1) - 0.5, ((k >> 1) & 1) - 0.5, (k >> 2) & 1] for k in range(8)], float)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of (N, 7) boxes ``[x, y, z_bottom, l, w, h, yaw]``; corner k has local bits
    (x, y, z) = (k & 1, k >> 1 & 1, k >> 2 & 1) (see :data:`BOX_UNIT_CORNERS`)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    local = BOX_UNIT_CORNERS[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = c * local[..., 0] - s * local[..., 1] + boxes[:, None, 0]
    y = s * local[..., 0] + c * local[..., 1] + boxes[:, None, 1]
    return np.stack([x, y, local[..., 2] + boxes[:, None, 2]], axis=-1)


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """Counter-clockwise BEV corners (N, 4, 2) of boxes ``(N, 7)``: rear-right, front-right, front-left,
    rear-left (so corners 1 and 2 are the front)."""
    return box_corners(boxes)[:, [0, 1, 3, 2], :2]

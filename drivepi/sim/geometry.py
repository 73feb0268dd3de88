"""Small geometry helpers of the mini worlds: 2D poses, oriented boxes, box meshes.

Boxes everywhere are ``[x, y, z_bottom, l, w, h, yaw]`` (metres, radians; ``l`` along the heading,
``z_bottom`` at the box bottom), the mmdet3d LiDAR-box convention.
"""
import numpy as np

from drivepi.geometry import box_corners, wrap_angle

# 12 triangles of a unit box, outward winding; vertex k has bits (x, y, z) = (k & 1, k >> 1 & 1, k >> 2 & 1)
_BOX_TRIANGLES = np.array([[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
                           [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]])
TRIANGLES_PER_BOX = len(_BOX_TRIANGLES)


def pose2d_matrix(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """(4,4) transform of a planar pose: rotation ``yaw`` (rad) about z, translation (x, y, z) m."""
    c, s = np.cos(yaw), np.sin(yaw)
    mat = np.eye(4)
    mat[:2, :2] = [[c, -s], [s, c]]
    mat[:3, 3] = x, y, z
    return mat


def matrix_to_pose2d(mat: np.ndarray) -> tuple:
    """(x, y, yaw) of a (4,4) transform (yaw from its rotation's x axis)."""
    return float(mat[0, 3]), float(mat[1, 3]), float(np.arctan2(mat[1, 0], mat[0, 0]))


def transform_points(mat: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (4,4) transform to (N,3) points."""
    return points @ mat[:3, :3].T + mat[:3, 3]


def transform_boxes(mat: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Move (N,7) boxes by a (4,4) transform whose rotation is a yaw about z (plus translation)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7).copy()
    boxes[:, :3] = transform_points(mat, boxes[:, :3])
    boxes[:, 6] = wrap_angle(boxes[:, 6] + np.arctan2(mat[1, 0], mat[0, 0]))
    return boxes


def boxes_mesh(boxes: np.ndarray) -> tuple:
    """Triangle mesh of (N,7) boxes: vertices (8N,3) float32, triangles (12N,3) int32.

    Triangle ``12 * i + k`` belongs to box ``i``.
    """
    corners = box_corners(boxes)
    tris = _BOX_TRIANGLES[None] + 8 * np.arange(len(corners))[:, None, None]
    return corners.reshape(-1, 3).astype(np.float32), tris.reshape(-1, 3).astype(np.int32)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N,M) bool: point n lies in box m grown by ``margin`` metres on every side.

    Args:
        points: (N,3) in the boxes' frame.
        boxes: (M,7).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    d = points[:, None, :2] - boxes[None, :, :2]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    lx = d[..., 0] * c + d[..., 1] * s
    ly = -d[..., 0] * s + d[..., 1] * c
    dz = points[:, None, 2] - boxes[None, :, 2]
    return ((np.abs(lx) <= boxes[:, 3] / 2 + margin) & (np.abs(ly) <= boxes[:, 4] / 2 + margin)
            & (dz >= -margin) & (dz <= boxes[:, 5] + margin))

"""Occupancy and trajectories projected into the camera images.

Camera parameters follow the info file (docs/contracts.md): ``cam2img`` intrinsics (3x3 or 4x4) and
``cam2ego`` (4x4) extrinsics of each ``CAM_*``. Points go ego -> camera with ``inv(cam2ego)`` and
camera -> pixels with mmdet3d's ``points_cam2img``.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmdet3d.structures import points_cam2img

from drivepi.geometry import GROUND_CLASSES, OCC_RANGE, OCC_VOXEL_SIZE, OPENOCC_CLASSES

from .occ_grid import voxel_centers
from .palette import occ_palette
from .scene import exposed_faces

# Panel order of the six nuScenes cameras: front row left to right, back row left to right.
CAMERA_ORDER = ('CAM_FRONT_LEFT', 'CAM_FRONT', 'CAM_FRONT_RIGHT',
                'CAM_BACK_LEFT', 'CAM_BACK', 'CAM_BACK_RIGHT')
# Ground classes: left out of camera overlays by default, so the road stays visible under them.


def ego_to_image(points: np.ndarray, cam2img: np.ndarray, cam2ego: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Project ego-frame points into one camera.

    Args:
        points: (N, 3) ego-frame points in metres.
        cam2img: (3, 3) or (4, 4) intrinsics.
        cam2ego: (4, 4) camera pose in the ego frame.

    Returns:
        uv (N, 2) pixel coordinates (column, row) and depth (N,) in metres along the optical axis
        (negative behind the camera; uv is meaningless there).
    """
    ego2cam = np.linalg.inv(np.asarray(cam2ego, np.float64))
    points = np.asarray(points, np.float64).reshape(-1, 3)
    cam_points = points @ ego2cam[:3, :3].T + ego2cam[:3, 3]
    uvd = points_cam2img(cam_points, np.asarray(cam2img, np.float64), with_depth=True)
    return np.asarray(uvd[:, :2]), np.asarray(uvd[:, 2])


def visible_in_image(uv: np.ndarray, depth: np.ndarray, image_size: Tuple[int, int],
                     min_depth: float = 0.5) -> np.ndarray:
    """bool (N,): in front of the camera (depth > ``min_depth``) and inside the (height, width) image."""
    height, width = image_size
    return ((depth > min_depth) & (uv[:, 0] >= 0) & (uv[:, 0] < width)
            & (uv[:, 1] >= 0) & (uv[:, 1] < height))


def cameras_seeing(point: np.ndarray, cameras: Dict[str, dict], image_sizes: Dict[str, Tuple[int, int]]
                   ) -> Dict[str, np.ndarray]:
    """Which cameras see one ego-frame point (3,), and where: ``{cam_name: uv (2,)}``."""
    seen = {}
    for name, cam in cameras.items():
        uv, depth = ego_to_image(np.asarray(point)[None], cam['cam2img'], cam['cam2ego'])
        if visible_in_image(uv, depth, image_sizes[name])[0]:
            seen[name] = uv[0]
    return seen


def project_occupancy(semantics: np.ndarray, cam2img: np.ndarray, cam2ego: np.ndarray,
                      image_size: Tuple[int, int], class_names: Sequence[str] = OPENOCC_CLASSES,
                      max_depth: float = 60.0, skip_classes: Sequence[str] = (),
                      pc_range: Sequence[float] = OCC_RANGE,
                      voxel_size: float = OCC_VOXEL_SIZE) -> Dict[str, np.ndarray]:
    """Surface voxels of the grid as coloured image points, far to near (paint in this order).

    Args:
        semantics: (X, Y, Z) class ids, free = last class.
        image_size: (height, width) of the camera image.
        max_depth: voxels farther than this (metres) are dropped.
        skip_classes: class names not projected (e.g. :data:`GROUND_CLASSES`).

    Returns:
        ``uv`` (M, 2), ``depth`` (M,), ``labels`` (M,), ``colors`` (M, 3) uint8, sorted by depth descending.
    """
    occupied = semantics != len(class_names) - 1
    surface = exposed_faces(occupied).any(axis=-1)
    surface &= ~np.isin(semantics, [class_names.index(name) for name in skip_classes])
    idx = np.argwhere(surface)
    uv, depth = ego_to_image(voxel_centers(idx, pc_range, voxel_size), cam2img, cam2ego)
    keep = visible_in_image(uv, depth, image_size) & (depth <= max_depth)
    order = np.argsort(-depth[keep], kind='stable')
    labels = semantics[tuple(idx[keep][order].T)]
    return dict(uv=uv[keep][order], depth=depth[keep][order], labels=labels,
                colors=occ_palette(class_names)[labels])


def project_trajectory(traj: np.ndarray, cam2img: np.ndarray, cam2ego: np.ndarray,
                       image_size: Tuple[int, int], z: float = 0.0, samples_per_segment: int = 20,
                       start=(0.0, 0.0)) -> np.ndarray:
    """Image polyline (M, 2) of a ground trajectory; points behind the camera or outside are NaN.

    Args:
        traj: (T, 2) ego-frame waypoints, drawn from ``start`` at height ``z`` (metres).
    """
    pts = np.concatenate([np.asarray(start, np.float64)[None], np.asarray(traj, np.float64)])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)
    dense = (pts[:-1, None] + (pts[1:] - pts[:-1])[:, None] * t[None, :, None]).reshape(-1, 2)
    dense = np.concatenate([dense, pts[-1:]])
    uv, depth = ego_to_image(np.concatenate([dense, np.full((len(dense), 1), z)], 1), cam2img, cam2ego)
    uv[~visible_in_image(uv, depth, image_size)] = np.nan
    return uv


def draw_camera_panel(ax, image: np.ndarray, cam2img: np.ndarray, cam2ego: np.ndarray,
                      semantics: Optional[np.ndarray] = None,
                      trajectories: Optional[Dict[str, Tuple[np.ndarray, tuple]]] = None,
                      class_names: Sequence[str] = OPENOCC_CLASSES, title: str = '',
                      alpha: float = 0.45, skip_classes: Sequence[str] = GROUND_CLASSES,
                      max_width: int = 800) -> None:
    """A camera image with projected occupancy (dots sized by distance) and trajectories.

    Args:
        ax: matplotlib Axes.
        image: (H, W, 3) uint8 camera image.
        trajectories: ``{label: ((T, 2) waypoints, uint8 RGB)}``.
        skip_classes: class names not drawn (ground classes by default).
        max_width: the image is shown subsampled to at most this many columns (overlays keep
            full-resolution pixel coordinates).
    """
    size = image.shape[:2]
    step = -(-size[1] // max_width)
    ax.imshow(image[::step, ::step], extent=(0, size[1], size[0], 0))
    if semantics is not None:
        proj = project_occupancy(semantics, cam2img, cam2ego, size, class_names,
                                 skip_classes=[c for c in skip_classes if c in class_names])
        dot = np.clip(600.0 / np.maximum(proj['depth'], 1.0), 1.0, 120.0) * size[0] / 900.0
        ax.scatter(proj['uv'][:, 0], proj['uv'][:, 1], s=dot, c=proj['colors'] / 255.0,
                   alpha=alpha, linewidths=0, marker='s')
    for label, (traj, color) in (trajectories or {}).items():
        line = project_trajectory(traj, cam2img, cam2ego, size)
        ax.plot(line[:, 0], line[:, 1], color=np.asarray(color) / 255.0, linewidth=2.0, label=label)
    ax.set_xlim(0, size[1])
    ax.set_ylim(size[0], 0)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)

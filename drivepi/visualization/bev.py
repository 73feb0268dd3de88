"""Bird's-eye-view plots with matplotlib: occupancy seen from above, flow, trajectories, boxes.

Axes convention of every BEV plot here: horizontal axis ``-y`` (metres, right of the ego is
right), vertical axis ``x`` (metres, forward is up); the ego sits at the origin.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from drivepi.geometry import OCC_RANGE, OPENOCC_CLASSES, bev_corners

from .palette import AGENT_COLOR, EGO_COLOR, FLOW_COLOR, occ_palette
from .scene import EGO_BOX


def top_class(semantics: np.ndarray, free_index: int) -> np.ndarray:
    """Class of the highest non-free voxel of every (x, y) column.

    Args:
        semantics: (X, Y, Z) class ids.
        free_index: id of free space.

    Returns:
        (X, Y) class ids, ``free_index`` where the whole column is free.
    """
    occupied = semantics != free_index
    top = semantics.shape[2] - 1 - np.argmax(occupied[..., ::-1], axis=2)
    cls = np.take_along_axis(semantics, top[..., None], axis=2)[..., 0]
    return np.where(occupied.any(axis=2), cls, free_index)


def bev_image(semantics: np.ndarray, class_names: Sequence[str] = OPENOCC_CLASSES,
              mask_camera: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 RGB (X, Y, 3) BEV colour image of the top class per column, indexed ``[ix, iy]``.

    Columns with no camera-visible voxel are blended towards white when ``mask_camera`` is given.
    """
    palette = occ_palette(class_names)
    free = len(class_names) - 1
    image = palette[top_class(semantics, free)].astype(np.float64)
    if mask_camera is not None:
        hidden = ~np.asarray(mask_camera, bool).any(axis=2) & (image != 255).any(axis=-1)
        image[hidden] = image[hidden] * 0.4 + 255 * 0.6
    return np.round(image).astype(np.uint8)


def to_plot_xy(xy: np.ndarray) -> np.ndarray:
    """Ego-frame (N, 2) (x, y) to BEV plot coordinates (N, 2) (-y, x)."""
    xy = np.asarray(xy, np.float64)
    return np.stack([-xy[..., 1], xy[..., 0]], axis=-1)


def box_corners_xy(boxes: np.ndarray) -> np.ndarray:
    """BEV corners (N, 4, 2) of boxes (N, 5) ``[x, y, l, w, yaw]`` (metres, rad): front-left, front-right,
    rear-right, rear-left (:func:`drivepi.geometry.bev_corners`)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    full = np.zeros((len(boxes), 7))
    full[:, [0, 1, 3, 4, 6]] = boxes
    return bev_corners(full)[:, [2, 1, 0, 3]]


def plot_boxes(ax, boxes: np.ndarray, color=AGENT_COLOR, **kwargs) -> None:
    """Draw (N, 5) ``[x, y, l, w, yaw]`` boxes (ego frame) as filled outlines with a heading tick."""
    from matplotlib.patches import Polygon
    for corners in box_corners_xy(boxes):
        ax.add_patch(Polygon(to_plot_xy(corners), closed=True, facecolor=np.asarray(color) / 255,
                             edgecolor='k', linewidth=0.5, alpha=0.8, **kwargs))
        nose = to_plot_xy(corners[:2].mean(axis=0))
        centre = to_plot_xy(corners.mean(axis=0))
        ax.plot([centre[0], nose[0]], [centre[1], nose[1]], color='k', linewidth=0.6)


def ego_box() -> np.ndarray:
    """(1, 5) BEV box of the ego vehicle around its rear-axle origin."""
    return np.array([[EGO_BOX['rear_axle_to_center'], 0.0,
                      EGO_BOX['length'], EGO_BOX['width'], 0.0]])


def plot_bev(ax, semantics: Optional[np.ndarray] = None, flow: Optional[np.ndarray] = None,
             trajectories: Optional[Dict[str, Tuple[np.ndarray, tuple]]] = None,
             boxes: Optional[np.ndarray] = None, mask_camera: Optional[np.ndarray] = None,
             class_names: Sequence[str] = OPENOCC_CLASSES, pc_range: Sequence[float] = OCC_RANGE,
             flow_stride: int = 4, title: str = '') -> None:
    """One BEV panel: occupancy colours, flow quivers, agent boxes, ego car, trajectories.

    Args:
        ax: matplotlib Axes.
        semantics: optional (X, Y, Z) class ids.
        flow: optional (X, Y, Z, 2) m/s; one arrow per ``flow_stride`` columns on moving voxels.
        trajectories: ``{label: ((T, 2) ego-frame waypoints, uint8 RGB)}``, drawn from the origin.
        boxes: optional (N, 5) ``[x, y, l, w, yaw]`` agent boxes in the ego frame.
    """
    x0, y0, _, x1, y1, _ = pc_range
    if semantics is not None:
        image = bev_image(semantics, class_names, mask_camera)
        # rows = x (origin lower), columns = -y: flip the y axis of the [ix, iy] image
        ax.imshow(image[:, ::-1], origin='lower', extent=(-y1, -y0, x0, x1), interpolation='nearest')
    if flow is not None and semantics is not None:
        _plot_flow(ax, semantics, flow, len(class_names) - 1, flow_stride, pc_range)
    if boxes is not None and len(boxes):
        plot_boxes(ax, boxes)
    plot_boxes(ax, ego_box(), color=EGO_COLOR)
    for label, (traj, color) in (trajectories or {}).items():
        path = to_plot_xy(np.concatenate([np.zeros((1, 2)), np.asarray(traj, np.float64)]))
        ax.plot(path[:, 0], path[:, 1], '-o', color=np.asarray(color) / 255, markersize=2.5,
                linewidth=1.8, label=label)
    ax.set_xlim(-y1, -y0)
    ax.set_ylim(x0, x1)
    ax.set_aspect('equal')
    ax.set_xlabel('-y (m)')
    ax.set_ylabel('x (m)')
    if title:
        ax.set_title(title)


def _plot_flow(ax, semantics: np.ndarray, flow: np.ndarray, free_index: int, stride: int,
               pc_range: Sequence[float]) -> None:
    """Quiver of the mean (vx, vy) of the non-free voxels of every ``stride``-th column."""
    occupied = semantics != free_index
    count = occupied.sum(axis=2)
    mean = (flow * occupied[..., None]).sum(axis=2) / np.maximum(count, 1)[..., None]
    speed = np.linalg.norm(mean, axis=-1)
    ix, iy = np.nonzero((speed > 0.2) & (np.indices(speed.shape) % stride == 0).all(axis=0))
    if len(ix) == 0:
        return
    size = (pc_range[3] - pc_range[0]) / semantics.shape[0]
    centres = np.stack([pc_range[0] + (ix + 0.5) * size, pc_range[1] + (iy + 0.5) * size], -1)
    xy, uv = to_plot_xy(centres), to_plot_xy(mean[ix, iy])
    ax.quiver(xy[:, 0], xy[:, 1], uv[:, 0], uv[:, 1], color=np.asarray(FLOW_COLOR) / 255,
              angles='xy', scale_units='xy', scale=1.0, width=0.003)

"""Open-loop planning metrics on nuScenes: waypoint L2 and collision rate, in both conventions.

Checked against the reference code:

- **per step** (UniAD ``planning_metrics.py``: ``L2`` and ``obj_box_col`` are per-timestep sums divided
  by the number of samples, reported at 1 s / 2 s / 3 s = waypoints 2 / 4 / 6): the value at the step.
- **cumulative average** (ST-P3, used by VAD ``metric_stp3.py``: ``compute_L2(pred[:k], gt[:k])`` and
  ``obj_box_coll[:k].mean()`` for k = 2, 4, 6): the mean over all steps up to the horizon. We take the
  mean of the per-step values, which equals VAD's when every sample has the full 3 s of GT (VAD only
  evaluates those).
Both conventions' "avg" is the mean over the 1 s / 2 s / 3 s values. Note that DESIGN/REFERENCES call
UniAD's convention the averaged one; the code of both projects says the opposite, as stated here.

Collision (both references): the ego box, ``drivepi.geometry.EGO_LENGTH`` x ``EGO_WIDTH`` (4.084 m x
1.85 m), axis-aligned in the current frame and centred 0.5 m ahead of the waypoint, is tested against
the GT agent boxes of the same future time; a step where the GT trajectory itself collides is not
counted. The references rasterise boxes on a 0.5 m BEV grid (cv2 / skimage polygons); we intersect the
exact box polygons with shapely (agent corners from :func:`drivepi.geometry.bev_corners`, the mmdet3d
LiDAR-box convention), which avoids the grid's up-to-one-cell dilation.
Steps whose GT waypoint is missing (``gt_traj_mask == 0``) are left out of both the numerator and the
denominator.
"""
from typing import Sequence

import numpy as np
import shapely

from drivepi.geometry import EGO_LENGTH, EGO_WIDTH, bev_corners

EGO_CENTER_AHEAD_M = 0.5
STEP_S = 0.5
HORIZONS_S = (1.0, 2.0, 3.0)


def l2_per_step(pred_traj: np.ndarray, gt_traj: np.ndarray) -> np.ndarray:
    """Euclidean waypoint error.

    Args:
        pred_traj, gt_traj: ``(T, 2)`` ego (x, y) waypoints in metres.

    Returns:
        float64 ``(T,)`` metres.
    """
    pred_traj, gt_traj = np.asarray(pred_traj, np.float64), np.asarray(gt_traj, np.float64)
    if pred_traj.shape != gt_traj.shape or pred_traj.ndim != 2 or pred_traj.shape[1] != 2:
        raise ValueError(f'l2_per_step: trajectories must both be (T, 2), got {pred_traj.shape} and {gt_traj.shape}')
    if not (np.isfinite(pred_traj).all() and np.isfinite(gt_traj).all()):
        raise ValueError('l2_per_step: trajectory holds NaN or inf')
    return np.linalg.norm(pred_traj - gt_traj, axis=1)


def box_footprints(boxes: np.ndarray) -> np.ndarray:
    """BEV polygons of ``[x, y, z_bottom, l, w, h, yaw]`` boxes (mmdet3d LiDAR-box convention).

    Returns:
        object array ``(N,)`` of shapely Polygons.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    if not np.isfinite(boxes).all():
        raise ValueError('box_footprints: boxes hold NaN or inf')
    return shapely.polygons(bev_corners(boxes))


def ego_boxes(traj: np.ndarray, length: float = EGO_LENGTH, width: float = EGO_WIDTH,
              center_ahead: float = EGO_CENTER_AHEAD_M) -> np.ndarray:
    """Ego boxes ``(T, 7)`` at the waypoints: axis-aligned, centred ``center_ahead`` m ahead along x."""
    traj = np.asarray(traj, np.float64)
    boxes = np.zeros((len(traj), 7))
    boxes[:, 0] = traj[:, 0] + center_ahead
    boxes[:, 1] = traj[:, 1]
    boxes[:, 3:6] = (length, width, 1.0)
    return boxes


def collision_per_step(traj: np.ndarray, fut_boxes: Sequence[np.ndarray], **ego_box_cfg) -> np.ndarray:
    """Whether the ego box at each waypoint overlaps a GT agent box of that future time.

    Args:
        traj: ``(T, 2)`` waypoints in metres (current ego frame).
        fut_boxes: T arrays ``(N_t, 7)`` of agent boxes at those times (current ego frame).
        ego_box_cfg: overrides of :func:`ego_boxes` (``length``, ``width``, ``center_ahead``).

    Returns:
        bool ``(T,)``.
    """
    if len(fut_boxes) != len(traj):
        raise ValueError(f'collision_per_step: {len(traj)} waypoints but {len(fut_boxes)} sets of future boxes')
    ego = box_footprints(ego_boxes(traj, **ego_box_cfg))
    return np.array([bool(shapely.intersects(ego[t], box_footprints(agents)).any()) if len(agents) else False
                     for t, agents in enumerate(fut_boxes)])


def summarize_planning(l2: np.ndarray, collision: np.ndarray, gt_collision: np.ndarray, valid: np.ndarray,
                       step_s: float = STEP_S, horizons_s: Sequence[float] = HORIZONS_S) -> dict:
    """L2 (m) and collision rate (%) at each horizon in both conventions.

    Args:
        l2: float ``(S, T)`` per-sample per-step L2.
        collision: bool ``(S, T)`` predicted-plan collisions.
        gt_collision: bool ``(S, T)`` GT-trajectory collisions (those steps are not counted).
        valid: bool ``(S, T)`` GT waypoint exists.
        step_s: waypoint spacing in seconds.
        horizons_s: horizons to report.

    Returns:
        ``{'per_step': {'L2': {h: v, 'avg': v}, 'collision': {...}}, 'cumulative': {...},
        'l2_steps': (T,), 'collision_steps': (T,)}``; NaN where no sample has that step.
    """
    valid = valid.astype(bool)
    num_valid = valid.sum(0)
    with np.errstate(divide='ignore', invalid='ignore'):
        l2_steps = np.where(valid, l2, 0.0).sum(0) / num_valid
        col_steps = 100.0 * (collision & ~gt_collision & valid).sum(0) / num_valid
    steps = [int(round(h / step_s)) for h in horizons_s]
    if max(steps) > l2.shape[1] or min(steps) < 1:
        raise ValueError(f'horizons {list(horizons_s)} s do not fit {l2.shape[1]} steps of {step_s} s')
    result = dict(l2_steps=l2_steps, collision_steps=col_steps)
    for name, reduce in (('per_step', lambda v, k: v[k - 1]), ('cumulative', lambda v, k: v[:k].mean())):
        result[name] = {}
        for metric, values in (('L2', l2_steps), ('collision', col_steps)):
            at = {h: float(reduce(values, k)) for h, k in zip(horizons_s, steps)}
            at['avg'] = float(np.mean(list(at.values())))
            result[name][metric] = at
    return result

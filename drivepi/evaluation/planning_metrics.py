"""Open-loop planning metrics on nuScenes: waypoint L2 and collision rate, in both averaging conventions and
two collision-box conventions.

Checked against the reference code:

- **per step** (UniAD ``planning_metrics.py``: ``L2`` and ``obj_box_col`` are per-timestep sums divided
  by the number of samples, reported at 1 s / 2 s / 3 s = waypoints 2 / 4 / 6): the value at the step.
- **cumulative average** (ST-P3, used by VAD ``metric_stp3.py``: ``compute_L2(pred[:k], gt[:k])`` and
  ``obj_box_coll[:k].mean()`` for k = 2, 4, 6): the mean over all steps up to the horizon. We take the
  mean of the per-step values, which equals VAD's when every sample has the full 3 s of GT (VAD only
  evaluates those).
Both conventions' "avg" is the mean over the 1 s / 2 s / 3 s values. Note that DESIGN/REFERENCES call
UniAD's convention the averaged one; the code of both projects says the opposite, as stated here.

Collision, convention ``uniad_vad`` (both references above): the ego box, ``drivepi.geometry.EGO_LENGTH`` x
``EGO_WIDTH`` (4.084 m x 1.85 m), axis-aligned in the current frame and centred 0.5 m ahead of the waypoint,
is tested against the GT agent boxes of the same future time; a step where the GT trajectory itself collides
is not counted. The references rasterise boxes on a 0.5 m BEV grid (cv2 / skimage polygons); we intersect
the exact box polygons with shapely (agent corners from :func:`drivepi.geometry.bev_corners`, the mmdet3d
LiDAR-box convention), which avoids the grid's up-to-one-cell dilation. The references' waypoints are the
LiDAR's positions, ours the rear axle's (0.985793 m behind it on the nuScenes car); the box is placed 0.5 m
ahead of ours as it is.
Steps whose GT waypoint is missing (``gt_traj_mask == 0``) are left out of both the numerator and the
denominator.

Collision, convention ``sparsedrive``: the rule of the official DrivePI release's ``evaluate_plan.py``, taken
from SparseDrive (its paper's collision rates use it). Read from that code:

- the ego box, 4.084 m long and 1.85 m wide, is oriented along the trajectory's heading at each waypoint: the
  direction from the previous to the next waypoint (the current position, the origin, before the first; the
  last segment at the last waypoint), and, when the last waypoint is less than 0.5 m from the first, heading 0
  of the official frame at every waypoint;
- its centre is moved 0.985793 + 0.5 m forward along that heading from the waypoint; boxes intersect when
  their shapely polygons intersect (touching counts);
- a step where the GT trajectory collides does not count as a collision (it stays in the denominator), as in
  ``uniad_vad``;
- only samples whose 6 GT waypoints are all valid are evaluated (L2 too); the table is the cumulative average.

Two facts of the official data are carried over so that the same box lands where the official one does.
The official waypoints are positions of the LiDAR (SparseDrive's converter transforms the LiDAR's pose), which
sits 0.985793 m ahead of the rear axle on the nuScenes car; ours are the rear-axle centre. So a waypoint is
first moved ``waypoint_to_lidar`` m forward along the car's heading estimated from the waypoints
(:func:`lidar_from_rear`, which :func:`rear_from_lidar` inverts exactly, so that official plans scored in our frame
give the official boxes), and the official rule is applied to those points, the current LiDAR position
``(waypoint_to_lidar, 0)`` standing before the first. The official
frame is the nuScenes LiDAR frame, whose x axis (heading 0) points to the car's right: ``still_heading`` =
-pi/2 in our ego frame, so a standing ego's box lies across the lane, centred 1.49 m to its right, as in the
official evaluation. ``waypoint_to_lidar=0, still_heading=0`` gives the bare rule in our frame. The LiDAR
position is estimated from the waypoints, not from the car's true yaw (the official GT files hold the true one):
exact on circular arcs, a few centimetres off elsewhere.
"""
from typing import Sequence

import numpy as np
import shapely

from drivepi.geometry import EGO_LENGTH, EGO_WIDTH, bev_corners

EGO_CENTER_AHEAD_M = 0.5
# the official DrivePI / SparseDrive evaluation: box centre ahead of the (LiDAR) waypoint, still threshold
SPARSEDRIVE_CENTER_AHEAD_M = 0.985793 + 0.5
SPARSEDRIVE_STILL_M = 0.5
NUSCENES_LIDAR_AHEAD_M = 0.985793   # x of the nuScenes LIDAR_TOP in the ego frame (lidar2ego translation)
NUSCENES_LIDAR_X_HEADING = -np.pi / 2   # the nuScenes LiDAR's x axis in the ego frame: the car's right
COLLISION_CONVENTIONS = ('uniad_vad', 'sparsedrive')
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


def trajectory_heading(traj: np.ndarray, still_heading: float = 0.0,
                       still_distance: float = SPARSEDRIVE_STILL_M, origin: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """Heading (rad) at each waypoint by the official evaluation's rule (``get_yaw`` of SparseDrive).

    The heading at waypoint t is the direction from waypoint t-1 to waypoint t+1, the current position
    (``origin``) standing before the first, and from the second-last to the last at the last waypoint; when the
    last waypoint is less than ``still_distance`` m from the first, every heading is ``still_heading``.

    Args:
        traj: ``(T, 2)`` waypoints (m).
        origin: the current position of the point the waypoints track (m).

    Returns:
        float64 ``(T,)``.
    """
    traj = np.asarray(traj, np.float64)
    if np.linalg.norm(traj[-1] - traj[0]) < still_distance:
        return np.full(len(traj), float(still_heading))
    points = np.concatenate([np.asarray(origin, np.float64).reshape(1, 2), traj])
    ahead = np.concatenate([points[2:], points[-1:]])
    behind = np.concatenate([points[:-2], points[-2:-1]])
    delta = ahead - behind
    return np.arctan2(delta[:, 1], delta[:, 0])


def _wrap(angle: float) -> float:
    return float(np.arctan2(np.sin(angle), np.cos(angle)))


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def lidar_from_rear(traj: np.ndarray, ahead: float = NUSCENES_LIDAR_AHEAD_M) -> np.ndarray:
    """The LiDAR's position ``(T, 2)`` (m, ego frame) at each rear-axle waypoint: ``ahead`` m along the car's
    heading there, estimated from the waypoints as the tangent of circular arcs through them: at the first
    waypoint twice the angle of the chord from the origin (the arc leaves the origin straight on), later the
    chord angle plus half its turn from the previous chord; the last heading when a waypoint repeats the one
    before; straight on (0) for every waypoint when the trajectory stands still (last within 0.5 m of the first).
    :func:`rear_from_lidar` inverts it exactly."""
    traj = np.asarray(traj, np.float64).reshape(-1, 2)
    if not len(traj) or np.linalg.norm(traj[-1] - traj[0]) < SPARSEDRIVE_STILL_M:
        return traj + [ahead, 0.0]
    out, prev, heading, ref, gain = [], np.zeros(2), 0.0, 0.0, 1.0
    for point in traj:
        chord = point - prev
        if np.linalg.norm(chord) > 1e-9:
            angle = float(np.arctan2(chord[1], chord[0]))
            heading = angle + gain * _wrap(angle - ref)
            ref, gain = angle, 0.5
        out.append(point + ahead * _unit(heading))
        prev = point
    return np.array(out)


def rear_from_lidar(lidar: np.ndarray, ahead: float = NUSCENES_LIDAR_AHEAD_M) -> np.ndarray:
    """The rear-axle waypoints ``(T, 2)`` whose :func:`lidar_from_rear` are the LiDAR positions ``lidar`` (m, ego
    frame), solved waypoint by waypoint: the chord angles that put the LiDAR on the point are the roots of a
    function of one angle (found on a 0.5-degree scan, refined by bisection); the one closest to the direction of
    the point is taken. Where none exists, the previous heading is kept."""
    lidar = np.asarray(lidar, np.float64).reshape(-1, 2)
    if not len(lidar) or np.linalg.norm(lidar[-1] - lidar[0]) < SPARSEDRIVE_STILL_M:
        return lidar - [ahead, 0.0]
    scan = np.linspace(-np.pi, np.pi, 721)
    out, prev, heading, ref, gain = [], np.zeros(2), 0.0, 0.0, 1.0
    for point in lidar:
        w = point - prev
        if np.linalg.norm(w - ahead * _unit(heading)) < 1e-9:      # the waypoint repeats the previous one
            out.append(prev.copy())
            continue
        phi = float(np.arctan2(w[1], w[0]))

        def residual(angle, w=w, ref=ref, gain=gain):   # zero where the chord direction puts the LiDAR on the point
            turn = gain * np.arctan2(np.sin(angle - ref), np.cos(angle - ref))
            return w[1] * np.cos(angle) - w[0] * np.sin(angle) - ahead * np.sin(turn)

        def length(angle, ref=ref, gain=gain):          # the chord's length for that direction
            return float(w @ _unit(angle)) - ahead * np.cos(gain * _wrap(angle - ref))

        angles = phi + scan
        values = residual(angles)
        roots = []
        for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) <= 0):
            low, high = angles[i], angles[i + 1]
            if np.sign(residual(low)) == np.sign(residual(high)) != 0:
                continue
            for _ in range(50):
                mid = (low + high) / 2
                low, high = (mid, high) if np.sign(residual(mid)) == np.sign(residual(low)) else (low, mid)
            angle = (low + high) / 2
            if length(angle) > 1e-9 and abs(residual(angle)) < 1e-7:
                roots.append(angle)
        if roots:
            angle = min(roots, key=lambda a: abs(_wrap(a - phi)))
            prev = prev + length(angle) * _unit(angle)
            heading, ref, gain = angle + gain * _wrap(angle - ref), angle, 0.5
        else:
            prev = point - ahead * _unit(heading)
        out.append(prev.copy())
    return np.array(out)


def sparsedrive_ego_boxes(traj: np.ndarray, length: float = EGO_LENGTH, width: float = EGO_WIDTH,
                          center_ahead: float = SPARSEDRIVE_CENTER_AHEAD_M,
                          waypoint_to_lidar: float = NUSCENES_LIDAR_AHEAD_M,
                          still_heading: float = NUSCENES_LIDAR_X_HEADING) -> np.ndarray:
    """Ego boxes ``(T, 7)`` of the official DrivePI / SparseDrive collision rule (module docstring).

    Args:
        traj: ``(T, 2)`` rear-axle waypoints (m, ego frame).
        center_ahead: box centre ahead of the LiDAR point along the heading (official: 0.985793 + 0.5 m).
        waypoint_to_lidar: the LiDAR ahead of the rear axle (m): waypoints move this far along their motion
            heading first (0: the waypoints are taken as the official ones).
        still_heading: heading (rad, ego frame) of every box of a trajectory that stands still (the official
            frame's heading 0: the nuScenes LiDAR's x axis, -pi/2).
    """
    traj = np.asarray(traj, np.float64)
    lidar = lidar_from_rear(traj, waypoint_to_lidar)
    yaw = trajectory_heading(lidar, still_heading=still_heading, origin=(waypoint_to_lidar, 0.0))
    boxes = np.zeros((len(traj), 7))
    boxes[:, :2] = lidar + center_ahead * np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    boxes[:, 3:6] = (length, width, 1.0)
    boxes[:, 6] = yaw
    return boxes


def collision_per_step(traj: np.ndarray, fut_boxes: Sequence[np.ndarray], convention: str = 'uniad_vad',
                       **ego_box_cfg) -> np.ndarray:
    """Whether the ego box at each waypoint overlaps a GT agent box of that future time.

    Args:
        traj: ``(T, 2)`` waypoints in metres (current ego frame).
        fut_boxes: T arrays ``(N_t, 7)`` of agent boxes at those times (current ego frame).
        convention: ``'uniad_vad'`` (axis-aligned box ahead of the waypoint, :func:`ego_boxes`) or
            ``'sparsedrive'`` (the official DrivePI evaluation's box, :func:`sparsedrive_ego_boxes`).
        ego_box_cfg: overrides of that convention's box function (``length``, ``width``, ``center_ahead``, ...).

    Returns:
        bool ``(T,)``.
    """
    if len(fut_boxes) != len(traj):
        raise ValueError(f'collision_per_step: {len(traj)} waypoints but {len(fut_boxes)} sets of future boxes')
    if convention not in COLLISION_CONVENTIONS:
        raise ValueError(f'collision convention {convention!r} is not one of {COLLISION_CONVENTIONS}')
    make_boxes = ego_boxes if convention == 'uniad_vad' else sparsedrive_ego_boxes
    ego = box_footprints(make_boxes(traj, **ego_box_cfg))
    agents = [np.asarray(boxes, np.float64).reshape(-1, 7) for boxes in fut_boxes]
    step = np.repeat(np.arange(len(traj)), [len(boxes) for boxes in agents])   # the time of each agent box
    hit = np.zeros(len(traj), dtype=bool)
    if len(step):   # every step's boxes in one shapely call
        np.logical_or.at(hit, step, shapely.intersects(ego[step], box_footprints(np.concatenate(agents))))
    return hit


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

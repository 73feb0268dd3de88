"""Ego-motion targets from ego poses: future trajectory, driving command, ego status.

All functions take 4x4 ``ego2global`` poses (float64, metres) and return values in the ego frame
of the current keyframe (x forward, y left), as docs/contracts.md defines them.
"""
from typing import Optional, Sequence

import numpy as np

from drivepi.geometry import GO_STRAIGHT, TURN_LEFT, TURN_RIGHT, wrap_angle

COMMAND_LATERAL_THRESHOLD = 2.0  # metres of lateral offset of the last valid waypoint


def yaw_of(pose: np.ndarray) -> float:
    """Heading (rad) of a 4x4 pose: the angle of its x axis in the parent frame's xy plane."""
    return float(np.arctan2(pose[1, 0], pose[0, 0]))


def points_in_ego(ego2global: np.ndarray, points_global: np.ndarray) -> np.ndarray:
    """(N,3) global points -> (N,3) points in the ego frame of ``ego2global``."""
    rot, trans = ego2global[:3, :3], ego2global[:3, 3]
    return (np.asarray(points_global, dtype=np.float64) - trans) @ rot


def future_trajectory(ego2global: np.ndarray, future_ego2globals: Sequence[Optional[np.ndarray]]):
    """Ego (x, y) at each future keyframe in the current ego frame.

    Args:
        ego2global: (4,4) pose of the current keyframe.
        future_ego2globals: one (4,4) pose per future step (t+0.5 s, t+1.0 s, ...), ``None`` past
            the end of the scene.

    Returns:
        traj: float32 (T, 2) metres, zeros where the step is missing.
        mask: float32 (T,), 1 where the step exists.
    """
    num_steps = len(future_ego2globals)
    traj = np.zeros((num_steps, 2), dtype=np.float32)
    mask = np.zeros(num_steps, dtype=np.float32)
    for step, pose in enumerate(future_ego2globals):
        if pose is None:
            continue
        traj[step] = points_in_ego(ego2global, pose[None, :3, 3])[0, :2]
        mask[step] = 1.0
    return traj, mask


def driving_command(traj: np.ndarray, mask: np.ndarray,
                    threshold: float = COMMAND_LATERAL_THRESHOLD) -> int:
    """Command from the lateral offset y (m) of the last valid waypoint.

    ``y <= -threshold`` -> turn right (0), ``y >= threshold`` -> turn left (1), else go straight (2);
    go straight when no waypoint is valid (the last keyframe of a scene).
    """
    valid = np.flatnonzero(np.asarray(mask) > 0)
    if valid.size == 0:
        return GO_STRAIGHT
    lateral = float(traj[valid[-1], 1])
    if lateral <= -threshold:
        return TURN_RIGHT
    if lateral >= threshold:
        return TURN_LEFT
    return GO_STRAIGHT


def ego_status(timestamps: Sequence[float], ego2globals: Sequence[np.ndarray], now_index: int) -> np.ndarray:
    """Velocity, acceleration and yaw rate of the ego at ``now_index`` by finite differences.

    Args:
        timestamps: (K,) seconds, increasing; K >= 1.
        ego2globals: K (4,4) poses at those times.
        now_index: index of the current keyframe in the sequence.

    Returns:
        float32 (5,): vx, vy (m/s), ax, ay (m/s^2) in the current ego frame, yaw_rate (rad/s).
        Velocity and yaw rate come from the interval ending at ``now_index`` (the one starting
        there when it is first); acceleration from the change of velocity over that interval and
        its neighbour on the same side; zero where the sequence is too short.
    """
    times = np.asarray(timestamps, dtype=np.float64)
    if np.any(np.diff(times) <= 0):
        raise ValueError(f'ego_status needs strictly increasing timestamps, got {times.tolist()}')
    rot_now = np.asarray(ego2globals[now_index])[:3, :3]
    positions = np.stack([np.asarray(p)[:3, 3] for p in ego2globals])
    yaws = np.array([yaw_of(np.asarray(p)) for p in ego2globals])
    dts = np.diff(times)
    velocities = (np.diff(positions, axis=0) @ rot_now)[:, :2] / dts[:, None]  # per interval
    yaw_rates = wrap_angle(np.diff(yaws)) / dts
    status = np.zeros(5, dtype=np.float32)
    if len(dts) == 0:
        return status
    interval = now_index - 1 if now_index > 0 else 0
    status[:2] = velocities[interval]
    status[4] = yaw_rates[interval]
    neighbour = interval - 1 if now_index > 0 else interval + 1
    if 0 <= neighbour < len(dts):
        first, second = sorted((neighbour, interval))
        span = (times[second + 1] - times[first]) / 2  # between the interval midpoints
        status[2:4] = (velocities[second] - velocities[first]) / span
    return status


def boxes_global_to_frame(frame2global: np.ndarray, centers: np.ndarray, sizes_lwh: np.ndarray,
                          yaws_global: np.ndarray) -> np.ndarray:
    """Global boxes -> float32 (N, 7) ``[x, y, z_bottom, l, w, h, yaw]`` in a local frame.

    Args:
        frame2global: (4,4) pose of the target frame (an ego pose, or lidar2ego composed with it).
        centers: (N,3) global box centres (m); sizes_lwh: (N,3) length, width, height (m);
        yaws_global: (N,) headings in the global frame (rad).
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    sizes_lwh = np.asarray(sizes_lwh, dtype=np.float64).reshape(-1, 3)
    boxes = np.zeros((len(centers), 7), dtype=np.float32)
    if len(centers) == 0:
        return boxes
    local = points_in_ego(frame2global, centers)
    local[:, 2] -= sizes_lwh[:, 2] / 2
    boxes[:, :3] = local
    boxes[:, 3:6] = sizes_lwh
    yaws_global = np.asarray(yaws_global, dtype=np.float64).reshape(-1)
    headings = np.stack([np.cos(yaws_global), np.sin(yaws_global), np.zeros_like(yaws_global)], axis=1)
    headings_local = headings @ frame2global[:3, :3]  # rotate the heading direction into the frame
    boxes[:, 6] = np.arctan2(headings_local[:, 1], headings_local[:, 0])
    return boxes

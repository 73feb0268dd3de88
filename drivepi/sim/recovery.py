"""Recovery samples: the ego displaced off the expert's path, and how it gets back (ChauffeurNet-style
perturbations, see docs/mini_dataset.md "Recovery samples").

A recovery sample of keyframe time ``t`` puts the ego ``lateral`` m to the left (negative: right) of the
expert's rear-axle pose, turned by ``heading`` rad. Its poses:

- history (``tau <= t``: the LiDAR sweeps and the ego-status keyframes): the expert's poses moved by the
  one rigid displacement that maps the expert's pose at ``t`` onto the perturbed pose (the ego has been
  driving the expert's motion, offset), so its ego status equals the expert's;
- future (the planning label): a path in the expert path's Frenet frame, lateral offset
  ``d(sigma)`` = the quintic with ``d(0) = lateral``, ``d'(0) = tan(heading)``, ``d''(0) = 0`` and
  ``d = d' = d'' = 0`` after ``L`` m, driven with the expert's progress along its path (the expert's
  speed): the ego rejoins the expert path ``converge`` s after ``t``, the shortest of
  ``RecoverySpec.converge_s`` whose path keeps within :data:`RECOVERY_LIMITS`.

A candidate offset is rejected when the expert is too slow to steer back, the path breaks the limits,
or the ego box (history or future) overlaps an agent or leaves the road surface; each sample tries up to
``RecoverySpec.tries`` candidates drawn from its own generator (deterministic per scene seed).
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from drivepi.sim import layout
from drivepi.sim.geometry import pose2d_matrix, wrap_angle
from drivepi.sim.traffic import EGO_REAR_AXLE_OFFSET, EGO_SIZE

# Limits the generator keeps every recovery path within: inside the closed-loop comfort bounds
# (configs/_base_/closed_loop.py scoring.comfort_bounds: 4.89 m/s^2, 0.95 rad/s; a test checks).
RECOVERY_LIMITS = dict(max_abs_lat_accel=3.5, max_abs_yaw_rate=0.7)
CHECK_DT = 0.2          # s between the states the comfort check differentiates
COLLISION_DT = 0.25     # s between the future states checked against the agents
COLLISION_MARGIN = 0.2  # m of clearance between the ego box and any agent box
OFF_ROAD = (layout.TERRAIN, layout.SIDEWALK)


@dataclass(frozen=True)
class RecoverySpec:
    """Recovery-sample knobs of a mini-dataset preset (``per_keyframe = 0``: none)."""
    per_keyframe: int = 0                 # recovery samples per eligible train keyframe
    lateral: tuple = (0.5, 2.0)           # |lateral offset| range, m (side drawn at random)
    heading_deg: tuple = (5.0, 15.0)      # |heading offset| range, degrees (sign drawn at random)
    converge_s: tuple = (2.0, 2.5, 3.0)   # candidate times (s) to rejoin the expert path, shortest first
    min_speed: float = 2.0                # m/s: mean expert speed over the first converge time, else no sample
    tries: int = 8                        # candidate offsets per sample


@dataclass
class RecoveryTrack:
    """A feasible recovery sample: offsets, the perturbed ``pose`` (4,4) at ``t``, ``displacement``
    (4,4; perturbed = displacement @ expert, applied to the history), ``converge`` (s) and the
    future poses (4,4) at ``future_times``."""
    t: float
    lateral: float
    heading: float
    pose: np.ndarray
    displacement: np.ndarray
    converge: float
    future_times: np.ndarray
    future_poses: list

    def history_pose(self, world, tau: float) -> np.ndarray:
        """(4,4) ego pose at an earlier time ``tau <= t`` (the displaced expert)."""
        return self.displacement @ world.ego2global(tau)


class ExpertPath:
    """The expert's rear-axle path of a world as a function of arc length ``s``, and ``s`` over time."""

    def __init__(self, world):
        self.world = world
        xy = world.ego_track[:, :2]
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        self.s_track = np.r_[0.0, np.cumsum(seg)]                  # per track sample
        keep = np.r_[True, seg > 1e-6]                              # strictly increasing s
        self.s, self.xy = self.s_track[keep], xy[keep]
        self.yaw = np.unwrap(world.ego_track[keep, 2])

    def s_at(self, t) -> np.ndarray:
        return np.interp(t, self.world.times, self.s_track)

    def offset_points(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """(N,2) global points ``d`` m to the left of the path at arc lengths ``s``."""
        yaw = np.interp(s, self.s, self.yaw)
        base = np.stack([np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])], -1)
        return base + d[:, None] * np.stack([-np.sin(yaw), np.cos(yaw)], -1)


def quintic(d0: float, slope0: float, length: float):
    """``d(sigma)`` with d(0) = d0, d'(0) = slope0, d''(0) = 0 and d = d' = d'' = 0 from ``length`` on."""
    L = length
    a = np.linalg.solve(np.array([[L ** 3, L ** 4, L ** 5], [3 * L ** 2, 4 * L ** 3, 5 * L ** 4],
                                  [6 * L, 12 * L ** 2, 20 * L ** 3]]), -np.array([d0 + slope0 * L, slope0, 0.0]))
    coeffs = np.array([d0, slope0, 0.0, *a])

    def d(sigma):
        sigma = np.clip(np.asarray(sigma, float), 0.0, L)
        return np.polyval(coeffs[::-1], sigma)
    return d


def path_comfort(xy: np.ndarray, dt: float) -> tuple:
    """Lateral acceleration (m/s^2) and yaw rate (rad/s) along (N,2) positions ``dt`` s apart
    (central differences; zero where the speed is below 0.5 m/s)."""
    vel = np.gradient(xy, dt, axis=0)
    acc = np.gradient(vel, dt, axis=0)
    speed = np.linalg.norm(vel, axis=1)
    moving = speed > 0.5
    lat = np.where(moving, (vel[:, 0] * acc[:, 1] - vel[:, 1] * acc[:, 0]) / np.maximum(speed, 1e-6), 0.0)
    return lat, np.where(moving, lat / np.maximum(speed, 1e-6), 0.0)


def recovery_path(path: ExpertPath, t: float, lateral: float, heading: float, converge: float,
                  times: np.ndarray) -> np.ndarray:
    """(N,2) global positions of the recovery path at ``times`` (>= t)."""
    s0 = path.s_at(t)
    d = quintic(lateral, np.tan(heading), path.s_at(t + converge) - s0)
    s = path.s_at(times)
    return path.offset_points(s, d(s - s0))


def _ego_box(pose: np.ndarray) -> np.ndarray:
    """``[cx, cy, l, w, yaw]`` of the ego's footprint at a rear-axle pose."""
    yaw = np.arctan2(pose[1, 0], pose[0, 0])
    centre = pose[:2, 3] + EGO_REAR_AXLE_OFFSET * np.array([np.cos(yaw), np.sin(yaw)])
    return np.array([centre[0], centre[1], EGO_SIZE[0], EGO_SIZE[1], yaw])


def rectangles_overlap(box: np.ndarray, others: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N,) bool: rectangle ``[cx, cy, l, w, yaw]`` overlaps each of (N,5) others grown by ``margin``
    (separating-axis test)."""
    others = np.asarray(others, float).reshape(-1, 5)
    rects = np.concatenate([box[None], others])
    axes = np.stack([np.cos(rects[:, 4]), np.sin(rects[:, 4])], -1)
    axes = np.concatenate([axes, axes[:, ::-1] * [-1, 1]])                # all x and y axes, (2(N+1), 2)

    def radius(r, ax):  # (M,) rects x (K,2) axes -> (M,K) half extents
        u = np.stack([np.cos(r[:, 4]), np.sin(r[:, 4])], -1)
        v = u[:, ::-1] * [-1, 1]
        return r[:, 2:3] / 2 * np.abs(u @ ax.T) + r[:, 3:4] / 2 * np.abs(v @ ax.T)

    dist = np.abs((others[:, :2] - box[:2]) @ axes.T)                      # (N,K)
    separated = dist > radius(box[None], axes) + radius(others, axes) + margin
    return ~separated.any(axis=1)


def _clear(world, poses_by_time) -> bool:
    """No overlap with any agent and all footprint corners on road surface."""
    for tau, pose in poses_by_time:
        box = _ego_box(pose)
        c, s = np.cos(box[4]), np.sin(box[4])
        corners = box[:2] + np.array([[sx * box[2] / 2, sy * box[3] / 2] for sx in (-1, 1) for sy in (-1, 1)]) \
            @ np.array([[c, s], [-s, c]])
        if np.isin(world.ground_material_at(corners), OFF_ROAD).any():
            return False
        agents = world.agents_at(tau)
        if len(agents) and rectangles_overlap(box, agents.boxes[:, [0, 1, 3, 4, 6]], COLLISION_MARGIN).any():
            return False
    return True


def _poses_along(xy: np.ndarray, start_yaw: float) -> list:
    """(4,4) poses at positions ``xy`` (N,2) headed along the path (``start_yaw`` for the first)."""
    yaws = [start_yaw]
    for k in range(1, len(xy)):
        step = xy[k] - xy[k - 1]
        yaws.append(np.arctan2(step[1], step[0]) if np.hypot(*step) > 1e-3 else yaws[-1])
    return [pose2d_matrix(x, y, yaw) for (x, y), yaw in zip(xy, yaws)]


def plan_recovery(world, t: float, lateral: float, heading: float, future_times: np.ndarray,
                  history_times: np.ndarray, spec: RecoverySpec,
                  path: Optional[ExpertPath] = None) -> Optional[RecoveryTrack]:
    """The recovery sample of offsets (``lateral`` m, ``heading`` rad) at time ``t``, or ``None`` when
    infeasible (see the module docstring). ``future_times`` are the label's times (> t), ``history_times``
    the earlier times whose displaced poses the sample renders (sweeps)."""
    path = path or ExpertPath(world)
    s0 = path.s_at(t)
    if (path.s_at(t + spec.converge_s[0]) - s0) / spec.converge_s[0] < spec.min_speed:
        return None
    ex, ey, eyaw = world.ego_pose(t)
    normal = np.array([-np.sin(eyaw), np.cos(eyaw)])
    pose = pose2d_matrix(ex + lateral * normal[0], ey + lateral * normal[1], float(wrap_angle(eyaw + heading)))
    for converge in spec.converge_s:
        dense = t + np.arange(0.0, converge + 0.5 + 1e-9, CHECK_DT)
        lat, yaw_rate = path_comfort(recovery_path(path, t, lateral, heading, converge, dense), CHECK_DT)
        inner = slice(1, -1)   # one-sided differences at the ends
        if (np.abs(lat[inner]).max() <= RECOVERY_LIMITS['max_abs_lat_accel']
                and np.abs(yaw_rate[inner]).max() <= RECOVERY_LIMITS['max_abs_yaw_rate']):
            break
    else:
        return None
    displacement = pose @ np.linalg.inv(world.ego2global(t))
    check_times = t + np.arange(COLLISION_DT, max(future_times[-1] - t, converge) + 1e-9, COLLISION_DT)
    check_xy = recovery_path(path, t, lateral, heading, converge, np.r_[t, check_times])
    future_checks = list(zip(check_times, _poses_along(check_xy, eyaw + heading)[1:]))
    history = [(tau, displacement @ world.ego2global(tau)) for tau in history_times]
    if not _clear(world, [(t, pose)] + history + future_checks):
        return None
    future_xy = recovery_path(path, t, lateral, heading, converge, np.r_[t, future_times])
    return RecoveryTrack(t, lateral, heading, pose, displacement, converge, np.asarray(future_times),
                         _poses_along(future_xy, eyaw + heading)[1:])


def sample_recovery(world, t: float, future_times: np.ndarray, history_times: np.ndarray, spec: RecoverySpec,
                    rng: np.random.Generator, path: Optional[ExpertPath] = None) -> Optional[RecoveryTrack]:
    """Draw up to ``spec.tries`` offsets from ``rng``; the first feasible recovery, or ``None``."""
    path = path or ExpertPath(world)
    for _ in range(spec.tries):
        lateral = float(rng.choice([-1.0, 1.0]) * rng.uniform(*spec.lateral))
        heading = float(rng.choice([-1.0, 1.0]) * np.deg2rad(rng.uniform(*spec.heading_deg)))
        track = plan_recovery(world, t, lateral, heading, future_times, history_times, spec, path)
        if track is not None:
            return track
    return None

"""Tracking controller: pure pursuit for steering and a PID on speed, following a planned trajectory.

A plan is the planner's ``(6, 2)`` ego-frame waypoints at 0.5 s steps. It is turned into a timed
reference in the global frame (:class:`ReferenceTrajectory`, the planning pose prepended at time 0)
and tracked at the simulation rate until the next replanning.
"""
from dataclasses import dataclass

import numpy as np

from .kinematics import EgoState, VehicleParams


@dataclass(frozen=True)
class ReferenceTrajectory:
    """A timed path in the global frame.

    Attributes:
        times: (T,) s, increasing. xy: (T, 2) m, rear-axle positions to reach at those times.
    """
    times: np.ndarray
    xy: np.ndarray

    @classmethod
    def from_plan(cls, plan: np.ndarray, pose: EgoState, plan_dt: float = 0.5) -> 'ReferenceTrajectory':
        """Turn ego-frame waypoints ``plan`` (K, 2) at ``plan_dt`` steps, planned at ``pose``, into global."""
        plan = np.asarray(plan, dtype=np.float64)
        c, s = np.cos(pose.yaw), np.sin(pose.yaw)
        rot = np.array([[c, -s], [s, c]])
        pts = np.concatenate([np.zeros((1, 2)), plan], axis=0) @ rot.T + [pose.x, pose.y]
        return cls(times=pose.t + plan_dt * np.arange(len(pts)), xy=pts)

    def position(self, t: float) -> np.ndarray:
        """(2,) reference position at time ``t``, extrapolated linearly past the last waypoint."""
        if t <= self.times[-1]:
            return np.array([np.interp(t, self.times, self.xy[:, i]) for i in range(2)])
        vel = (self.xy[-1] - self.xy[-2]) / (self.times[-1] - self.times[-2])
        return self.xy[-1] + vel * (t - self.times[-1])

    def speed(self, t: float, window: float) -> float:
        """Mean reference speed (m/s) over ``[t, t + window]``."""
        return float(np.linalg.norm(self.position(t + window) - self.position(t)) / window)


class PurePursuitController:
    """Pure-pursuit steering plus PID speed tracking of a :class:`ReferenceTrajectory`.

    The target speed is the reference's mean speed over the next ``speed_window`` seconds (0 when the
    reference moves backwards relative to the car, which cannot reverse) plus ``position_gain`` times the
    along-track lag behind the reference position now.

    Args:
        params: vehicle geometry (wheelbase for pure pursuit).
        dt: control period (s).
        lookahead_min: minimum look-ahead distance (m).
        lookahead_time: look-ahead distance per unit speed (s), ``Ld = max(min, time * v)``.
        speed_window: time window (s) over which the reference speed is averaged.
        kp, ki, kd: PID gains on the speed error (1/s, 1/s^2, -).
        position_gain: speed added per metre the car lags behind the reference position (1/s).
        stop_speed: reference speeds below this (m/s) mean "stop": steering is held (pure pursuit towards a
            standing reference point a few metres away would turn the wheels to full lock).
    """

    def __init__(self, params: VehicleParams, dt: float = 0.1, lookahead_min: float = 3.0,
                 lookahead_time: float = 0.8, speed_window: float = 0.5, kp: float = 1.5,
                 ki: float = 0.2, kd: float = 0.0, position_gain: float = 1.0, stop_speed: float = 0.2):
        self.params, self.dt = params, dt
        self.lookahead_min, self.lookahead_time = lookahead_min, lookahead_time
        self.speed_window = speed_window
        self.kp, self.ki, self.kd = kp, ki, kd
        self.position_gain = position_gain
        self.stop_speed = stop_speed
        self.reference = None
        self._integral = 0.0
        self._prev_error = None

    def set_reference(self, reference: ReferenceTrajectory) -> None:
        """Track a new reference from now on (the PID integrator is kept across replans)."""
        self.reference = reference

    def control(self, state: EgoState):
        """Commands ``(accel m/s^2, steer rad)`` for the current ``state``."""
        if self.reference is None:
            raise RuntimeError('PurePursuitController.control called before set_reference')
        heading = np.array([np.cos(state.yaw), np.sin(state.yaw)])
        step = self.reference.position(state.t + self.speed_window) - self.reference.position(state.t)
        # a reference moving backwards (e.g. to a stop point the car overshot) means "stop": the car cannot reverse
        v_ref = self.reference.speed(state.t, self.speed_window) if step @ heading > 0 else 0.0
        lag = (self.reference.position(state.t) - [state.x, state.y]) @ heading
        v_target = max(0.0, v_ref + self.position_gain * lag)
        return self._speed_control(state.v, v_target), self._steer_control(state, v_ref)

    def _speed_control(self, v: float, v_ref: float) -> float:
        error = v_ref - v
        self._integral = float(np.clip(self._integral + error * self.dt, -5.0, 5.0))
        if v_ref <= 0.0:   # asked to stand: no wound-up integral may push the car forward
            self._integral = min(self._integral, 0.0)
        derivative = 0.0 if self._prev_error is None else (error - self._prev_error) / self.dt
        self._prev_error = error
        return self.kp * error + self.ki * self._integral + self.kd * derivative

    def _steer_control(self, state: EgoState, v_ref: float) -> float:
        if v_ref < self.stop_speed:   # the reference stands still: nothing to steer towards
            return state.steer
        lookahead = max(self.lookahead_min, self.lookahead_time * max(state.v, v_ref))
        target = lookahead_point(self.reference.xy, np.array([state.x, state.y]), lookahead)
        dx, dy = target[0] - state.x, target[1] - state.y
        c, s = np.cos(state.yaw), np.sin(state.yaw)
        local_x, local_y = c * dx + s * dy, -s * dx + c * dy
        dist_sq = local_x * local_x + local_y * local_y
        if dist_sq < 1e-6:
            return state.steer
        return float(np.arctan(2.0 * self.params.wheelbase * local_y / dist_sq))


def lookahead_point(path: np.ndarray, position: np.ndarray, distance: float) -> np.ndarray:
    """Point ``distance`` m along ``path`` (P, 2) beyond the projection of ``position`` (2,).

    The path is extended along its last segment when it is too short.
    """
    seg_start, seg_vec = path[:-1], np.diff(path, axis=0)
    seg_len = np.linalg.norm(seg_vec, axis=1)
    valid = seg_len > 1e-6
    if not valid.any():
        return path[-1]
    seg_start, seg_vec, seg_len = seg_start[valid], seg_vec[valid], seg_len[valid]
    frac = np.clip(np.einsum('ij,ij->i', position - seg_start, seg_vec) / seg_len ** 2, 0.0, 1.0)
    nearest = np.argmin(np.linalg.norm(seg_start + frac[:, None] * seg_vec - position, axis=1))
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s_target = cum[nearest] + frac[nearest] * seg_len[nearest] + distance
    if s_target >= cum[-1]:
        direction = seg_vec[-1] / seg_len[-1]
        return seg_start[-1] + seg_vec[-1] + direction * (s_target - cum[-1])
    k = np.searchsorted(cum, s_target, side='right') - 1
    return seg_start[k] + seg_vec[k] * (s_target - cum[k]) / seg_len[k]

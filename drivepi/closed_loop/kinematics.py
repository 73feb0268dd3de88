"""Kinematic bicycle model of the ego vehicle, integrated at a fixed rate (10 Hz by default).

The state is referenced to the rear-axle centre, like the nuScenes ego frame (x forward, y left).
Within one step the commanded steering angle and acceleration are held constant, so the path is a
circular arc of curvature ``tan(steer) / wheelbase``; the step integrates that arc exactly (no Euler
drift), so a constant steering angle drives a circle of radius ``wheelbase / tan(steer)``.
"""
from dataclasses import dataclass

import numpy as np

from drivepi.geometry import EGO_LENGTH, EGO_REAR_AXLE_TO_CENTER, EGO_WIDTH
from drivepi.sim.geometry import pose2d_matrix, wrap_angle


@dataclass(frozen=True)
class VehicleParams:
    """Ego vehicle geometry (m) and actuator limits (rad, rad/s, m/s^2).

    Defaults: the nuScenes data-collection car (Renault Zoe), ``drivepi.geometry.EGO_LENGTH`` x ``EGO_WIDTH``.
    """
    wheelbase: float = 2.588
    length: float = EGO_LENGTH
    width: float = EGO_WIDTH
    rear_axle_to_center: float = EGO_REAR_AXLE_TO_CENTER
    max_steer: float = 0.6
    max_steer_rate: float = 0.8
    max_accel: float = 3.0
    max_decel: float = 8.0


@dataclass(frozen=True)
class EgoState:
    """Ego state at one instant, global frame.

    Attributes:
        x, y: rear-axle centre (m). yaw: heading (rad). v: speed along the heading (m/s, >= 0).
        steer: front-wheel steering angle (rad). accel: acceleration applied over the last step (m/s^2).
        t: time (s).
    """
    x: float
    y: float
    yaw: float
    v: float
    steer: float = 0.0
    accel: float = 0.0
    t: float = 0.0

    def center(self, params: VehicleParams) -> np.ndarray:
        """Geometric centre of the vehicle box (2,) in m."""
        return np.array([self.x + params.rear_axle_to_center * np.cos(self.yaw),
                         self.y + params.rear_axle_to_center * np.sin(self.yaw)])

    def ego2global(self, z: float = 0.0) -> np.ndarray:
        """(4, 4) ego-to-global transform of this pose (rotation about z only)."""
        return pose2d_matrix(self.x, self.y, self.yaw, z)


class KinematicBicycle:
    """Rear-axle kinematic bicycle model with steering-rate and acceleration limits.

    Args:
        params: vehicle geometry and limits.
        dt: integration step in s (0.1 s = 10 Hz).
    """

    def __init__(self, params: VehicleParams = VehicleParams(), dt: float = 0.1):
        if dt <= 0:
            raise ValueError(f'KinematicBicycle: dt must be positive, got {dt}')
        self.params = params
        self.dt = dt

    def step(self, state: EgoState, accel_cmd: float, steer_cmd: float) -> EgoState:
        """Advance ``state`` by one step ``dt`` under the commanded acceleration and steering angle.

        The commands are clipped to the actuator limits; the speed never goes negative (the car
        stops and stays stopped when braking would reverse it).
        """
        p, dt = self.params, self.dt
        if not (np.isfinite(accel_cmd) and np.isfinite(steer_cmd)):
            raise ValueError(f'KinematicBicycle.step: non-finite command accel={accel_cmd}, steer={steer_cmd}')
        max_delta = p.max_steer_rate * dt
        steer = float(np.clip(np.clip(steer_cmd, state.steer - max_delta, state.steer + max_delta),
                              -p.max_steer, p.max_steer))
        accel = float(np.clip(accel_cmd, -p.max_decel, p.max_accel))
        v_end = state.v + accel * dt
        if v_end < 0.0:  # stops within the step: travel until v = 0
            arc = state.v * state.v / (2.0 * -accel) if accel < 0 else 0.0
            accel, v_end = -state.v / dt, 0.0
        else:
            arc = state.v * dt + 0.5 * accel * dt * dt
        x, y, yaw = integrate_arc(state.x, state.y, state.yaw, arc, np.tan(steer) / p.wheelbase)
        return EgoState(x=x, y=y, yaw=float(wrap_angle(yaw)), v=v_end, steer=steer, accel=accel,
                        t=state.t + dt)


def integrate_arc(x: float, y: float, yaw: float, arc: float, curvature: float):
    """Pose after driving ``arc`` metres on a circle of ``curvature`` (1/m) from (x, y, yaw)."""
    dyaw = curvature * arc
    if abs(dyaw) < 1e-9:
        return x + arc * np.cos(yaw), y + arc * np.sin(yaw), yaw
    return (x + (np.sin(yaw + dyaw) - np.sin(yaw)) / curvature,
            y - (np.cos(yaw + dyaw) - np.cos(yaw)) / curvature,
            yaw + dyaw)

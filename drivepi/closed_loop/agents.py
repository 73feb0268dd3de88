"""Other road users in the closed loop: log replay (non-reactive) and IDM lane followers (reactive).

Both kinds expose ``reset(times) -> AgentStates`` (the agents at ``times[0]``) and
``step(index, ego) -> AgentStates`` (the agents at ``times[index]``, given the ego state at the
previous step), so the episode loop does not care which one it runs. Agents are
:class:`drivepi.sim.world.AgentStates` (global boxes ``[x, y, z_bottom, l, w, h, yaw]`` and velocities).
"""
from dataclasses import dataclass
from typing import List

import numpy as np
import shapely

from drivepi.sim.world import AgentStates

from .kinematics import EgoState, VehicleParams

VEHICLE_PREFIX = 'vehicle.'


class LogReplayAgents:
    """Non-reactive agents: every agent follows its logged trajectory.

    Args:
        source: a :class:`~drivepi.closed_loop.sources.SceneSource` (uses ``agents_at(t)``).
    """

    def __init__(self, source):
        self.source = source
        self.times = None

    def reset(self, times: np.ndarray) -> AgentStates:
        self.times = np.asarray(times)
        return self.source.agents_at(float(self.times[0]))

    def step(self, index: int, ego: EgoState) -> AgentStates:
        return self.source.agents_at(float(self.times[index]))


@dataclass(frozen=True)
class IDMParams:
    """Intelligent Driver Model parameters (Treiber et al. 2000).

    Attributes:
        accel_max: maximum acceleration a (m/s^2). decel_comfort: comfortable deceleration b (m/s^2).
        time_headway: desired time gap T (s). min_gap: jam distance s0 (m). exponent: delta.
        decel_max: hard braking limit (m/s^2). moving_speed: a vehicle whose logged speed exceeds
        this (m/s) at some time in the episode becomes reactive; slower ones are replayed.
        lookahead: leader search distance along the path (m). lateral_tolerance: how far (m) from
        the path centre another agent's centre may be and still count as in the lane.
    """
    accel_max: float = 1.5
    decel_comfort: float = 2.0
    time_headway: float = 1.5
    min_gap: float = 2.0
    exponent: float = 4.0
    decel_max: float = 8.0
    moving_speed: float = 1.0
    lookahead: float = 50.0
    lateral_tolerance: float = 1.75


def idm_acceleration(v: np.ndarray, v_desired: np.ndarray, gap: np.ndarray, v_leader: np.ndarray,
                     p: IDMParams) -> np.ndarray:
    """IDM acceleration (m/s^2) for speeds ``v``, gaps to the leader ``gap`` (m, inf = free road)."""
    v_desired = np.maximum(v_desired, 0.1)
    s_star = p.min_gap + np.maximum(0.0, v * p.time_headway +
                                    v * (v - v_leader) / (2.0 * np.sqrt(p.accel_max * p.decel_comfort)))
    interaction = np.where(np.isfinite(gap), (s_star / np.maximum(gap, 0.1)) ** 2, 0.0)
    return p.accel_max * (1.0 - (v / v_desired) ** p.exponent - interaction)


class IDMAgents:
    """Reactive vehicles: each moving vehicle drives along its logged path (its lane in the log)
    with IDM speed control, yielding to whatever is ahead in that lane, the ego included.

    Pedestrians, cyclists' trajectories, static objects and vehicles that never move are replayed
    from the log; vehicles that are not in the log at the episode start are replayed too.

    Args:
        source: the scene source. ego_params: ego box geometry (the ego is a possible leader).
        params: :class:`IDMParams`. path_extension: metres added past the end of a logged path
        along its final heading.
    """

    def __init__(self, source, ego_params: VehicleParams, params: IDMParams = IDMParams(),
                 path_extension: float = 50.0):
        self.source, self.ego_params, self.params = source, ego_params, params
        self.path_extension = path_extension
        self.times = None

    def reset(self, times: np.ndarray) -> AgentStates:
        self.times = np.asarray(times, dtype=np.float64)
        log = [self.source.agents_at(float(t)) for t in self.times]
        first = log[0]
        self.reactive = [i for i, (tok, cat) in enumerate(zip(first.tokens, first.categories))
                         if cat.startswith(VEHICLE_PREFIX)
                         and self._max_logged_speed(log, tok) > self.params.moving_speed]
        self.tokens = [first.tokens[i] for i in self.reactive]
        self.paths = [self._logged_path(log, tok) for tok in self.tokens]
        self.dims = first.boxes[self.reactive][:, 2:6].copy()  # z_bottom, l, w, h
        self.s = np.zeros(len(self.tokens))
        self.v = np.linalg.norm(first.velocities[self.reactive], axis=1) if self.reactive else np.zeros(0)
        self.v_desired = np.array([self._max_logged_speed(log, tok) for tok in self.tokens])
        self.reactive_categories = {tok: first.categories[i] for tok, i in zip(self.tokens, self.reactive)}
        return self._compose(0)

    def step(self, index: int, ego: EgoState) -> AgentStates:
        if len(self.tokens):
            dt = float(self.times[index] - self.times[index - 1])
            current = self._compose(index - 1)
            gap, v_lead = self._leaders(current, ego)
            acc = np.clip(idm_acceleration(self.v, self.v_desired, gap, v_lead, self.params),
                          -self.params.decel_max, self.params.accel_max)
            v_new = np.maximum(self.v + acc * dt, 0.0)
            self.s = self.s + 0.5 * (self.v + v_new) * dt
            self.v = v_new
        return self._compose(index)

    @staticmethod
    def _max_logged_speed(log: List[AgentStates], token: str) -> float:
        speeds = [np.linalg.norm(a.velocities[a.tokens.index(token)]) for a in log if token in a.tokens]
        return float(max(speeds))

    def _logged_path(self, log: List[AgentStates], token: str) -> shapely.LineString:
        pts = np.array([a.boxes[a.tokens.index(token), :2] for a in log if token in a.tokens])
        yaw = log[0].boxes[log[0].tokens.index(token), 6]
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 0.05])
        pts = pts[keep]
        heading = pts[-1] - pts[-2] if len(pts) > 1 else np.array([np.cos(yaw), np.sin(yaw)])
        heading = heading / np.linalg.norm(heading)
        return shapely.LineString(np.concatenate([pts, pts[-1:] + self.path_extension * heading[None]]))

    def _pose(self, k: int):
        path = self.paths[k]
        s = min(self.s[k], path.length - 0.01)
        p0 = np.array(shapely.get_coordinates(path.interpolate(s))[0])
        p1 = np.array(shapely.get_coordinates(path.interpolate(s + 0.01))[0])
        d = p1 - p0
        return p0, float(np.arctan2(d[1], d[0]))

    def _compose(self, index: int) -> AgentStates:
        """Replayed agents from the log at ``times[index]`` plus the reactive ones at their state."""
        logged = self.source.agents_at(float(self.times[index]))
        keep = [i for i, tok in enumerate(logged.tokens) if tok not in self.reactive_categories]
        tokens = [logged.tokens[i] for i in keep] + self.tokens
        categories = [logged.categories[i] for i in keep] + [self.reactive_categories[t] for t in self.tokens]
        boxes, vels = [logged.boxes[keep]], [logged.velocities[keep]]
        for k in range(len(self.tokens)):
            xy, yaw = self._pose(k)
            boxes.append(np.array([[xy[0], xy[1], *self.dims[k], yaw]]))
            vels.append(self.v[k] * np.array([[np.cos(yaw), np.sin(yaw)]]))
        return AgentStates(tokens, categories, np.concatenate(boxes), np.concatenate(vels))

    def _leaders(self, agents: AgentStates, ego: EgoState):
        """Gap (m, inf when free) and leader speed along the path (m/s) for each reactive agent."""
        ego_center = ego.center(self.ego_params)
        centers = np.concatenate([agents.boxes[:, :2], ego_center[None]])
        lengths = np.concatenate([agents.boxes[:, 3], [self.ego_params.length]])
        vels = np.concatenate([agents.velocities, [[ego.v * np.cos(ego.yaw), ego.v * np.sin(ego.yaw)]]])
        own = {tok: i for i, tok in enumerate(agents.tokens)}
        points = shapely.points(centers)
        gap = np.full(len(self.tokens), np.inf)
        v_lead = np.zeros(len(self.tokens))
        for k, tok in enumerate(self.tokens):
            path, s_self = self.paths[k], min(self.s[k], self.paths[k].length)
            s_other = shapely.line_locate_point(path, points)
            lateral = shapely.distance(path.interpolate(s_other), points)
            ahead = (s_other - s_self > 0) & (s_other - s_self < self.params.lookahead) & \
                (lateral < self.params.lateral_tolerance)
            ahead[own[tok]] = False
            if not ahead.any():
                continue
            gaps = s_other - s_self - 0.5 * (lengths + self.dims[k, 1])
            j = np.flatnonzero(ahead)[np.argmin(gaps[ahead])]
            _, yaw = self._pose(k)
            gap[k] = gaps[j]
            v_lead[k] = max(0.0, vels[j] @ np.array([np.cos(yaw), np.sin(yaw)]))
        return gap, v_lead

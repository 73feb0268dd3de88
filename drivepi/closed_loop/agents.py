"""Other road users in the closed loop: log replay (non-reactive) and IDM lane followers (reactive).

Both kinds expose ``reset(times) -> AgentStates`` (the agents at ``times[0]``) and
``step(index, ego) -> AgentStates`` (the agents at ``times[index]``, given the ego state at the
previous step), so the episode loop does not care which one it runs. Agents are
:class:`drivepi.sim.world.AgentStates` (global boxes ``[x, y, z_bottom, l, w, h, yaw]`` and velocities).
"""
from dataclasses import dataclass

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
        self.log = [self.source.agents_at(float(t)) for t in self.times]
        first = self.log[0]
        self.reactive = [i for i, (tok, cat) in enumerate(zip(first.tokens, first.categories))
                         if cat.startswith(VEHICLE_PREFIX)
                         and self._max_logged_speed(tok) > self.params.moving_speed]
        self.tokens = [first.tokens[i] for i in self.reactive]
        self.paths = np.array([self._logged_path(tok) for tok in self.tokens], dtype=object)
        self.dims = first.boxes[self.reactive][:, 2:6].copy()  # z_bottom, l, w, h
        self.s = np.zeros(len(self.tokens))
        self.v = np.linalg.norm(first.velocities[self.reactive], axis=1) if self.reactive else np.zeros(0)
        self.v_desired = np.array([self._max_logged_speed(tok) for tok in self.tokens])
        self.reactive_categories = {tok: first.categories[i] for tok, i in zip(self.tokens, self.reactive)}
        self.current = self._compose(0)
        return self.current

    def step(self, index: int, ego: EgoState) -> AgentStates:
        """Advance the reactive agents from ``times[index - 1]`` (given ``ego`` then) to ``times[index]``."""
        if len(self.tokens):
            dt = float(self.times[index] - self.times[index - 1])
            gap, v_lead = self._leaders(self.current, ego)
            acc = np.clip(idm_acceleration(self.v, self.v_desired, gap, v_lead, self.params),
                          -self.params.decel_max, self.params.accel_max)
            v_new = np.maximum(self.v + acc * dt, 0.0)
            self.s = self.s + 0.5 * (self.v + v_new) * dt
            self.v = v_new
        self.current = self._compose(index)
        return self.current

    def _max_logged_speed(self, token: str) -> float:
        return float(max(np.linalg.norm(a.velocities[a.tokens.index(token)]) for a in self.log if token in a.tokens))

    def _logged_path(self, token: str) -> shapely.LineString:
        pts = np.array([a.boxes[a.tokens.index(token), :2] for a in self.log if token in a.tokens])
        yaw = self.log[0].boxes[self.log[0].tokens.index(token), 6]
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 0.05])
        pts = pts[keep]
        heading = pts[-1] - pts[-2] if len(pts) > 1 else np.array([np.cos(yaw), np.sin(yaw)])
        heading = heading / np.linalg.norm(heading)
        return shapely.LineString(np.concatenate([pts, pts[-1:] + self.path_extension * heading[None]]))

    def _poses(self):
        """Positions (K, 2) and headings (K,) of the reactive agents at their path coordinates."""
        s = np.minimum(self.s, shapely.length(self.paths) - 0.01)
        p0 = shapely.get_coordinates(shapely.line_interpolate_point(self.paths, s))
        d = shapely.get_coordinates(shapely.line_interpolate_point(self.paths, s + 0.01)) - p0
        return p0, np.arctan2(d[:, 1], d[:, 0])

    def _compose(self, index: int) -> AgentStates:
        """Replayed agents from the log at ``times[index]`` plus the reactive ones at their state."""
        logged = self.log[index]
        keep = [i for i, tok in enumerate(logged.tokens) if tok not in self.reactive_categories]
        tokens = [logged.tokens[i] for i in keep] + self.tokens
        categories = [logged.categories[i] for i in keep] + [self.reactive_categories[t] for t in self.tokens]
        xy, yaw = self._poses() if self.tokens else (np.zeros((0, 2)), np.zeros(0))
        boxes = np.concatenate([logged.boxes[keep], np.c_[xy, self.dims, yaw]])
        vels = np.concatenate([logged.velocities[keep], self.v[:, None] * np.c_[np.cos(yaw), np.sin(yaw)]])
        return AgentStates(tokens, categories, boxes, vels)

    def _leaders(self, agents: AgentStates, ego: EgoState):
        """Gap (m, inf when free) and leader speed along the path (m/s) for each reactive agent."""
        centers = np.concatenate([agents.boxes[:, :2], ego.center(self.ego_params)[None]])
        lengths = np.concatenate([agents.boxes[:, 3], [self.ego_params.length]])
        vels = np.concatenate([agents.velocities, [[ego.v * np.cos(ego.yaw), ego.v * np.sin(ego.yaw)]]])
        xy, yaw = self._poses()
        heading = np.c_[np.cos(yaw), np.sin(yaw)]
        # candidate pairs (agent k, other m): in front of k and within the look-ahead distance
        offset = centers[None] - xy[:, None]
        near = (np.einsum('kmj,kj->km', offset, heading) > 0) & \
            (np.linalg.norm(offset, axis=2) < self.params.lookahead)
        near[np.arange(len(self.tokens)), [agents.tokens.index(tok) for tok in self.tokens]] = False
        kk, mm = np.nonzero(near)
        points = shapely.points(centers[mm])
        located = shapely.line_locate_point(self.paths[kk], points)
        lateral = shapely.distance(shapely.line_interpolate_point(self.paths[kk], located), points)
        along = located - np.minimum(self.s, shapely.length(self.paths))[kk]
        ok = (along > 0) & (along < self.params.lookahead) & (lateral < self.params.lateral_tolerance)
        gaps = np.full(near.shape, np.inf)
        gaps[kk[ok], mm[ok]] = along[ok] - 0.5 * (lengths[mm[ok]] + self.dims[kk[ok], 1])
        leader = np.argmin(gaps, axis=1)
        gap = gaps[np.arange(len(leader)), leader]
        v_lead = np.einsum('kj,kj->k', vels[leader], heading)
        return gap, np.where(np.isfinite(gap), np.maximum(v_lead, 0.0), 0.0)

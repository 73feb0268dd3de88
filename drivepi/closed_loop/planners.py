"""Planners the closed loop can drive with: the logged expert, constant velocity, and the model.

A planner maps a :class:`PlanningContext` to ``(6, 2)`` ego-frame waypoints at 0.5 s steps (the
model's ``pred_traj`` convention, docs/contracts.md). The model planner lives in
:mod:`drivepi.closed_loop.model_planner` (it needs the dataset pipeline and the model).
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np

from drivepi.sim.world import AgentStates

from .kinematics import EgoState

NUM_WAYPOINTS = 6
PLAN_DT = 0.5


@dataclass
class PlanningContext:
    """What a planner may look at when it plans.

    Attributes:
        source: the :class:`~drivepi.closed_loop.sources.SceneSource` of the episode.
        ego: the simulated ego state now. agents: the agents now (global frame).
        history: earlier simulated ego states of the episode (oldest first, at the simulation rate).
        agent_history: the agents at those earlier steps.
        episode_id: id of the running episode.
    """
    source: object
    ego: EgoState
    agents: AgentStates
    history: List[EgoState] = field(default_factory=list)
    agent_history: List[AgentStates] = field(default_factory=list)
    episode_id: str = ''


def global_to_ego(points: np.ndarray, ego: EgoState) -> np.ndarray:
    """Global (N, 2) positions expressed in the ego frame of ``ego`` (rear axle, x forward)."""
    c, s = np.cos(ego.yaw), np.sin(ego.yaw)
    d = np.asarray(points, dtype=np.float64) - [ego.x, ego.y]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def expert_positions(source, times) -> np.ndarray:
    """(N, 2) the expert's logged positions (global frame, m) at ``times`` (s) of the episode's source."""
    return np.array([source.expert_pose(float(t))[:2] for t in times])


def expert_ahead(ctx: PlanningContext, start: float) -> np.ndarray:
    """(6, 2) the expert's positions at ``start`` + 0.5 ... 3 s, seen from the simulated ego."""
    return global_to_ego(expert_positions(ctx.source, start + PLAN_DT * np.arange(1, NUM_WAYPOINTS + 1)), ctx.ego)


def route_time(ctx: PlanningContext, step: float = 0.1) -> float:
    """The logged time (s, on a ``step`` grid over the log) at which the expert was nearest the simulated ego's
    position: where the ego is along the logged route, whether it is ahead of the expert's clock or behind it."""
    times = np.arange(ctx.source.start_time, ctx.source.end_time + step / 2, step)
    positions = expert_positions(ctx.source, times)
    return float(times[np.argmin(np.hypot(*(positions - [ctx.ego.x, ctx.ego.y]).T))])


def route_ahead(ctx: PlanningContext) -> np.ndarray:
    """(6, 2) the logged route ahead of the simulated ego, in its frame: the expert's positions 0.5 ... 3 s after
    it passed the ego's place (:func:`route_time`), so at the expert's pace from where the ego is."""
    return expert_ahead(ctx, route_time(ctx))


class ExpertPlanner:
    """The logged expert: its future positions at t + 0.5 s ... t + 3 s, seen from the simulated ego."""
    name = 'expert'

    def plan(self, ctx: PlanningContext) -> np.ndarray:
        return expert_ahead(ctx, ctx.ego.t)


class ConstantVelocityPlanner:
    """Keeps the current speed and heading: waypoints ``(v * t, 0)``."""
    name = 'constant_velocity'

    def plan(self, ctx: PlanningContext) -> np.ndarray:
        times = PLAN_DT * np.arange(1, NUM_WAYPOINTS + 1)
        return np.stack([ctx.ego.v * times, np.zeros(NUM_WAYPOINTS)], axis=1)

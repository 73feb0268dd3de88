"""The model planner's driving command comes from the logged route at the simulated ego's place on it."""
import math

import numpy as np
import pytest

from drivepi.closed_loop.kinematics import EgoState
from drivepi.closed_loop.model_planner import ModelPlanner
from drivepi.closed_loop.planners import ExpertPlanner, PlanningContext, route_ahead, route_time
from drivepi.closed_loop.sources import SceneSource
from drivepi.datasets.converters.ego_motion import driving_command

GO_STRAIGHT, TURN_LEFT = 2, 1


class LeftTurnSource(SceneSource):
    """The expert drives +x at 10 m/s for 4 s (40 m), turns left on a quarter circle of radius 10 m about (40, 10),
    then drives +y; no agents, no sensors (only ``expert_pose`` is used)."""
    setting, sensor_note, scene_name, map = 'mini_world', 'hand-made', 'left_turn', None
    start_time, end_time, timestamp_offset = 0.0, 10.0, 0.0

    def expert_pose(self, t):
        angle = t - 4.0  # rad: 10 m/s on a 10 m radius
        if angle <= 0:
            return np.array([10.0 * t, 0.0, 0.0])
        if angle <= math.pi / 2:
            return np.array([40.0 + 10.0 * math.sin(angle), 10.0 - 10.0 * math.cos(angle), angle])
        return np.array([50.0, 10.0 + 10.0 * (angle - math.pi / 2), math.pi / 2])

    agents_at = render_lidar = render_cameras = None


def context_at(x: float, clock: float) -> PlanningContext:
    """The ego on the straight at ``x`` (m), heading +x, at time ``clock`` (s)."""
    return PlanningContext(LeftTurnSource(), EgoState(x, 0.0, 0.0, v=10.0, t=clock), agents=None)


def test_an_ego_on_the_expert_clock_gets_the_expert_future():
    ctx = context_at(20.0, 2.0)
    assert route_time(ctx) == pytest.approx(2.0)
    np.testing.assert_allclose(route_ahead(ctx), ExpertPlanner().plan(ctx), atol=1e-9)
    assert ModelPlanner._command(ctx) == TURN_LEFT  # the expert is 1 rad into the turn 3 s later


@pytest.mark.parametrize('x, clock, clock_rule, expected', [
    (10.0, 2.5, TURN_LEFT, GO_STRAIGHT),  # 15 m behind the expert: the junction is 30 m away, 3 s of straight
    (30.0, 1.0, GO_STRAIGHT, TURN_LEFT),  # 20 m ahead of it: the turn begins 10 m ahead
])
def test_an_ego_off_the_expert_clock_gets_the_route_ahead_of_its_own_place(x, clock, clock_rule, expected):
    ctx = context_at(x, clock)
    assert route_time(ctx) == pytest.approx(x / 10.0)
    ahead = route_ahead(ctx)
    assert ahead.shape == (6, 2) and np.all(np.diff(np.hypot(*ahead.T)) > 0)  # moving away along the route
    # the expert's poses on the clock's next 3 s would give the other command
    assert driving_command(ExpertPlanner().plan(ctx), np.ones(6)) == clock_rule
    assert ModelPlanner._command(ctx) == expected

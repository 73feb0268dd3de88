"""Mode hysteresis in closed loop: the previous plan seen from the new pose, and the choice that keeps it unless
another candidate is cheaper by the margin (ModelPlanner with a stub model, no sensors)."""
import numpy as np
import torch
from mmdet3d.structures import Det3DDataSample

from drivepi.closed_loop.kinematics import EgoState
from drivepi.closed_loop.model_planner import ModelPlanner
from drivepi.closed_loop.planners import PlanningContext
from drivepi.models.occupancy_guided_stop import hysteresis_choice

T = 0.5 * np.arange(1, 7)
STRAIGHT = np.stack([8.0 * T, np.zeros(6)], 1)
LEFT = STRAIGHT + [0.0, 1.0]


def test_hysteresis_keeps_the_previous_mode_within_the_margin():
    candidates = np.stack([STRAIGHT, LEFT])
    assert hysteresis_choice(candidates, [1.0, 0.8], STRAIGHT, margin=0.5) == 0  # 0.2 cheaper: kept
    assert hysteresis_choice(candidates, [1.0, 0.3], STRAIGHT, margin=0.5) == 1  # 0.7 cheaper: switch
    assert hysteresis_choice(candidates, [1.0, 0.8], None, margin=0.5) == 1  # no previous plan: the cheapest
    assert hysteresis_choice(candidates, [1.0, 0.8], STRAIGHT, margin=0.0) == 1
    previous = LEFT.copy()
    previous[3:] = np.nan  # the previous plan reaches only three of the new waypoint times
    assert hysteresis_choice(candidates, [0.8, 1.0], previous, margin=0.5) == 1
    assert hysteresis_choice(candidates, [0.8, 1.0], np.full((6, 2), np.nan), margin=0.5) == 0


class StubModel:
    """``test_step`` returns the next of the given (costs of STRAIGHT, LEFT) as candidates of a mode refiner."""

    def __init__(self, costs, margin):
        self.costs, self.plan_refiner = list(costs), type('Refiner', (), dict(hysteresis_margin=margin))()

    def test_step(self, data):
        ds = Det3DDataSample()
        ds.pred_traj_candidates = torch.tensor(np.stack([STRAIGHT, LEFT]), dtype=torch.float32)
        ds.pred_traj_costs = torch.tensor(self.costs.pop(0))
        ds.pred_traj = ds.pred_traj_candidates[int(ds.pred_traj_costs.argmin())]
        return [ds]


def planner(costs, margin, tmp_path):
    stub_dataset = type('Dataset', (), dict(parse_data_info=staticmethod(lambda info: info),
                                            pipeline=staticmethod(lambda info: info)))()
    planner = ModelPlanner(StubModel(costs, margin), stub_dataset, {}, tmp_path)
    planner.build_info = lambda ctx: {}
    return planner


def context(x: float, t: float, episode: str = 'e') -> PlanningContext:
    """The ego driving north (+y) at x = 10 m, 8 m/s, ``x`` m along the road at time ``t``."""
    return PlanningContext(source=None, ego=EgoState(10.0, x, np.pi / 2, 8.0, t=t), agents=None, episode_id=episode)


def test_previous_plan_seen_from_the_new_pose(tmp_path):
    plan = planner([], 0.5, tmp_path)
    plan.remember(context(0.0, 0.0), LEFT)
    seen = plan.previous_at(context(4.0, 0.5))  # 0.5 s and 4 m later, on the same line
    np.testing.assert_allclose(seen[:5], STRAIGHT[:5] + [0.0, 1.0], atol=1e-9)  # the rest of the left plan
    assert np.isnan(seen[5]).all()  # 3.5 s after the first plan: past its horizon


def test_planner_keeps_its_mode_until_another_is_clearly_cheaper(tmp_path):
    """Costs (straight, left) per plan: the left is cheapest first; then the straight one is 0.1 cheaper (kept:
    left), then 0.7 cheaper (switch); a new episode forgets the previous plan."""
    plan = planner([[1.0, 0.9], [0.8, 0.9], [0.2, 0.9], [0.8, 0.9]], 0.5, tmp_path)
    chosen = [plan.plan(context(4.0 * k, 0.5 * k)) for k in range(3)]
    np.testing.assert_array_equal(chosen, [LEFT, LEFT, STRAIGHT])
    np.testing.assert_array_equal(plan.plan(context(0.0, 0.0, episode='other')), STRAIGHT)
    always_cheapest = planner([[1.0, 0.9], [0.8, 0.9]], 0.0, tmp_path)
    assert [always_cheapest.plan(context(4.0 * k, 0.5 * k))[0, 1] for k in range(2)] == [1.0, 0.0]

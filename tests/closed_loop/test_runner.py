"""Episode loop and runner: failures, resume, outputs, reactive agents, on hand-made scenes."""
import json

import numpy as np
import pytest
from closed_loop_scenes import LANE_Y, StraightRoadSource

from drivepi.closed_loop.agents import IDMAgents, IDMParams, idm_acceleration
from drivepi.closed_loop.episode import EpisodeRunner, PlanError, check_plan
from drivepi.closed_loop.kinematics import EgoState, VehicleParams
from drivepi.closed_loop.planners import ConstantVelocityPlanner, ExpertPlanner
from drivepi.closed_loop.runner import METRICS_FILE, ClosedLoopRunner, format_table

FRONT = VehicleParams().rear_axle_to_center + VehicleParams().length / 2


class CountingPlanner:
    """Wraps a planner, counting calls; ``nan_after`` makes it return NaN from that call on."""

    def __init__(self, planner, nan_after=None):
        self.planner, self.nan_after, self.calls = planner, nan_after, 0

    def plan(self, ctx):
        self.calls += 1
        plan = self.planner.plan(ctx)
        return np.full_like(plan, np.nan) if self.nan_after is not None and self.calls > self.nan_after else plan


def scenes():
    return {'road_a': StraightRoadSource(speed=8.0, name='road_a'),
            'road_b': StraightRoadSource(speed=6.0, parked=[('p', 'vehicle.car', 30.0, -5.6, 0.0)], name='road_b')}


def test_check_plan_rejects_nan_wrong_shape_and_absurd_speed():
    good = np.stack([np.arange(1, 7) * 4.0, np.zeros(6)], 1)
    np.testing.assert_array_equal(check_plan(good, 40.0), good)
    with pytest.raises(PlanError, match='non-finite'):
        check_plan(np.where(np.arange(12).reshape(6, 2) == 3, np.nan, good), 40.0)
    with pytest.raises(PlanError, match='shape'):
        check_plan(good[:5], 40.0)
    with pytest.raises(PlanError, match='m/s'):
        check_plan(good * 10.0, 40.0)  # 80 m/s


def test_expert_episode_follows_the_log_and_replans_at_2hz():
    log = EpisodeRunner().run(scenes()['road_b'], ExpertPlanner(), 'expert', 0.0, 5.0, 'road_b')
    assert log['status'] == 'ok' and log['failure'] is None
    ego, expert = np.array(log['ego']), np.array(log['expert'])
    assert ego.shape == (51, 6) and len(log['agents']) == 51 and len(log['times']) == 51
    np.testing.assert_allclose(ego[:, :2], expert[:, :2], atol=0.05)
    assert [p['step'] for p in log['plans']] == list(range(0, 50, 5))
    assert log['metrics']['pdms'] == pytest.approx(1.0) and log['metrics']['nc'] == 1.0


def test_loop_catches_collision_with_parked_car_at_the_right_step():
    source = StraightRoadSource(speed=8.0, parked=[('parked', 'vehicle.car', 40.0, LANE_Y, 0.0)])
    log = EpisodeRunner().run(source, ConstantVelocityPlanner(), 'cv', 0.0, 6.0, 'crash')
    xs = np.array(log['ego'])[:, 0]
    expected = int(np.argmax(xs + FRONT >= 40.0 - 2.25))  # first step touching the car's rear
    (collision,) = [e for e in log['events'] if e['type'] == 'collision']
    assert collision['step'] == expected and collision['agent'] == 'parked' and collision['at_fault']
    assert log['metrics']['nc'] == 0.0


def test_nan_plan_fails_episode_and_run_continues(tmp_path):
    runner = ClosedLoopRunner(EpisodeRunner(), tmp_path, episode_seconds=4.0)
    broken = CountingPlanner(ExpertPlanner(), nan_after=2)
    summary = runner.run(list(scenes()), scenes().__getitem__,
                         {'broken': broken, 'constant_velocity': ConstantVelocityPlanner()})
    # the planner turns to NaN at its 3rd call: step 10 (2 Hz) of the first scene, step 0 of the second
    for scene, step in (('road_a', 10), ('road_b', 0)):
        log = json.loads((tmp_path / 'episodes' / 'broken' / f'{scene}.json').read_text())
        assert log['status'] == 'failed' and log['metrics'] is None
        assert log['failure']['step'] == step and 'non-finite' in log['failure']['reason']
        assert len(log['ego']) == len(log['agents']) == step + 1
    assert summary['planners']['broken']['num_failed'] == 2 and summary['planners']['broken']['pdms'] == 0.0
    cv = summary['planners']['constant_velocity']
    assert cv['num_failed'] == 0 and cv['num_episodes'] == 2 and cv['pdms'] == pytest.approx(1.0)
    saved = json.loads((tmp_path / METRICS_FILE).read_text())
    assert saved['planners'] == summary['planners']
    assert saved['episodes']['broken']['road_a']['status'] == 'failed'
    table = format_table(summary)
    assert table.splitlines()[0].startswith('planner') and 'broken' in table and 'constant_velocity' in table


def test_resume_skips_finished_episodes(tmp_path):
    first = CountingPlanner(ExpertPlanner())
    runner = ClosedLoopRunner(EpisodeRunner(), tmp_path, episode_seconds=2.0)
    runner.run(['road_a'], scenes().__getitem__, {'expert': first})
    assert first.calls == 4  # 2 s at 2 Hz
    before = (tmp_path / 'episodes' / 'expert' / 'road_a.json').read_bytes()
    loaded, second = [], CountingPlanner(ExpertPlanner())

    def load(name):
        loaded.append(name)
        return scenes()[name]

    summary = runner.run(['road_a', 'road_b'], load, {'expert': second})
    assert loaded == ['road_b'] and second.calls == 4  # only the new scene ran
    assert (tmp_path / 'episodes' / 'expert' / 'road_a.json').read_bytes() == before
    assert summary['planners']['expert']['num_episodes'] == 2
    other = ClosedLoopRunner(EpisodeRunner(replan_hz=5.0), tmp_path, episode_seconds=2.0, config=dict(replan_hz=5.0))
    with pytest.raises(ValueError, match='other closed-loop settings'):
        other.run(['road_a'], load, {'expert': second})
    (tmp_path / 'episodes' / 'expert' / 'road_a.json').write_text('{"trunc')
    with pytest.raises(ValueError, match='road_a.json'):
        runner.run(['road_a'], load, {'expert': second})


def test_idm_matches_closed_form_and_agent_stops_behind_stopped_ego():
    p = IDMParams()
    # free road at the desired speed: zero acceleration; standing still behind nothing: accel_max
    assert idm_acceleration(np.array([10.0]), np.array([10.0]), np.array([np.inf]), np.array([0.0]), p)[0] == 0.0
    assert idm_acceleration(np.array([0.0]), np.array([10.0]), np.array([np.inf]), np.array([0.0]), p)[0] == p.accel_max
    s_star = p.min_gap + 5.0 * p.time_headway + 5.0 * 5.0 / (2 * np.sqrt(p.accel_max * p.decel_comfort))
    expected = p.accel_max * (1 - (5.0 / 10.0) ** 4 - (s_star / 20.0) ** 2)
    assert idm_acceleration(np.array([5.0]), np.array([10.0]), np.array([20.0]), np.array([0.0]), p)[0] == \
        pytest.approx(expected)
    # a car 25 m behind the stopped ego, logged to drive through it at 8 m/s
    source = StraightRoadSource(speed=0.0, movers=[('follower', -25.0, LANE_Y, 8.0)])
    times = np.arange(0.0, 10.01, 0.1)
    agents = IDMAgents(source, VehicleParams(), p)
    agents.reset(times)
    ego = EgoState(x=0.0, y=LANE_Y, yaw=0.0, v=0.0)
    for k in range(1, len(times)):
        state = agents.step(k, ego)
    follower = state.boxes[state.tokens.index('follower')]
    gap = (ego.x + VehicleParams().rear_axle_to_center - VehicleParams().length / 2) - (follower[0] + follower[3] / 2)
    assert 0.5 < gap < p.min_gap + 1.0  # stopped near the jam distance instead of driving through
    assert np.linalg.norm(state.velocities[state.tokens.index('follower')]) < 0.3


def test_malformed_settings_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match='replan_hz=3.0 must divide sim_hz=10.0'):
        EpisodeRunner(replan_hz=3.0)
    with pytest.raises(ValueError, match="agents.mode must be 'log_replay' or 'idm'"):
        EpisodeRunner(agents=dict(mode='reactive'))
    with pytest.raises(TypeError, match='wheel_base'):
        EpisodeRunner(vehicle=dict(wheel_base=2.5))


def test_resume_fingerprint_follows_checkpoint_content_not_its_path(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from drivepi.closed_loop.model_planner import file_digest
    from drivepi.closed_loop.runner import settings_fingerprint
    config = dict(sim_hz=10.0, scenes=['scene-0001'])
    ckpt = tmp_path / 'iter_10.pth'
    ckpt.write_bytes(b'weights v1')
    copy = tmp_path / 'copy' / 'best.pth'
    copy.parent.mkdir()
    copy.write_bytes(b'weights v1')
    monkeypatch.chdir(tmp_path)
    same = {settings_fingerprint(config, SimpleNamespace(checkpoint_digest=file_digest(path)))
            for path in (ckpt, 'iter_10.pth', copy)}
    assert len(same) == 1
    ckpt.write_bytes(b'weights v2')  # retrained in place
    assert settings_fingerprint(config, SimpleNamespace(checkpoint_digest=file_digest(ckpt))) not in same
    other_scenes = dict(config, scenes=['other'])  # the scene list is not a setting
    assert settings_fingerprint(other_scenes, SimpleNamespace(checkpoint_digest=file_digest(copy))) in same

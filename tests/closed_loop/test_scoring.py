"""NAVSIM-style closed-loop metrics on hand-made straight-road trajectories with known answers."""
import numpy as np
import pytest
from closed_loop_scenes import LANE_Y, StraightRoadSource

from drivepi.closed_loop.kinematics import EgoState, VehicleParams
from drivepi.closed_loop.scoring import EpisodeScorer, ScoringParams, aggregate_scores, pdm_score

VEHICLE = VehicleParams()
FRONT = VEHICLE.rear_axle_to_center + VEHICLE.length / 2  # rear axle -> front bumper, m
CAR_HALF_LENGTH = 4.5 / 2  # closed_loop_scenes.CAR_SIZE


def straight_drive(speed, seconds, y=LANE_Y, x0=0.0, dt=0.1):
    """Ego states at constant speed along +x."""
    return [EgoState(x=x0 + speed * k * dt, y=y, yaw=0.0, v=speed, t=k * dt)
            for k in range(int(round(seconds / dt)) + 1)]


def score(source, ego, params=ScoringParams()):
    agents = [source.agents_at(s.t) for s in ego]
    expert = np.array([source.expert_pose(s.t)[:2] for s in ego])
    return EpisodeScorer(params, VEHICLE)(ego, agents, expert, source.map)


def test_expert_replay_scores_full_marks():
    source = StraightRoadSource(speed=8.0, parked=[('p', 'vehicle.car', 30.0, -5.5, 0.0)],
                                movers=[('m', 25.0, LANE_Y, 8.0)])
    m = score(source, straight_drive(8.0, 8.0))
    assert m['nc'] == m['dac'] == m['ttc'] == m['comfort'] == m['ep'] == m['ddc'] == 1.0
    assert m['pdms'] == 1.0 and m['route_completion'] == pytest.approx(1.0)
    assert m['events'] == [] and m['collisions_per_km'] == 0.0
    assert m['distance_m'] == pytest.approx(64.0)


def test_driving_into_parked_car_is_at_fault_collision_at_the_right_step():
    source = StraightRoadSource(speed=10.0, parked=[('parked', 'vehicle.car', 50.0, LANE_Y, 0.0)])
    ego = straight_drive(10.0, 6.0)
    m = score(source, ego)
    # first step whose front bumper reaches the parked car's rear: x_k + FRONT >= 50 - 2.25
    expected_step = next(k for k, s in enumerate(ego) if s.x + FRONT >= 50.0 - CAR_HALF_LENGTH)
    collisions = [e for e in m['events'] if e['type'] == 'collision']
    assert len(collisions) == 1  # the contact persists, but only the first one counts
    assert collisions[0]['step'] == expected_step == 45
    assert collisions[0]['kind'] == 'stopped_track' and collisions[0]['at_fault']
    assert m['nc'] == 0.0 and m['pdms'] == 0.0
    assert m['num_at_fault_collisions'] == 1
    assert m['collisions_per_km'] == pytest.approx(1.0 / 0.060)


def test_collision_with_static_object_halves_nc():
    source = StraightRoadSource(speed=10.0, parked=[('cone', 'movable_object.trafficcone', 20.0, LANE_Y, 0.0)])
    m = score(source, straight_drive(10.0, 3.0))
    assert m['nc'] == 0.5
    assert m['pdms'] == pytest.approx(0.5 * (5 * m['ttc'] + 2 * m['comfort'] + 5 * m['ep']) / 12)


def test_rear_end_by_other_car_and_stopped_ego_are_not_at_fault():
    source = StraightRoadSource(speed=5.0, movers=[('fast', -12.0, LANE_Y, 10.0)])
    m = score(source, straight_drive(5.0, 4.0))
    (collision,) = [e for e in m['events'] if e['type'] == 'collision']
    assert collision['kind'] == 'active_rear' and not collision['at_fault']
    assert m['nc'] == 1.0
    stopped = score(StraightRoadSource(speed=0.0, movers=[('fast', -12.0, LANE_Y, 10.0)]), straight_drive(0.0, 3.0))
    (collision,) = [e for e in stopped['events'] if e['type'] == 'collision']
    assert collision['kind'] == 'stopped_ego' and stopped['nc'] == 1.0


def test_off_road_fails_dac_at_first_step_outside():
    source = StraightRoadSource(speed=10.0)
    ego = [EgoState(x=10.0 * k * 0.1, y=LANE_Y - 0.2 * k, yaw=0.0, v=10.0, t=k * 0.1) for k in range(31)]
    m = score(source, ego)
    # yaw 0: the right corners sit at y - width / 2; the road edge is y = -3.5
    expected = next(k for k, s in enumerate(ego) if s.y - VEHICLE.width / 2 < -3.5)
    (offroad,) = [e for e in m['events'] if e['type'] == 'offroad']
    assert m['dac'] == 0.0 and m['pdms'] == 0.0
    assert offroad['step'] == expected == 5  # -1.75 - 0.2 k - 0.925 < -3.5  <=>  k > 4.125
    assert offroad['num_steps'] == len(ego) - expected


def test_ttc_violation_when_closing_on_slower_car():
    # ego 10 m/s, car ahead 5 m/s starting at x = 40: the projected ego (1 s horizon) first reaches the
    # projected car when the bumper gap 34.323 - 5 t falls to 5 m (closing speed x 1 s)
    source = StraightRoadSource(speed=10.0, movers=[('slow', 40.0, LANE_Y, 5.0)])
    ego = straight_drive(10.0, 6.0)
    m = score(source, ego)
    gap = [40.0 + 5.0 * s.t - CAR_HALF_LENGTH - (s.x + FRONT) for s in ego]
    expected = next(k for k, g in enumerate(gap) if g <= 5.0 * 1.0 + 1e-9)
    (ttc,) = [e for e in m['events'] if e['type'] == 'ttc']
    assert ttc['step'] == expected == 59
    assert m['ttc'] == 0.0 and m['nc'] == 1.0
    assert m['pdms'] == pytest.approx((2 * 1.0 + 5 * 1.0) / 12)


def test_comfort_catches_hard_braking_only():
    source = StraightRoadSource(speed=10.0)
    smooth = score(source, straight_drive(10.0, 4.0))
    assert smooth['comfort'] == 1.0
    ego, x, v = [], 0.0, 10.0
    for k in range(41):
        ego.append(EgoState(x=x, y=LANE_Y, yaw=0.0, v=v, t=0.1 * k))
        a = -6.0 if 10 <= k < 25 else 0.0
        x, v = x + v * 0.1 + 0.5 * a * 0.01, v + a * 0.1
    m = score(source, ego)
    signals = {e['signal'] for e in m['events'] if e['type'] == 'discomfort'}
    assert m['comfort'] == 0.0 and 'lon_accel' in signals


@pytest.mark.parametrize('speed, expected', [(1.5, 1.0), (3.0, 0.5), (8.0, 0.0)])
def test_driving_direction_compliance_thresholds(speed, expected):
    # driving +x in the -x lane: against-direction distance per 1 s window = speed x 1 s
    source = StraightRoadSource(speed=speed)
    m = score(source, straight_drive(speed, 3.0, y=-LANE_Y))
    assert m['ddc'] == expected


def test_ego_progress_relative_to_expert_and_pdms_formula():
    source = StraightRoadSource(speed=10.0)
    m = score(source, straight_drive(5.0, 4.0))
    assert m['ep'] == pytest.approx(0.5)
    assert m['ego_progress_m'] == pytest.approx(20.0) and m['expert_progress_m'] == pytest.approx(40.0)
    assert m['route_completion'] == pytest.approx(0.5)
    assert m['pdms'] == pytest.approx(pdm_score(1.0, 1.0, 1.0, 1.0, 0.5)) == pytest.approx(9.5 / 12)
    # an expert that barely moves gives full progress to any ego
    assert score(StraightRoadSource(speed=1.0), straight_drive(0.0, 4.0))['ep'] == 1.0


def test_aggregate_counts_failures_as_zero():
    ok = dict(status='ok', metrics=dict(nc=1.0, dac=1.0, ttc=1.0, comfort=1.0, ep=0.8, ddc=1.0, pdms=0.9,
                                        route_completion=0.8, num_at_fault_collisions=1, distance_m=500.0))
    failed = dict(status='failed', metrics=None)
    agg = aggregate_scores([ok, ok, failed])
    assert agg['pdms'] == pytest.approx(0.6) and agg['ep'] == pytest.approx(1.6 / 3)
    assert agg['num_failed'] == 1 and agg['num_episodes'] == 3
    assert agg['collisions_per_km'] == pytest.approx(2.0)

"""Kinematic bicycle model and tracking controller of the closed loop."""
import numpy as np
import pytest

from drivepi.closed_loop.controller import PurePursuitController, ReferenceTrajectory, lookahead_point
from drivepi.closed_loop.kinematics import EgoState, KinematicBicycle, VehicleParams

PARAMS = VehicleParams(max_steer=0.6, max_steer_rate=10.0, max_accel=3.0, max_decel=8.0)


def test_straight_line_constant_acceleration():
    model = KinematicBicycle(PARAMS, dt=0.1)
    state = EgoState(x=1.0, y=2.0, yaw=np.pi / 6, v=5.0)
    for _ in range(20):  # 2 s at +1 m/s^2
        state = model.step(state, 1.0, 0.0)
    dist = 5.0 * 2.0 + 0.5 * 1.0 * 2.0 ** 2
    np.testing.assert_allclose([state.x, state.y], [1.0 + dist * np.cos(np.pi / 6), 2.0 + dist * np.sin(np.pi / 6)],
                               atol=1e-9)
    assert state.v == pytest.approx(7.0)
    assert state.yaw == pytest.approx(np.pi / 6)
    assert state.t == pytest.approx(2.0)


@pytest.mark.parametrize('steer', [0.1, -0.3, 0.5])
def test_constant_steering_drives_circle_of_radius_l_over_tan_delta(steer):
    model = KinematicBicycle(PARAMS, dt=0.1)
    radius = PARAMS.wheelbase / np.tan(abs(steer))
    state = EgoState(x=0.0, y=0.0, yaw=0.0, v=6.0, steer=steer)
    center = np.array([0.0, np.sign(steer) * radius])  # left of the car for a left turn
    xy = []
    for _ in range(100):
        state = model.step(state, 0.0, steer)
        xy.append([state.x, state.y])
    np.testing.assert_allclose(np.linalg.norm(np.array(xy) - center, axis=1), radius, rtol=1e-9)
    # heading after 10 s equals the arc length / radius (wrapped)
    expected_yaw = np.sign(steer) * 6.0 * 10.0 / radius
    assert np.angle(np.exp(1j * (state.yaw - expected_yaw))) == pytest.approx(0.0, abs=1e-9)


def test_braking_stops_without_reversing():
    model = KinematicBicycle(PARAMS, dt=0.1)
    state = EgoState(x=0.0, y=0.0, yaw=0.0, v=2.0)
    for _ in range(10):
        state = model.step(state, -5.0, 0.0)
    assert state.v == 0.0
    assert state.x == pytest.approx(2.0 ** 2 / (2 * 5.0))  # stopping distance v^2 / 2a


def test_actuator_limits_clip_commands():
    limited = VehicleParams(max_steer=0.4, max_steer_rate=0.5, max_accel=2.0)
    model = KinematicBicycle(limited, dt=0.1)
    state = model.step(EgoState(0.0, 0.0, 0.0, 5.0), 10.0, 1.0)
    assert state.steer == pytest.approx(0.05)  # rate limit 0.5 rad/s x 0.1 s
    assert state.accel == pytest.approx(2.0)
    with pytest.raises(ValueError, match='non-finite'):
        model.step(state, float('nan'), 0.0)


def test_lookahead_point_projects_and_extends():
    path = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    np.testing.assert_allclose(lookahead_point(path, np.array([2.0, 1.0]), 3.0), [5.0, 0.0])
    np.testing.assert_allclose(lookahead_point(path, np.array([9.0, 0.0]), 4.0), [10.0, 3.0])
    np.testing.assert_allclose(lookahead_point(path, np.array([10.0, 9.0]), 5.0), [10.0, 14.0])


def test_controller_tracks_a_circle_and_a_speed_change():
    """Replanning every 0.5 s from a circular reference with a speed ramp: the car stays on it."""
    radius, dt = 25.0, 0.1
    model = KinematicBicycle(VehicleParams(), dt)
    ctrl = PurePursuitController(VehicleParams(), dt=dt)

    def speed(t):
        return 4.0 + min(t, 4.0)  # 4 m/s -> 8 m/s at 1 m/s^2

    def arc(t):
        return 4.0 * t + 0.5 * min(t, 4.0) ** 2 + 4.0 * max(t - 4.0, 0.0)

    def ref_pose(t):
        a = arc(t) / radius
        return np.array([radius * np.sin(a), radius * (1 - np.cos(a))])

    state = EgoState(0.0, 0.0, 0.0, speed(0.0), steer=np.arctan(VehicleParams().wheelbase / radius))
    errors = []
    for k in range(100):
        if k % 5 == 0:
            times = state.t + 0.5 * np.arange(7)
            ctrl.set_reference(ReferenceTrajectory(times, np.array([ref_pose(t) for t in times])))
        state = model.step(state, *ctrl.control(state))
        errors.append(np.linalg.norm([state.x, state.y] - ref_pose(state.t)))
        assert abs(np.hypot(state.x, state.y - radius) - radius) < 0.15
    assert max(errors) < 0.5
    assert state.v == pytest.approx(8.0, abs=0.1)


def test_reference_from_plan_is_in_global_frame():
    pose = EgoState(x=10.0, y=5.0, yaw=np.pi / 2, v=0.0, t=3.0)
    ref = ReferenceTrajectory.from_plan(np.array([[1.0 * k, 0.0] for k in range(1, 7)]), pose)
    np.testing.assert_allclose(ref.times, 3.0 + 0.5 * np.arange(7))
    np.testing.assert_allclose(ref.xy[-1], [10.0, 11.0], atol=1e-12)  # 6 m forward = +y
    np.testing.assert_allclose(ref.position(3.25), [10.0, 5.5], atol=1e-12)
    assert ref.speed(3.0, 0.5) == pytest.approx(2.0)

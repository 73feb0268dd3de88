"""Planning L2 and collision rate in the per-step (UniAD) and cumulative (ST-P3/VAD) conventions."""
import numpy as np
import pytest

from drivepi.evaluation.planning_metrics import box_footprints, collision_per_step, l2_per_step, summarize_planning

NO_BOXES = [np.zeros((0, 7), np.float32)] * 6


def _box(x, y, length, width, yaw=0.0):
    return np.array([[x, y, 0.0, length, width, 1.5, yaw]], np.float32)


def test_l2_per_step_and_both_averaging_conventions():
    gt = np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1)
    pred = gt + np.stack([np.zeros(6), np.arange(1, 7)], axis=1)     # lateral error 1, 2, ..., 6 m
    l2 = l2_per_step(pred, gt)
    np.testing.assert_allclose(l2, [1, 2, 3, 4, 5, 6])
    summary = summarize_planning(l2[None], np.zeros((1, 6), bool), np.zeros((1, 6), bool), np.ones((1, 6)))
    assert summary['per_step']['L2'] == pytest.approx({1.0: 2.0, 2.0: 4.0, 3.0: 6.0, 'avg': 4.0})
    assert summary['cumulative']['L2'] == pytest.approx({1.0: 1.5, 2.0: 2.5, 3.0: 3.5, 'avg': 2.5})


def test_missing_gt_steps_are_left_out():
    l2 = np.array([[1.0] * 6, [3.0] * 6])
    valid = np.ones((2, 6), bool)
    valid[1, 4:] = False
    summary = summarize_planning(l2, np.zeros((2, 6), bool), np.zeros((2, 6), bool), valid)
    np.testing.assert_allclose(summary['l2_steps'], [2, 2, 2, 2, 1, 1])
    assert summary['cumulative']['L2'][3.0] == pytest.approx(10 / 6)


def test_collision_through_a_box_versus_beside_it():
    boxes = list(NO_BOXES)
    boxes[2] = _box(10.0, 0.0, 4.0, 2.0)
    straight = np.stack([np.linspace(3.5, 21, 6), np.zeros(6)], axis=1)   # step 2 at x = 10.5
    beside = straight + [0.0, 4.0]                                        # 1.925 m clear of the box
    assert collision_per_step(straight, boxes).tolist() == [False, False, True, False, False, False]
    assert not collision_per_step(beside, boxes).any()


def test_collision_respects_agent_box_rotation():
    traj = np.stack([np.arange(1, 7) * 10.0, np.zeros(6)], axis=1)
    thin = list(NO_BOXES)
    thin[0] = _box(10.5, 3.0, 8.0, 1.0)              # along x: spans y 2.5..3.5, clear of the ego (|y| < 0.925)
    assert not collision_per_step(traj, thin).any()
    thin[0] = _box(10.5, 3.0, 8.0, 1.0, np.pi / 2)   # turned: spans y -1..7, across the ego's path
    assert collision_per_step(traj, thin).tolist() == [True] + [False] * 5


def test_ego_box_is_centred_half_a_metre_ahead_of_the_waypoint():
    traj = np.stack([np.arange(1, 7) * 10.0, np.zeros(6)], axis=1)
    boxes = list(NO_BOXES)
    boxes[0] = _box(13.3, 0.0, 2.0, 2.0)             # spans x 12.3..14.3; ego front at 10 + 0.5 + 2.042
    assert collision_per_step(traj, boxes)[0]
    assert not collision_per_step(traj, boxes, center_ahead=0.0)[0]


def test_collision_rate_skips_steps_where_gt_collides():
    collision = np.array([[False, True, True, False, False, False],
                          [False, False, True, False, False, False]])
    gt_collision = np.zeros_like(collision)
    gt_collision[0, 2] = True
    summary = summarize_planning(np.zeros((2, 6)), collision, gt_collision, np.ones((2, 6)))
    np.testing.assert_allclose(summary['collision_steps'], [0, 50, 50, 0, 0, 0])
    assert summary['per_step']['collision'] == pytest.approx({1.0: 50, 2.0: 0, 3.0: 0, 'avg': 50 / 3})
    assert summary['cumulative']['collision'][2.0] == pytest.approx(25.0)


def test_bad_trajectories_raise():
    with pytest.raises(ValueError, match=r'\(T, 2\)'):
        l2_per_step(np.zeros((6, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match='NaN'):
        l2_per_step(np.full((6, 2), np.nan), np.zeros((6, 2)))
    with pytest.raises(ValueError, match='sets of future boxes'):
        collision_per_step(np.zeros((6, 2)), NO_BOXES[:5])


def test_box_footprints_are_valid_rotated_rectangles():
    poly = box_footprints(_box(1.0, 2.0, 4.0, 2.0, np.pi / 6))[0]
    assert poly.is_valid and poly.area == pytest.approx(8.0, rel=1e-5)
    corner_dist = np.linalg.norm(np.asarray(poly.exterior.coords)[:4] - [1.0, 2.0], axis=1)
    np.testing.assert_allclose(corner_dist, np.hypot(2.0, 1.0), rtol=1e-5)
    front = np.asarray(poly.exterior.coords)[:4] @ [np.cos(np.pi / 6), np.sin(np.pi / 6)]
    assert front.max() - front.min() == pytest.approx(4.0, rel=1e-5)    # length along the yaw direction

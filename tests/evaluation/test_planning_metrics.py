"""Planning L2 and collision rate in the per-step (UniAD) and cumulative (ST-P3/VAD) conventions, and the
collision boxes of the uniad_vad and the official DrivePI / SparseDrive (sparsedrive) conventions."""
import numpy as np
import pytest

from drivepi.evaluation.planning_metrics import (
    box_footprints,
    collision_per_step,
    l2_per_step,
    lidar_from_rear,
    rear_from_lidar,
    sparsedrive_ego_boxes,
    summarize_planning,
    trajectory_heading,
)

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


def test_collision_pairs_each_box_with_the_waypoint_of_its_own_time():
    """Boxes at several times, different counts per time: a box counts only against its own time's waypoint."""
    straight = np.stack([np.linspace(3.5, 21, 6), np.zeros(6)], axis=1)   # waypoints 3.5 m apart along x
    boxes = list(NO_BOXES)
    boxes[1] = np.concatenate([_box(-20.0, 15.0, 4.0, 2.0), _box(30.0, -15.0, 4.0, 2.0)])   # far off the path
    boxes[3] = _box(straight[3, 0] + 0.5, 0.0, 4.0, 2.0)          # on waypoint 3
    boxes[4] = _box(straight[1, 0] + 0.5, 0.0, 4.0, 2.0)          # where the ego was at time 1, not at time 4
    assert collision_per_step(straight, boxes).tolist() == [False, False, False, True, False, False]


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


# ---------------------------------------------------------------- the official DrivePI / SparseDrive convention
BARE = dict(waypoint_to_lidar=0.0, still_heading=0.0)   # the official rule applied to the waypoints as given


def test_official_heading_rule_by_hand():
    traj = np.array([[1, 0], [2, 0], [3, 1], [3, 2], [3, 3], [3, 4]], float)
    # previous to next waypoint (the origin before the first), the last segment at the last waypoint
    expected = [0.0, np.arctan2(1, 2), np.arctan2(2, 1), np.pi / 2, np.pi / 2, np.pi / 2]
    np.testing.assert_allclose(trajectory_heading(traj), expected)
    still = np.stack([np.arange(1, 7) * 0.05, np.zeros(6)], axis=1)    # last waypoint 0.25 m from the first
    np.testing.assert_allclose(trajectory_heading(still, still_heading=-np.pi / 2), np.full(6, -np.pi / 2))


def test_official_box_turns_with_the_heading_and_moves_ahead_along_it():
    left = np.stack([np.zeros(6), np.arange(1, 7) * 2.0], axis=1)     # moving along +y: heading 90 degrees
    box = sparsedrive_ego_boxes(left, **BARE)[0]
    # centre 0.985793 + 0.5 m along +y from (0, 2); 4.084 m along y, 1.85 m along x
    np.testing.assert_allclose(box[[0, 1, 6]], [0.0, 2 + 1.485793, np.pi / 2], atol=1e-9)
    poly = box_footprints(box[None])[0]
    np.testing.assert_allclose(poly.bounds, [-0.925, 1.443793, 0.925, 5.527793], atol=1e-5)
    # ahead of the turned box (y 4.75..5.25): only the oriented, shifted box reaches it
    ahead = [_box(0.0, 5.0, 0.5, 0.5)] + NO_BOXES[1:]
    assert collision_per_step(left, ahead, 'sparsedrive', **BARE).tolist() == [True] + [False] * 5
    assert not collision_per_step(left, ahead, 'uniad_vad').any()            # its box ends at y = 2.925
    # beside the waypoint along x (x 1.75..2.25): only the axis-aligned box (x up to 2.542) reaches it
    beside = [_box(2.0, 2.0, 0.5, 0.5)] + NO_BOXES[1:]
    assert collision_per_step(left, beside, 'uniad_vad').tolist() == [True] + [False] * 5
    assert not collision_per_step(left, beside, 'sparsedrive', **BARE).any()  # its box spans x -0.925..0.925


def test_official_box_starts_at_the_lidar_ahead_of_the_rear_axle():
    ahead = np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1)
    box = sparsedrive_ego_boxes(ahead)[0]     # the waypoint moves 0.985793 m along the car's heading first
    np.testing.assert_allclose(box[:2], [2 + 0.985793 + 1.485793, 0.0], atol=1e-9)
    far = [_box(6.2, 0.0, 0.5, 0.5)] + NO_BOXES[1:]                       # x 5.95..6.45; front 6.513586
    assert collision_per_step(ahead, far, 'sparsedrive')[0]
    assert not collision_per_step(ahead, far, 'sparsedrive', **BARE)[0]    # front 5.527793


def test_lidar_points_follow_the_arc_and_come_back_to_the_waypoints():
    radius, angles = 10.0, np.arange(1, 7) * 0.15       # a left turn on a 10 m circle leaving the origin along x
    arc = np.stack([radius * np.sin(angles), radius * (1 - np.cos(angles))], axis=1)
    lidar = lidar_from_rear(arc, 1.0)
    np.testing.assert_allclose(lidar, arc + np.stack([np.cos(angles), np.sin(angles)], axis=1), atol=1e-9)
    np.testing.assert_allclose(rear_from_lidar(lidar, 1.0), arc, atol=1e-7)
    stop = np.array([[2.0, 0.1], [3.5, 0.3], [4.2, 0.5], [4.3, 0.52], [4.3, 0.52], [4.31, 0.52]])
    np.testing.assert_allclose(rear_from_lidar(lidar_from_rear(stop)), stop, atol=1e-7)


def test_official_box_of_a_standing_ego_lies_across_to_its_right():
    still = np.stack([np.arange(1, 7) * 0.05, np.zeros(6)], axis=1)
    box = sparsedrive_ego_boxes(still)[0]
    # official heading 0 is the nuScenes LiDAR's x axis, the car's right: centre 1.485793 m to the right
    # of the LiDAR point (0.05 + 0.985793, 0), the 4.084 m side across the lane
    np.testing.assert_allclose(box[[0, 1, 6]], [0.05 + 0.985793, -1.485793, -np.pi / 2], atol=1e-9)
    right = [_box(1.035793, -3.3, 0.2, 0.2)] + NO_BOXES[1:]
    assert collision_per_step(still, right, 'sparsedrive')[0]
    assert not collision_per_step(still, right, 'sparsedrive', **BARE)[0]   # bare: along x, y within 0.925
    with pytest.raises(ValueError, match='convention'):
        collision_per_step(still, right, 'vad')

"""Box geometry of the mini worlds agrees with mmdet3d's box structures and mmcv's point-in-box op."""
import numpy as np
import torch
from mmcv.ops import points_in_boxes_cpu
from mmdet3d.structures import LiDARInstance3DBoxes

from drivepi.sim.geometry import box_corners, points_in_boxes, pose2d_matrix, transform_boxes, transform_points


def _random_boxes(rng, n):
    return np.c_[rng.uniform(-10, 10, (n, 2)), rng.uniform(-1, 1, n), rng.uniform(0.5, 6, (n, 3)),
                 rng.uniform(-np.pi, np.pi, n)]


def test_points_in_boxes_matches_mmcv():
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, 12)
    points = np.c_[rng.uniform(-14, 14, (8000, 2)), rng.uniform(-2, 6, 8000)]
    ours = points_in_boxes(points, boxes)
    ref = points_in_boxes_cpu(torch.from_numpy(points).float()[None],
                              torch.from_numpy(boxes).float()[None])[0].numpy().astype(bool)
    assert ours.sum() > 300 and ref.sum() > 300
    # points within 1 mm of a face may fall either way in float32; everything else must agree
    near_face = points_in_boxes(points, boxes, margin=1e-3) & ~points_in_boxes(points, boxes, margin=-1e-3)
    assert np.array_equal(ours[~near_face], ref[~near_face])


def test_box_corners_match_mmdet3d_corner_set():
    boxes = _random_boxes(np.random.default_rng(1), 5)
    ref = LiDARInstance3DBoxes(torch.from_numpy(boxes)).corners.numpy()
    ours = box_corners(boxes)
    for a, b in zip(ours, ref):   # same 8 points (mmdet3d orders them differently)
        d = np.linalg.norm(a[:, None] - b[None], axis=-1)
        assert np.allclose(d.min(1), 0, atol=1e-5)


def test_transform_boxes_round_trip_and_rotation():
    boxes = _random_boxes(np.random.default_rng(2), 6)
    mat = pose2d_matrix(100.0, -50.0, 2.5)
    moved = transform_boxes(mat, boxes)
    np.testing.assert_allclose(moved[:, :3], transform_points(mat, boxes[:, :3]))
    back = transform_boxes(np.linalg.inv(mat), moved)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=1e-9)
    np.testing.assert_allclose(np.cos(back[:, 6] - boxes[:, 6]), 1.0, atol=1e-9)
    # corners of a moved box are the moved corners
    np.testing.assert_allclose(box_corners(moved), transform_points(mat, box_corners(boxes).reshape(-1, 3))
                               .reshape(-1, 8, 3), atol=1e-9)

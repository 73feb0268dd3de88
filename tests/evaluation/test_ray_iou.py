"""RayIoU counts, flow mAVE, OccScore and camera-masked mIoU on crafted rays and grids."""
import math

import numpy as np
import pytest
import torch

from drivepi.evaluation.occ_miou import confusion_matrix, miou_from_confusion
from drivepi.evaluation.ray_casting import lidar_ray_directions
from drivepi.evaluation.ray_iou import count_rays, occ_score, sample_ray_counts, summarize_ray_counts
from drivepi.geometry import FREE_INDEX

FREE = FREE_INDEX
C = 17
CAR, PED, ROAD = 0, 7, 10


def _rays():
    """6 crafted rays: (gt class, gt depth, pred class, pred depth)."""
    rays = [(CAR, 10.0, CAR, 10.5),    # TP at 1/2/4 m
            (CAR, 10.0, CAR, 13.0),    # TP at 4 m only
            (PED, 5.0, ROAD, 5.0),     # FN pedestrian, FP road
            (FREE, 20.0, CAR, 3.0),    # GT free: dropped
            (ROAD, 20.0, FREE, 40.0),  # FN road
            (CAR, 30.0, CAR, 32.5)]    # error 2.5 m = 8.3 %: TP at 4 m, or everywhere with the 10 % rule
    gt_l, gt_d, pr_l, pr_d = zip(*rays)
    return torch.tensor(gt_l), torch.tensor(gt_d), torch.tensor(pr_l), torch.tensor(pr_d)


def test_ray_counts_per_threshold_by_the_reference_protocol():
    counts, = count_rays(*_rays(), num_classes=C)
    assert counts.gt[[CAR, PED, ROAD]].tolist() == [3, 1, 1] and counts.gt.sum() == 5
    assert counts.pred[[CAR, ROAD, FREE]].tolist() == [3, 1, 1] and counts.pred.sum() == 5
    assert counts.tp[:, CAR].tolist() == [1, 1, 3] and counts.tp.sum() == 5
    summary = summarize_ray_counts(counts)
    car_iou_1m = 1 / (3 + 3 - 1)
    assert summary['iou'][0, CAR] == pytest.approx(car_iou_1m)
    assert summary['iou'][2, CAR] == pytest.approx(1.0)
    assert summary['iou'][0, PED] == 0 and summary['iou'][0, ROAD] == 0
    assert np.isnan(summary['iou'][0, 1])                       # truck: no rays
    assert summary['ray_iou_at'][1.0] == pytest.approx(car_iou_1m / 3)
    assert summary['ray_iou_at'][4.0] == pytest.approx(1 / 3)
    assert summary['ray_iou'] == pytest.approx((2 * car_iou_1m / 3 + 1 / 3) / 3)
    assert math.isnan(summary['mave']) and math.isnan(summary['occ_score'])


def test_ray_counts_with_the_nonstandard_relative_tolerance():
    counts, = count_rays(*_rays(), num_classes=C, nonstandard_relative_depth_tol=0.1)
    assert counts.tp[:, CAR].tolist() == [2, 2, 3]


def test_mave_over_true_positive_rays_at_2m():
    gt_l, gt_d, pr_l, pr_d = _rays()
    gt_flow = torch.zeros(6, 2)
    gt_flow[:, 0] = 2.0
    pred_flow = gt_flow.clone()
    pred_flow[0] = torch.tensor([2.0, 0.6])     # TP at 2 m: error 0.6
    pred_flow[1] = torch.tensor([float("nan"), 9.0])   # not TP at 2 m: never read
    pred_flow[5] = torch.tensor([2.0, -0.2])    # error 2.5 m: not TP at 2 m (TP only with the 10 % rule)
    counts, = count_rays(gt_l, gt_d, pr_l, pr_d, C, gt_flow=gt_flow, pred_flow=pred_flow,
                        flow_classes=range(8))
    assert counts.flow_tp[CAR] == 1 and counts.flow_tp.sum() == 1
    summary = summarize_ray_counts(counts, flow_classes=range(8))
    assert summary['ave'][CAR] == pytest.approx(0.6)
    assert np.isnan(summary['ave'][PED])                        # no TP pedestrian ray
    assert summary['mave'] == pytest.approx(0.6)
    assert summary['occ_score'] == pytest.approx(0.9 * summary['ray_iou'] + 0.1 * 0.4)
    relaxed, = count_rays(gt_l, gt_d, pr_l, pr_d, C, nonstandard_relative_depth_tol=0.1, gt_flow=gt_flow,
                         pred_flow=pred_flow, flow_classes=range(8))
    assert summarize_ray_counts(relaxed, flow_classes=range(8))['ave'][CAR] == pytest.approx(0.4)


def test_occ_score_formula():
    assert occ_score(0.493, 0.509) == pytest.approx(0.9 * 0.493 + 0.1 * 0.491)
    assert occ_score(0.4, 1.7) == pytest.approx(0.36)           # max(1 - mAVE, 0) floors at 0


def test_sample_ray_counts_on_crafted_grids():
    """One ray along +x through a tiny grid: GT car at 1.0-1.5 m, prediction shifted one voxel."""
    gt = torch.full((8, 3, 3), FREE, dtype=torch.long)
    gt[2, 1, 1] = CAR
    pred = torch.full_like(gt, FREE)
    pred[3, 1, 1] = CAR
    origin = torch.tensor([[0.25, 0.75, 0.75]])
    direction = torch.tensor([[1.0, 0.0, 0.0]])
    grid = dict(point_cloud_range=(0, 0, 0, 4, 1.5, 1.5), voxel_size=0.5)
    counts, = sample_ray_counts(gt[None], pred[None], [origin], direction, C, thresholds=(0.25, 1.0), ave_threshold=1.0,
                                **grid)
    assert counts.gt[CAR] == 1 and counts.pred[CAR] == 1
    assert counts.tp[:, CAR].tolist() == [0, 1]                # depths 1.25 m vs 1.75 m
    empty, = sample_ray_counts(gt[None], torch.full_like(gt, FREE)[None], [origin], direction, C, thresholds=(1.0,),
                              ave_threshold=1.0, **grid)
    assert empty.gt[CAR] == 1 and empty.pred[FREE] == 1 and empty.tp.sum() == 0


def test_samples_counted_together_get_the_counts_they_get_alone():
    """Three samples with their own grids, flows and origins (one with two origins) in one cast: every count of
    each sample equals that sample's own cast; swapping two samples' origins changes them."""
    generator = torch.Generator().manual_seed(0)
    shape = (12, 10, 4)
    gt = torch.randint(0, C, (3,) + shape, generator=generator)
    gt[gt > 3] = FREE                                          # mostly free, a few classes
    pred = torch.where(torch.rand((3,) + shape, generator=generator) < 0.3, FREE, gt)
    gt_flow, pred_flow = (torch.rand((3,) + shape + (2,), generator=generator) for _ in range(2))
    origins = [torch.tensor([[1.1, 2.3, 0.9]]), torch.tensor([[3.2, 1.4, 1.2], [4.1, 2.6, 0.7]]),
               torch.tensor([[2.0, 3.1, 1.6]])]
    directions = lidar_ray_directions()[::97]
    cfg = dict(flow_classes=range(8), point_cloud_range=(0, 0, 0, 6, 5, 2), voxel_size=0.5)
    together = sample_ray_counts(gt, pred, origins, directions, C, gt_flow=gt_flow, pred_flow=pred_flow, **cfg)
    for s, counts in enumerate(together):
        alone, = sample_ray_counts(gt[s:s + 1], pred[s:s + 1], [origins[s]], directions, C, gt_flow=gt_flow[s:s + 1],
                                   pred_flow=pred_flow[s:s + 1], **cfg)
        for field in ('gt', 'pred', 'tp', 'flow_tp'):
            assert np.array_equal(getattr(counts, field), getattr(alone, field)), (s, field)
        assert np.allclose(counts.flow_err, alone.flow_err, rtol=1e-12)
        assert counts.gt.sum() > 0 and counts.tp.sum() > 0 and counts.flow_tp.sum() > 0
    swapped = sample_ray_counts(gt, pred, origins[::-1], directions, C, gt_flow=gt_flow, pred_flow=pred_flow, **cfg)
    assert not np.array_equal(swapped[0].gt, together[0].gt)
    confusion = confusion_matrix(gt, pred, C, gt != 2)
    assert confusion.shape == (3, C, C)
    for s in range(3):
        assert np.array_equal(confusion[s], confusion_matrix(gt[s], pred[s], C, gt[s] != 2))


def test_miou_with_and_without_camera_mask():
    gt = torch.full((4, 2, 1), FREE, dtype=torch.long)
    gt[0:2, 0, 0] = CAR                   # car at (0,0) (1,0); road at (2,0) (3,0)
    gt[2:4, 0, 0] = ROAD
    pred = gt.clone()
    pred[1, 0, 0] = ROAD                  # car voxel predicted road
    pred[3, 1, 0] = ROAD                  # free voxel predicted road
    full = miou_from_confusion(confusion_matrix(gt, pred, C))
    assert full['iou'][CAR] == pytest.approx(1 / 2)
    assert full['iou'][ROAD] == pytest.approx(2 / 4)
    assert full['miou'] == pytest.approx(0.5) and np.isnan(full['iou'][PED])
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[1, 0, 0] = mask[3, 1, 0] = False  # the two wrong voxels are not seen by a camera
    masked = miou_from_confusion(confusion_matrix(gt, pred, C, mask))
    assert masked['iou'][CAR] == 1 and masked['iou'][ROAD] == 1 and masked['miou'] == 1


def test_miou_rejects_bad_input():
    gt = torch.zeros(2, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match='must share one'):
        confusion_matrix(gt, torch.zeros(2, 2, 3, dtype=torch.long), C)
    with pytest.raises(ValueError, match='classes must lie'):
        confusion_matrix(gt, torch.full((2, 2, 2), 17), C)
    # the range is checked where the mask is set: a bad class outside it neither raises nor counts
    pred = gt.clone()
    pred[0, 0, 0] = 17
    mask = torch.ones_like(gt, dtype=torch.bool)
    with pytest.raises(ValueError, match=r'pred classes must lie in \[0, 17\), got 0..17'):
        confusion_matrix(gt, pred, C, mask)
    mask[0, 0, 0] = False
    counts = confusion_matrix(gt, pred, C, mask)
    assert counts.sum() == 7 and counts[0, 0] == 7

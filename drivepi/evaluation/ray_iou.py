"""RayIoU, flow mAVE and OccScore (SparseOcc RayIoU / OpenOcc occupancy-and-flow challenge).

Definitions, checked against SparseOcc ``loaders/ray_metrics.py`` (``calc_rayiou``) and the OpenOcc
devkit (OpenDriveLab/OccNet ``projects/mmdet3d_plugin/datasets/ray_metrics.py``, ``calc_metrics``):

- Rays (see :mod:`drivepi.evaluation.ray_casting`) are cast through the GT and the predicted grid;
  rays whose GT reports free (no GT hit) are dropped.
- Per class c and threshold d: ``gt_cnt`` = rays with GT class c, ``pred_cnt`` = rays with predicted
  class c, ``TP`` = rays with both classes c and a depth error within d. The depth test is
  ``|depth_pred - depth_gt| < d`` (the reference protocol, and the default here).
  IoU = TP / (gt_cnt + pred_cnt - TP), i.e. TP / (TP + FP + FN), accumulated over all samples.
- Not standard, only on request: an early OccNet devkit also accepted ``|error| / depth_gt < 0.1``, a
  rule the reference code removed in March 2024; ``nonstandard_relative_depth_tol=0.1`` restores it. It
  raises RayIoU (by 0.7 point on nuScenes predictions, RayIoU@1 by 1.8), so its numbers are not
  comparable with published ones; :class:`~drivepi.evaluation.metrics.OccupancyMetric` suffixes their
  keys with ``_reltol``.
- RayIoU@d = NaN-mean of the IoU over classes, free excluded; RayIoU = NaN-mean over classes and
  thresholds (the mean of the three values when every class has rays).
- mAVE: for each flow class, the mean of ``||flow_pred - flow_gt||_2`` (m/s, flow read at each grid's
  reported voxel) over the TP rays at the 2 m threshold; mAVE = NaN-mean over the flow classes.
- OccScore = 0.9 RayIoU + 0.1 max(1 - mAVE, 0) with RayIoU as a fraction (the devkit's formula).

State per sample is a few count arrays (:class:`RayCounts`), summed over the data set; the samples of a batch
are cast and counted together (:func:`sample_ray_counts`).
"""
import math
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from drivepi.device_copies import count_bins
from drivepi.evaluation.ray_casting import cast_sample_rays
from drivepi.geometry import OCC_RANGE, OCC_VOXEL_SIZE

RAY_THRESHOLDS_M = (1.0, 2.0, 4.0)
AVE_THRESHOLD_M = 2.0


@dataclass
class RayCounts:
    """Ray counts of one or more samples (C = number of classes incl. free, K = thresholds).

    Attributes:
        gt: float64 ``(C,)`` rays whose GT class is c.
        pred: float64 ``(C,)`` rays whose predicted class is c.
        tp: float64 ``(K, C)`` true-positive rays per threshold.
        flow_err: float64 ``(C,)`` summed flow L2 error (m/s) over TP rays at the mAVE threshold.
        flow_tp: float64 ``(C,)`` number of those rays (flow classes only).
    """
    gt: np.ndarray
    pred: np.ndarray
    tp: np.ndarray
    flow_err: np.ndarray
    flow_tp: np.ndarray

    def __add__(self, other: 'RayCounts') -> 'RayCounts':
        return RayCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def count_rays(gt_label: torch.Tensor, gt_depth: torch.Tensor, pred_label: torch.Tensor,
               pred_depth: torch.Tensor, num_classes: int, thresholds: Sequence[float] = RAY_THRESHOLDS_M,
               nonstandard_relative_depth_tol: Optional[float] = None,
               gt_flow: Optional[torch.Tensor] = None, pred_flow: Optional[torch.Tensor] = None,
               flow_classes: Sequence[int] = (), ave_threshold: float = AVE_THRESHOLD_M,
               ray_sample: Optional[torch.Tensor] = None, num_samples: int = 1) -> List[RayCounts]:
    """Per-class ray counts of each sample from the rays' classes and depths.

    Args:
        gt_label, pred_label: long ``(N,)`` class of each ray's reported voxel; the last class is free.
        gt_depth, pred_depth: float ``(N,)`` depths in metres.
        num_classes: C, including free (= C - 1).
        thresholds: depth thresholds in metres.
        nonstandard_relative_depth_tol: None for the reference protocol; a tolerance ``tol`` also accepts
            ``|error| / gt_depth < tol`` (the early OccNet devkit's rule: not the standard number).
        gt_flow, pred_flow: optional float ``(N, 2)`` flow (m/s) at each ray's reported voxel.
        flow_classes: class indices whose flow error enters mAVE.
        ave_threshold: the threshold (one of ``thresholds``) whose TP rays are used for mAVE.
        ray_sample: long ``(N,)`` the sample of each ray, in ``[0, num_samples)`` (default: all of sample 0).
        num_samples: S.

    Returns:
        S :class:`RayCounts`, each over its sample's rays whose GT class is not free (a few host reads in all,
        whatever S).
    """
    if ave_threshold not in thresholds:
        raise ValueError(f'ave_threshold {ave_threshold} m is not one of the thresholds {list(thresholds)}')
    free = num_classes - 1
    valid = gt_label != free
    if ray_sample is None:
        ray_sample = torch.zeros_like(gt_label)
    gt_label, pred_label, ray_sample = gt_label[valid].long(), pred_label[valid].long(), ray_sample[valid].long()
    gt_depth = gt_depth[valid].double()
    error = (pred_depth[valid].double() - gt_depth).abs()
    same = gt_label == pred_label
    tp_rays = {}
    for threshold in thresholds:
        close = error < threshold
        if nonstandard_relative_depth_tol is not None:
            close |= error / gt_depth < nonstandard_relative_depth_tol
        tp_rays[threshold] = same & close
    bins = ray_sample * num_classes + gt_label   # (sample, GT class) of each ray
    shape = (num_samples, num_classes)
    flow_err = flow_tp = torch.zeros(shape, dtype=torch.float64, device=gt_label.device)
    if flow_classes and gt_flow is not None:
        flow_err, flow_tp = _flow_error(bins, gt_label, tp_rays[ave_threshold], gt_flow[valid], pred_flow[valid],
                                        num_classes, flow_classes, shape)
    counts = torch.stack([_bin_counts(bins, shape), _bin_counts(ray_sample * num_classes + pred_label, shape),
                          *(_bin_counts(torch.where(tp_rays[t], bins, -1), shape) for t in thresholds),
                          flow_err, flow_tp], dim=1).cpu().numpy()   # (S, 4 + K, C): one host read
    num_thresholds = len(thresholds)
    return [RayCounts(gt=c[0], pred=c[1], tp=c[2:2 + num_thresholds], flow_err=c[2 + num_thresholds],
                      flow_tp=c[3 + num_thresholds]) for c in counts]


def _bin_counts(bins: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
    """float64 ``shape`` (S, C) number of entries per flat bin ``sample * C + class``; bins < 0 are not counted."""
    return count_bins(bins, shape[0] * shape[1]).reshape(shape).double()


def _flow_error(bins: torch.Tensor, label: torch.Tensor, tp_rays: torch.Tensor, gt_flow: torch.Tensor,
                pred_flow: torch.Tensor, num_classes: int, flow_classes: Sequence[int],
                shape: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """float64 ``shape`` (S, C) summed flow L2 error and TP count per (sample, class) bin over the TP rays of the
    flow classes."""
    is_flow_class = torch.zeros(num_classes, dtype=torch.bool, device=label.device)
    is_flow_class[list(flow_classes)] = True
    rays = tp_rays & is_flow_class[label]
    err = torch.where(rays, (pred_flow.double() - gt_flow.double()).norm(dim=-1), 0.0)   # other rays' flow unread
    err_sum = torch.zeros(shape[0] * shape[1], dtype=torch.float64, device=label.device).index_add_(0, bins, err)
    return err_sum.reshape(shape), _bin_counts(torch.where(rays, bins, -1), shape)


def sample_ray_counts(gt_sem: torch.Tensor, pred_sem: torch.Tensor, origins_m: Sequence[torch.Tensor],
                      directions: torch.Tensor, num_classes: int, gt_flow: Optional[torch.Tensor] = None,
                      pred_flow: Optional[torch.Tensor] = None, flow_classes: Sequence[int] = (),
                      thresholds: Sequence[float] = RAY_THRESHOLDS_M,
                      nonstandard_relative_depth_tol: Optional[float] = None,
                      ave_threshold: float = AVE_THRESHOLD_M, point_cloud_range: Sequence[float] = OCC_RANGE,
                      voxel_size: float = OCC_VOXEL_SIZE) -> List[RayCounts]:
    """Cast the rays of S samples through their GT and predicted grids in one pass and count each sample's rays.

    Args:
        gt_sem, pred_sem: long ``(S, X, Y, Z)`` class grids (same device; CPU or CUDA).
        origins_m: S float ``(T_s, 3)`` origins in metres (ego frame of each sample).
        directions: float ``(R, 3)`` unit directions.
        num_classes: classes including free (free = last).
        gt_flow, pred_flow: optional float ``(S, X, Y, Z, 2)`` flow in m/s.
        flow_classes, thresholds, nonstandard_relative_depth_tol, ave_threshold: see :func:`count_rays`.
        point_cloud_range, voxel_size: grid geometry (metres).

    Returns:
        S :class:`RayCounts`.
    """
    (gt_label, pred_label), (gt_depth, pred_depth), (gt_vox, pred_vox), ray_sample = cast_sample_rays(
        torch.stack([gt_sem, pred_sem], dim=1), origins_m, directions, num_classes - 1, point_cloud_range,
        voxel_size)
    ray_flow = {}
    if gt_flow is not None and pred_flow is not None:
        ray_flow = dict(gt_flow=gt_flow[ray_sample, gt_vox[:, 0], gt_vox[:, 1], gt_vox[:, 2]],
                        pred_flow=pred_flow[ray_sample, pred_vox[:, 0], pred_vox[:, 1], pred_vox[:, 2]],
                        flow_classes=flow_classes)
    return count_rays(gt_label, gt_depth, pred_label, pred_depth, num_classes, thresholds,
                      nonstandard_relative_depth_tol, ave_threshold=ave_threshold, ray_sample=ray_sample,
                      num_samples=len(gt_sem), **ray_flow)


def occ_score(ray_iou: float, mave: float) -> float:
    """OccScore = 0.9 RayIoU + 0.1 max(1 - mAVE, 0) (RayIoU as a fraction); NaN if mAVE is NaN."""
    if math.isnan(mave):
        return float('nan')
    return 0.9 * ray_iou + 0.1 * max(1.0 - mave, 0.0)


def summarize_ray_counts(counts: RayCounts, thresholds: Sequence[float] = RAY_THRESHOLDS_M,
                         flow_classes: Sequence[int] = ()) -> dict:
    """RayIoU per class/threshold, their means, mAVE and OccScore from summed counts.

    Returns:
        dict with ``iou`` float ``(K, C-1)`` (NaN for classes without rays), ``ray_iou_at``
        ``{threshold: value}``, ``ray_iou``, ``ave`` ``{class index: value}`` for the flow classes,
        ``mave`` and ``occ_score`` (NaN without flow); all IoUs as fractions.
    """
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = (counts.tp / (counts.gt + counts.pred - counts.tp))[:, :-1]
        ave = {c: counts.flow_err[c] / counts.flow_tp[c] if counts.flow_tp[c] else float('nan')
               for c in flow_classes}
    ray_iou = _nanmean(iou)
    mave = _nanmean(np.array(list(ave.values()), dtype=float))
    return dict(iou=iou, ray_iou_at={t: _nanmean(iou[k]) for k, t in enumerate(thresholds)},
                ray_iou=ray_iou, ave=ave, mave=mave, occ_score=occ_score(ray_iou, mave))


def _nanmean(values: np.ndarray) -> float:
    """NaN-mean that returns NaN (without a warning) when every value is NaN."""
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')

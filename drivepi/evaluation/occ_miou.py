"""Voxel occupancy mIoU with the camera visibility mask (Occ3D-nuScenes convention).

As the Occ3D / CVPR 2023 occupancy challenge ``Metric_mIoU``: keep the voxels where
``mask_camera`` is set, accumulate a C x C confusion matrix (rows GT, columns prediction) over all
samples, IoU_c = diag / (row sum + column sum - diag), mIoU = NaN-mean over the classes without
free (the last class). Without a mask every voxel counts.
"""
from typing import Optional

import numpy as np
import torch

from drivepi.device_copies import count_bins


def confusion_matrix(gt: torch.Tensor, pred: torch.Tensor, num_classes: int,
                     mask: Optional[torch.Tensor] = None) -> np.ndarray:
    """Confusion counts of one sample, or of each of S samples (one host read).

    Args:
        gt, pred: integer ``(X, Y, Z)`` class grids, or ``(S, X, Y, Z)`` for S samples, with values in
            ``[0, num_classes)``.
        num_classes: C, free included.
        mask: optional bool, the shape of ``gt``; only voxels where it is True count (Occ3D ``mask_camera``).

    Returns:
        int64 ``(C, C)``, or ``(S, C, C)`` for S samples: ``[gt class, predicted class]`` voxel counts.
    """
    if gt.shape != pred.shape or (mask is not None and mask.shape != gt.shape) or gt.dim() not in (3, 4):
        raise ValueError(f'confusion_matrix: gt, pred (and mask) must share one (X, Y, Z) or (S, X, Y, Z) shape, '
                         f'got gt {tuple(gt.shape)}, pred {tuple(pred.shape)}, '
                         f'mask {None if mask is None else tuple(mask.shape)}')
    batched = gt.dim() == 4
    num_samples = len(gt) if batched else 1
    gt, pred = gt.long().reshape(num_samples, -1), pred.long().reshape(num_samples, -1)
    inside = None if mask is None else mask.reshape(num_samples, -1).bool()
    if inside is not None:  # class 0 stands in outside the mask: the range is checked where the mask is set
        gt, pred = torch.where(inside, gt, 0), torch.where(inside, pred, 0)
    if gt.numel():  # one host read for the four extremes
        gt_min, pred_min, gt_max, pred_max = torch.stack([gt.min(), pred.min(), gt.max(), pred.max()]).tolist()
        for name, low, high in (('gt', gt_min, gt_max), ('pred', pred_min, pred_max)):
            if low < 0 or high >= num_classes:
                raise ValueError(f'confusion_matrix: {name} classes must lie in [0, {num_classes}), got '
                                 f'{low}..{high}')
    cells = num_classes ** 2
    flat = gt * num_classes + pred + cells * torch.arange(num_samples, device=gt.device)[:, None]
    if inside is not None:  # voxels outside the mask are not counted
        flat = torch.where(inside, flat, -1)
    counts = count_bins(flat.reshape(-1), num_samples * cells)
    counts = counts.reshape(num_samples, num_classes, num_classes).cpu().numpy()
    return counts if batched else counts[0]


def miou_from_confusion(confusion: np.ndarray) -> dict:
    """Per-class IoU and mIoU (fractions) from a summed confusion matrix; the last class is free.

    Returns:
        ``{'iou': float (C-1,) with NaN for classes absent from GT and prediction, 'miou': float}``.
    """
    confusion = confusion.astype(np.float64)
    diag = np.diag(confusion)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = diag / (confusion.sum(0) + confusion.sum(1) - diag)
    iou = iou[:-1]
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')
    return dict(iou=iou, miou=miou)

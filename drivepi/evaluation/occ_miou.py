"""Voxel occupancy mIoU with the camera visibility mask (Occ3D-nuScenes convention).

As the Occ3D / CVPR 2023 occupancy challenge ``Metric_mIoU``: keep the voxels where
``mask_camera`` is set, accumulate a C x C confusion matrix (rows GT, columns prediction) over all
samples, IoU_c = diag / (row sum + column sum - diag), mIoU = NaN-mean over the classes without
free (the last class). Without a mask every voxel counts.
"""
from typing import Optional

import numpy as np
import torch


def confusion_matrix(gt: torch.Tensor, pred: torch.Tensor, num_classes: int,
                     mask: Optional[torch.Tensor] = None) -> np.ndarray:
    """Confusion counts of one sample.

    Args:
        gt, pred: integer ``(X, Y, Z)`` class grids with values in ``[0, num_classes)``.
        num_classes: C, free included.
        mask: optional bool ``(X, Y, Z)``; only voxels where it is True count (Occ3D ``mask_camera``).

    Returns:
        int64 ``(C, C)``: ``[gt class, predicted class]`` voxel counts.
    """
    if gt.shape != pred.shape or (mask is not None and mask.shape != gt.shape):
        raise ValueError(f'confusion_matrix: shapes differ: gt {tuple(gt.shape)}, pred {tuple(pred.shape)}, '
                         f'mask {None if mask is None else tuple(mask.shape)}')
    gt, pred = gt.long().reshape(-1), pred.long().reshape(-1)
    inside = None if mask is None else mask.reshape(-1).bool()
    if inside is not None:  # class 0 stands in outside the mask: the range is checked where the mask is set
        gt, pred = torch.where(inside, gt, 0), torch.where(inside, pred, 0)
    if gt.numel():  # one host read for the four extremes
        gt_min, pred_min, gt_max, pred_max = torch.stack([gt.min(), pred.min(), gt.max(), pred.max()]).tolist()
        for name, low, high in (('gt', gt_min, gt_max), ('pred', pred_min, pred_max)):
            if low < 0 or high >= num_classes:
                raise ValueError(f'confusion_matrix: {name} classes must lie in [0, {num_classes}), got '
                                 f'{low}..{high}')
    flat = gt * num_classes + pred
    if inside is not None:  # voxels outside the mask go to one extra bin, dropped (no boolean indexing: no sync)
        flat = torch.where(inside, flat, num_classes ** 2)
    counts = torch.bincount(flat, minlength=num_classes ** 2 + 1)[:num_classes ** 2]
    return counts.reshape(num_classes, num_classes).cpu().numpy()


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

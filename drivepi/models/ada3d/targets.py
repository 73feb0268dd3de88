"""Foreground targets for the Ada3D-style importance predictors (LiDAR voxels, BEV tokens).

Targets come from the ground-truth occupancy grid of ``docs/contracts.md`` (``(B, X, Y, Z)`` class
indices, indexed ``[ix, iy, iz]``): a position is foreground when it lies in an occupancy voxel of one
of ``fg_classes``. (Ada3D supervises its predictor with detection boxes; DrivePI's dense ground truth is
the occupancy, which also covers the static classes.) The grid constants reach the GPU as pinned,
non-blocking copies (:mod:`drivepi.device_copies`), so computing the targets never waits for the GPU.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from drivepi.device_copies import device_tensor
from drivepi.geometry import grid_shape


def occupancy_foreground(gt_occ: torch.Tensor, fg_classes: Sequence[int]) -> torch.Tensor:
    """Boolean ``(B, X, Y, Z)`` mask of the occupancy voxels whose class is in ``fg_classes``."""
    if gt_occ.dim() != 4 or gt_occ.dtype.is_floating_point:
        raise ValueError(f'gt_occ must be an integer tensor (B, X, Y, Z), got {gt_occ.dtype} {tuple(gt_occ.shape)}')
    return torch.isin(gt_occ, device_tensor(list(fg_classes), gt_occ.dtype, gt_occ.device))


def voxel_targets_from_occupancy(centers: torch.Tensor, batch_idx: torch.Tensor, gt_occ: torch.Tensor,
                                 fg_classes: Sequence[int], occ_range: Sequence[float],
                                 occ_voxel_size: Sequence[float]) -> torch.Tensor:
    """Per-voxel foreground targets from GT occupancy.

    Args:
        centers: float ``(M, 3)`` voxel centres, metres, ego frame.
        batch_idx: long ``(M,)`` batch element of each voxel.
        gt_occ: long ``(B, X, Y, Z)`` occupancy classes over ``occ_range``.
        fg_classes: class indices counted as foreground.
        occ_range: occupancy grid range ``[x_min, y_min, z_min, x_max, y_max, z_max]`` metres.
        occ_voxel_size: occupancy voxel size ``[dx, dy, dz]`` metres.

    Returns:
        float32 ``(M,)`` in {0, 1}; voxels outside the occupancy grid are 0.
    """
    shape = grid_shape(occ_range, occ_voxel_size)
    if tuple(gt_occ.shape[1:]) != shape:
        raise ValueError(f'gt_occ has grid {tuple(gt_occ.shape[1:])}, expected {shape} for range {list(occ_range)}')
    fg = occupancy_foreground(gt_occ, fg_classes)
    lower, size = device_tensor([list(occ_range[:3]), list(occ_voxel_size)], centers.dtype, centers.device)
    idx = torch.floor((centers - lower) / size).long()
    inside = ((idx >= 0) & (idx < device_tensor(shape, torch.long, idx.device))).all(dim=1)
    idx = torch.where(inside.unsqueeze(1), idx, torch.zeros_like(idx))
    return (fg[batch_idx, idx[:, 0], idx[:, 1], idx[:, 2]] & inside).float()


def bev_targets_from_occupancy(gt_occ: torch.Tensor, fg_classes: Sequence[int],
                               bev_shape: Tuple[int, int]) -> torch.Tensor:
    """BEV foreground targets: 1 where any occupancy voxel of the cell's pillar block is foreground.

    Args:
        gt_occ: long ``(B, X, Y, Z)`` occupancy classes.
        fg_classes: class indices counted as foreground.
        bev_shape: ``(Hb, Wb)``, dividing ``(X, Y)`` exactly.

    Returns:
        float32 ``(B, Hb, Wb)`` in {0, 1}, indexed ``[ix, iy]``.
    """
    fg_columns = occupancy_foreground(gt_occ, fg_classes).any(dim=3).float()
    X, Y = fg_columns.shape[1:]
    if X % bev_shape[0] or Y % bev_shape[1]:
        raise ValueError(f'BEV shape {tuple(bev_shape)} does not divide the occupancy grid {(X, Y)}')
    stride = (X // bev_shape[0], Y // bev_shape[1])
    return F.max_pool2d(fg_columns.unsqueeze(1), stride, stride).squeeze(1)


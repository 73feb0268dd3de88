"""Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of the mean Jaccard loss.

All classes are handled at once: one sort of the (C, N) error matrix along N, the Lovasz gradients by
cumulative sums along N, and the mean over the classes present in the labels taken with a 0/1 weight per
class. Nothing is read back to the host, so on a GPU the loss queues its kernels without waiting for them.
Voxels outside an optional ``valid`` mask sort after every valid voxel and weigh nothing, which gives the
loss of the valid subset without boolean indexing (whose output size the host would have to read).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from drivepi.device_copies import host_reads_are_free
from drivepi.registry import MODELS


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors, along the last dimension.

    Args:
        gt_sorted: float (..., N) foreground indicators sorted by descending error.

    Returns:
        (..., N) weights whose dot product with the sorted errors is the Lovasz hinge.
    """
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1.0 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor, valid: Optional[torch.Tensor] = None,
                   skip_absent: Optional[bool] = None) -> torch.Tensor:
    """Mean over classes present in ``labels`` of the Lovasz-extended Jaccard loss.

    Args:
        probs: (N, C) class probabilities (softmax output).
        labels: long (N,) in [0, C).
        valid: optional bool (N,); only these voxels count (the loss of ``probs[valid], labels[valid]``).
        skip_absent: sort only the present classes, which needs their number on the host (None: on the CPU,
            where that read is free; a GPU sorts every class and weighs the absent ones 0). Same value.

    Returns:
        Scalar loss; zero (keeping the graph) when no voxel counts.
    """
    if probs.numel() == 0:
        return probs.sum() * 0.0
    foreground = F.one_hot(labels, probs.shape[1]).T.to(probs.dtype)  # (C, N)
    errors = (foreground - probs.T).abs()
    if valid is not None:
        foreground = foreground * valid
        errors = torch.where(valid, errors, -1.0)  # below every valid error (>= 0): sorted last
    present = foreground.sum(1) > 0  # (C,)
    if skip_absent or (skip_absent is None and host_reads_are_free(probs)):
        classes = present.nonzero().squeeze(1)
        foreground, errors, present = foreground[classes], errors[classes], present[classes]
    errors_sorted, order = errors.sort(dim=1, descending=True)
    if valid is not None:
        errors_sorted = errors_sorted.clamp(min=0.0)
    per_class = (errors_sorted * lovasz_grad(foreground.gather(1, order))).sum(1)
    present = present.to(per_class.dtype)
    return (per_class * present).sum() / present.sum().clamp(min=1.0)


def random_valid_subset(valid: torch.Tensor, size: int) -> torch.Tensor:
    """Indices (size,) of a uniformly random subset of the True positions of ``valid`` (N,), all of them and
    then False positions when there are fewer than ``size``; found without reading back how many are True:
    random keys, the False positions' keys above every True one, the ``size`` smallest."""
    keys = torch.rand(valid.shape, device=valid.device) + (~valid).float()
    return keys.topk(size, largest=False, sorted=False).indices


@MODELS.register_module()
class LovaszSoftmaxLoss(nn.Module):
    """Lovasz-softmax on logits.

    The loss sorts all N errors of each class; on CPU that dominates a mini training step (about 0.1 s per
    class for 3e5 voxels), so ``max_voxels`` can bound N by a uniform random subset of the (valid) voxels each
    call (a stochastic estimate of the full-grid loss; None uses every voxel).

    Args:
        loss_weight: multiplier of the loss.
        max_voxels: evaluate on at most this many randomly chosen voxels (None: all).
    """

    def __init__(self, loss_weight: float = 1.0, max_voxels: Optional[int] = None):
        super().__init__()
        self.loss_weight = loss_weight
        self.max_voxels = max_voxels

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """logits (N, C), labels long (N,), valid optional bool (N,): only those voxels count -> scalar."""
        if self.max_voxels is not None and len(labels) > self.max_voxels:
            if valid is None:
                subset = torch.randperm(len(labels), device=labels.device)[:self.max_voxels]
            else:
                subset = random_valid_subset(valid, self.max_voxels)
                valid = valid[subset]
            logits, labels = logits[subset], labels[subset]
        return self.loss_weight * lovasz_softmax(logits.float().softmax(-1), labels, valid)

"""Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of the mean Jaccard loss."""
from typing import Optional

import torch
from torch import nn

from drivepi.registry import MODELS


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors.

    Args:
        gt_sorted: float (N,) foreground indicators sorted by descending error.

    Returns:
        (N,) weights whose dot product with the sorted errors is the Lovasz hinge.
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over classes present in ``labels`` of the Lovasz-extended Jaccard loss.

    Args:
        probs: (N, C) class probabilities (softmax output).
        labels: long (N,) in [0, C).

    Returns:
        Scalar loss; zero (keeping the graph) when N = 0.
    """
    if probs.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in labels.unique():
        foreground = (labels == c).float()
        errors = (foreground - probs[:, c]).abs()
        errors_sorted, order = errors.sort(descending=True)
        losses.append(errors_sorted @ lovasz_grad(foreground[order]))
    return torch.stack(losses).mean()


@MODELS.register_module()
class LovaszSoftmaxLoss(nn.Module):
    """Lovasz-softmax on logits.

    The loss sorts all N errors once per present class; on CPU that dominates a mini training step
    (about 0.1 s per class for 3e5 voxels), so ``max_voxels`` can bound N by a uniform random subset of
    the voxels each call (a stochastic estimate of the full-grid loss; None uses every voxel).

    Args:
        loss_weight: multiplier of the loss.
        max_voxels: evaluate on at most this many randomly chosen voxels (None: all).
    """

    def __init__(self, loss_weight: float = 1.0, max_voxels: Optional[int] = None):
        super().__init__()
        self.loss_weight = loss_weight
        self.max_voxels = max_voxels

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """logits (N, C), labels long (N,) -> scalar."""
        if self.max_voxels is not None and len(labels) > self.max_voxels:
            subset = torch.randperm(len(labels), device=labels.device)[:self.max_voxels]
            logits, labels = logits[subset], labels[subset]
        return self.loss_weight * lovasz_softmax(logits.float().softmax(-1), labels)

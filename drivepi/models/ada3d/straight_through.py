"""Straight-through importance gate shared by the Ada3D voxel filter and the BEV token filter."""
import torch


def straight_through_gate(features: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Return ``features`` unchanged (bit-exact) in the forward pass while routing gradient to ``prob``.

    Computes ``features + features * (prob - stop_grad(prob))``: the second term is exactly zero, and
    ``d out / d prob = features``, so the losses downstream of the kept elements train the scorer that
    selected them.

    Args:
        features: ``(..., C)`` kept features.
        prob: ``(..., 1)`` keep probabilities (e.g. sigmoid of importance logits), broadcastable.
    """
    return features + features * (prob - prob.detach())

"""Ada3D-style BEV token filter: keep the most important BEV positions as LLM tokens, scatter back.

Flattened BEV positions are ``ix * Wb + iy`` (see :mod:`drivepi.models.bev_grid`). The kept indices
are returned in increasing position order so the LLM sees tokens in raster order.
"""
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.models.ada3d.straight_through import straight_through_gate
from drivepi.models.ada3d.targets import bev_targets_from_occupancy
from drivepi.registry import MODELS


def num_kept_tokens(keep_ratio: float, num_positions: int) -> int:
    """``K = round(keep_ratio * num_positions)``, at least 1."""
    return max(1, round(keep_ratio * num_positions))


def gather_tokens(bev: torch.Tensor, keep_idx: torch.Tensor) -> torch.Tensor:
    """``bev (B, C, Hb, Wb)``, ``keep_idx (B, K)`` -> tokens ``(B, K, C)``."""
    flat = bev.flatten(2)
    return torch.gather(flat, 2, keep_idx.unsqueeze(1).expand(-1, flat.shape[1], -1)).transpose(1, 2)


def scatter_tokens(tokens: torch.Tensor, keep_idx: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
    """Write tokens ``(B, K, C)`` back at ``keep_idx (B, K)`` of a copy of ``bev (B, C, Hb, Wb)``.

    Positions not in ``keep_idx`` keep their values from ``bev`` (the pre-LLM features).
    """
    if tokens.shape[0] != bev.shape[0] or tokens.shape[2] != bev.shape[1] or tokens.shape[:2] != keep_idx.shape:
        raise ValueError(f'tokens {tuple(tokens.shape)} / keep_idx {tuple(keep_idx.shape)} do not fit '
                         f'BEV {tuple(bev.shape)}')
    flat = bev.flatten(2)
    index = keep_idx.unsqueeze(1).expand(-1, flat.shape[1], -1)
    return flat.scatter(2, index, tokens.transpose(1, 2).to(flat.dtype)).view_as(bev)


@MODELS.register_module()
class BEVTokenFilter(BaseModule):
    """Scores BEV positions with a light conv net and keeps the top ``K`` as tokens.

    Kept tokens pass the straight-through gate on ``p = sigmoid(score)`` (:func:`straight_through_gate`),
    bit-exact in the forward pass, so the LLM losses train the scorer; ``loss`` adds a focal loss
    against occupancy foreground.

    Args:
        in_channels: BEV channels.
        keep_ratio: fraction of the ``Hb * Wb`` positions kept, in (0, 1].
        hidden_channels: channels of the scoring net.
        fg_classes: occupancy classes whose pillars are important (default: all 16 non-free classes).
        loss_importance: mmdet sigmoid focal loss config.
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, in_channels: int, keep_ratio: float, hidden_channels: int = 64,
                 fg_classes: Sequence[int] = tuple(range(16)),
                 loss_importance: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                              loss_weight=1.0), init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 < keep_ratio <= 1:
            raise ValueError(f'keep_ratio must lie in (0, 1], got {keep_ratio}')
        self.keep_ratio = keep_ratio
        self.fg_classes = list(fg_classes)
        self.scorer = nn.Sequential(nn.Conv2d(in_channels, hidden_channels, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(hidden_channels, 1, 1))
        self.loss_importance = MODELS.build(loss_importance)

    def forward(self, bev: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Args: bev float ``(B, C, Hb, Wb)``.

        Returns:
            dict with ``scores`` ``(B, Hb*Wb)`` logits, ``keep_idx`` long ``(B, K)`` (ascending),
            ``tokens`` ``(B, K, C)`` (gated BEV features at the kept positions).
        """
        if bev.dim() != 4:
            raise ValueError(f'bev must be (B, C, Hb, Wb), got {tuple(bev.shape)}')
        scores = self.scorer(bev).flatten(1)
        k = num_kept_tokens(self.keep_ratio, scores.shape[1])
        keep_idx = torch.topk(scores.detach(), k, dim=1, sorted=False).indices.sort(dim=1).values
        prob = torch.sigmoid(torch.gather(scores, 1, keep_idx)).unsqueeze(2)
        tokens = straight_through_gate(gather_tokens(bev, keep_idx), prob)
        return dict(scores=scores, keep_idx=keep_idx, tokens=tokens)

    def loss(self, scores: torch.Tensor, gt_occ: torch.Tensor, bev_shape: Sequence[int]) -> torch.Tensor:
        """Focal loss of ``scores (B, Hb*Wb)`` against BEV foreground of ``gt_occ (B, X, Y, Z)``."""
        targets = bev_targets_from_occupancy(gt_occ, self.fg_classes, tuple(bev_shape)).flatten()
        return self.loss_importance(scores.reshape(-1, 1), targets.unsqueeze(1),
                                    avg_factor=targets.sum().clamp(min=1.0))


__all__ = ['BEVTokenFilter', 'gather_tokens', 'scatter_tokens', 'num_kept_tokens']

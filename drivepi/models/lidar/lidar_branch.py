"""LiDAR branch: voxelize -> Ada3D importance + density-guided filter -> spconv backbone -> LiDAR BEV."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule

from drivepi.geometry import OCC_RANGE, OCC_VOXEL_SIZE
from drivepi.models.ada3d.density_filter import filter_and_gate_voxels
from drivepi.models.ada3d.targets import voxel_targets_from_occupancy
from drivepi.registry import MODELS


@MODELS.register_module()
class LiDARBranch(BaseModule):
    """Multi-sweep points to a LiDAR BEV over the occupancy range, with Ada3D voxel filtering.

    With a ``voxel_filter`` the kept voxels' features pass a straight-through gate on
    ``p = sigmoid(importance logit)`` (:func:`drivepi.models.ada3d.filter_and_gate_voxels`): the forward
    value is unchanged and the task losses reach the importance predictor, which is also supervised by
    ``loss_importance``.

    Args:
        voxelizer: config of a voxelizer (e.g. ``DynamicVoxelizer``).
        backbone: config of the sparse backbone (``in_channels`` and ``grid_shape`` are filled in).
        importance_predictor: config of a ``VoxelImportancePredictor`` (``in_channels`` filled in) or None.
        voxel_filter: config of a ``DensityGuidedVoxelFilter`` or None (no filtering); needs a predictor.
        loss_importance: mmdet sigmoid focal loss config for the predictor.
        importance_fg_classes: occupancy classes that count as important (default: the 10 object classes).
        occ_range: occupancy grid range (metres) the GT occupancy covers.
        occ_voxel_size: occupancy voxel size (metres).
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, voxelizer: dict, backbone: dict, importance_predictor: Optional[dict] = None,
                 voxel_filter: Optional[dict] = None,
                 loss_importance: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                              loss_weight=1.0),
                 importance_fg_classes: Sequence[int] = tuple(range(10)),
                 occ_range: Sequence[float] = OCC_RANGE, occ_voxel_size: Sequence[float] = (OCC_VOXEL_SIZE,) * 3,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if voxel_filter is not None and importance_predictor is None:
            raise ValueError('voxel_filter needs an importance_predictor to score voxels')
        self.voxelizer = MODELS.build(voxelizer)
        in_channels, grid = self.voxelizer.out_channels, self.voxelizer.grid_shape
        self.backbone = MODELS.build(dict(backbone, in_channels=in_channels, grid_shape=grid))
        self.importance_predictor = (MODELS.build(dict(importance_predictor, in_channels=in_channels))
                                     if importance_predictor is not None else None)
        self.voxel_filter = MODELS.build(voxel_filter) if voxel_filter is not None else None
        self.loss_importance = MODELS.build(loss_importance)
        self.importance_fg_classes = list(importance_fg_classes)
        self.occ_range, self.occ_voxel_size = list(occ_range), list(occ_voxel_size)
        self.out_channels = self.backbone.out_channels
        self.bev_shape = self.backbone.bev_shape

    def forward(self, points: List[torch.Tensor],
                gt_occ: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Args:
            points: list of B float tensors ``(N_i, 5)`` ``[x, y, z, intensity, time_lag]``, ego frame.
            gt_occ: optional long ``(B, X, Y, Z)`` GT occupancy over ``occ_range`` (importance supervision).

        Returns:
            bev float ``(B, C_l, Hb, Wb)`` indexed ``[ix, iy]``; aux dict with ``num_voxels``,
            ``num_kept_voxels``, ``voxel_keep_ratio`` (kept / all non-empty voxels), ``bev_active_ratio``
            (BEV cells with LiDAR features / all cells) and, when GT is given and a predictor exists,
            ``loss_importance``.
        """
        vox = self.voxelizer(points)
        feats, coords, batch_size = vox['feats'], vox['coords'], vox['batch_size']
        batch_idx = coords[:, 0].long()
        aux = dict(num_voxels=torch.full((), len(coords), device=feats.device))
        if self.importance_predictor is not None:
            logits = self.importance_predictor(feats, coords, self.voxelizer.grid_shape, batch_size)
            if gt_occ is not None:
                aux['loss_importance'] = self._importance_loss(logits, vox['centers'], batch_idx, gt_occ)
            if self.voxel_filter is not None:
                feats, coords = filter_and_gate_voxels(self.voxel_filter, logits, feats, coords, vox['centers'],
                                                       batch_idx, batch_size)
        aux['num_kept_voxels'] = torch.full((), len(coords), device=feats.device)
        aux['voxel_keep_ratio'] = aux['num_kept_voxels'].float() / aux['num_voxels'].float()
        bev, active = self.backbone(feats, coords, batch_size)
        aux['bev_active_ratio'] = active.float().mean()
        return bev, aux

    def _importance_loss(self, logits: torch.Tensor, centers: torch.Tensor, batch_idx: torch.Tensor,
                         gt_occ: torch.Tensor) -> torch.Tensor:
        """Sigmoid focal loss of the voxel logits ``(M,)`` against occupancy foreground targets."""
        targets = voxel_targets_from_occupancy(centers, batch_idx, gt_occ, self.importance_fg_classes,
                                               self.occ_range, self.occ_voxel_size)
        # one-hot (M, 1) targets select mmdet's pure-torch focal loss on every device
        return self.loss_importance(logits.unsqueeze(1), targets.unsqueeze(1),
                                    avg_factor=targets.sum().clamp(min=1.0))

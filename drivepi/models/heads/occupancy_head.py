"""Semantic occupancy head: class logits over the occupancy grid from the LLM-refined BEV map."""
from typing import Sequence

import torch

from drivepi.device_copies import host_reads_are_free
from drivepi.registry import MODELS

from .base_head import BaseDrivePIHead, HeadInputs, stack_field
from .channel_to_height import ChannelToHeightDecoder


@MODELS.register_module()
class OccupancyHead(BaseDrivePIHead):
    """Occupancy logits ``occ_logits`` (B, X, Y, Z, num_classes) by channel-to-height; CE + Lovasz-softmax
    losses against ``gt_occ`` (B, X, Y, Z) on the voxels of ``gt_mask_camera``; predicts ``pred_occ`` uint8.

    Args:
        in_channels: BEV channels (filled in by DrivePI).
        grid_size: (X, Y, Z) of the occupancy grid (from the config's ``occ_grid``).
        num_classes: semantic classes including free (OpenOcc: 17, free = index 16).
        mid_channels, num_convs, norm_cfg: see ``ChannelToHeightDecoder``.
        loss_ce: config of the cross-entropy loss (per visible voxel).
        loss_lovasz: config of the Lovasz-softmax loss.
        use_mask_camera: train only on camera-visible voxels (``gt_mask_camera``).
    """
    feature = 'bev'

    def __init__(self, in_channels: int, grid_size: Sequence[int], num_classes: int, mid_channels: int = 64,
                 num_convs: int = 2, norm_cfg: dict = dict(type='BN2d'),
                 loss_ce: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_lovasz: dict = dict(type='LovaszSoftmaxLoss', loss_weight=1.0),
                 use_mask_camera: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.grid_size, self.num_classes = tuple(grid_size), num_classes
        self.decoder = ChannelToHeightDecoder(in_channels, mid_channels, num_classes, grid_size, num_convs, norm_cfg)
        self.loss_ce = MODELS.build(loss_ce)
        self.loss_lovasz = MODELS.build(loss_lovasz)
        self.use_mask_camera = use_mask_camera

    def forward(self, feats: HeadInputs, batch_data_samples: Sequence = ()) -> dict:
        return dict(occ_logits=self.decoder(feats.bev))

    def loss_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> dict:
        """``dict(loss_occ_ce, loss_occ_lovasz)`` of ``occ_logits`` (B, X, Y, Z, C) against the samples'
        ``gt_occ`` (labels in [0, C), checked on the host) and ``gt_mask_camera``; zero without visible voxels.

        On a GPU the invisible voxels are weighed out (cross-entropy weight 0, averaged over the visible ones; the
        Lovasz loss's ``valid`` mask) rather than indexed away, so nothing is read back; on the CPU, where that read
        is free, they are indexed away, which spares their share of the work. Both give the same losses."""
        logits = outputs['occ_logits']
        gt_occ = stack_field(batch_data_samples, 'gt_occ', self.grid_size, torch.long, logits.device,
                             value_range=(0, self.num_classes))
        voxel_logits, labels = logits.reshape(-1, self.num_classes), gt_occ.reshape(-1)
        if not self.use_mask_camera:
            return dict(loss_occ_ce=self.loss_ce(voxel_logits.float(), labels),
                        loss_occ_lovasz=self.loss_lovasz(voxel_logits, labels))
        visible = stack_field(batch_data_samples, 'gt_mask_camera', self.grid_size, torch.bool,
                              logits.device).reshape(-1)
        if host_reads_are_free(visible) and bool(visible.any()):
            voxel_logits, labels = voxel_logits[visible], labels[visible]
            return dict(loss_occ_ce=self.loss_ce(voxel_logits.float(), labels),
                        loss_occ_lovasz=self.loss_lovasz(voxel_logits, labels))
        weight = visible.float()
        return dict(loss_occ_ce=self.loss_ce(voxel_logits.float(), labels, weight, avg_factor=weight.sum()),
                    loss_occ_lovasz=self.loss_lovasz(voxel_logits, labels, visible))

    def predict_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> None:
        """``pred_occ``: uint8 (X, Y, Z) labels, the argmax class of every voxel."""
        labels = outputs['occ_logits'].argmax(dim=-1).to(torch.uint8).cpu()
        for sample, sample_labels in zip(batch_data_samples, labels):
            sample.pred_occ = sample_labels

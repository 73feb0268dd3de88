"""Semantic occupancy head: class logits over the occupancy grid from a BEV map."""
import torch

from drivepi.geometry import NUM_OCC_CLASSES
from drivepi.registry import MODELS

from .channel_to_height import ChannelToHeightDecoder


@MODELS.register_module()
class OccupancyHead(ChannelToHeightDecoder):
    """Occupancy logits (B, num_classes, X, Y, Z) by channel-to-height; CE + Lovasz-softmax losses.

    Args:
        in_channels, mid_channels, grid_size, num_convs, norm_cfg: see ``ChannelToHeightDecoder``.
        num_classes: semantic classes including free (OpenOcc: 17, free = index 16).
        loss_ce: config of the cross-entropy loss (per visible voxel).
        loss_lovasz: config of the Lovasz-softmax loss.
        use_mask_camera: train only on camera-visible voxels (``gt_mask_camera``).
    """

    def __init__(self, in_channels: int, grid_size: tuple, mid_channels: int = 64,
                 num_classes: int = NUM_OCC_CLASSES, num_convs: int = 2, norm_cfg: dict = dict(type='BN2d'),
                 loss_ce: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_lovasz: dict = dict(type='LovaszSoftmaxLoss', loss_weight=1.0),
                 use_mask_camera: bool = True, init_cfg=None):
        super().__init__(in_channels, mid_channels, num_classes, grid_size, num_convs, norm_cfg, init_cfg)
        self.num_classes = num_classes
        self.loss_ce = MODELS.build(loss_ce)
        self.loss_lovasz = MODELS.build(loss_lovasz)
        self.use_mask_camera = use_mask_camera

    def loss(self, logits: torch.Tensor, gt_occ: torch.Tensor, gt_mask: torch.Tensor) -> dict:
        """Occupancy losses.

        Args:
            logits: (B, C, X, Y, Z); gt_occ: long (B, X, Y, Z) in [0, C); gt_mask: bool (B, X, Y, Z).

        Returns:
            ``dict(loss_occ_ce, loss_occ_lovasz)``.
        """
        if gt_occ.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f'gt_occ shape {tuple(gt_occ.shape)} does not match logits {tuple(logits.shape)}')
        if gt_occ.min() < 0 or gt_occ.max() >= self.num_classes:
            raise ValueError(f'gt_occ labels must lie in [0, {self.num_classes - 1}], '
                             f'got [{int(gt_occ.min())}, {int(gt_occ.max())}]')
        voxel_logits = logits.permute(0, 2, 3, 4, 1).reshape(-1, self.num_classes)
        labels = gt_occ.reshape(-1).long()
        if self.use_mask_camera:
            keep = gt_mask.reshape(-1).bool()
            voxel_logits, labels = voxel_logits[keep], labels[keep]
        if labels.numel() == 0:
            zero = logits.sum() * 0.0
            return dict(loss_occ_ce=zero, loss_occ_lovasz=zero)
        return dict(loss_occ_ce=self.loss_ce(voxel_logits.float(), labels),
                    loss_occ_lovasz=self.loss_lovasz(voxel_logits, labels))

    @staticmethod
    def predict(logits: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) logits -> uint8 (B, X, Y, Z) labels."""
        return logits.argmax(dim=1).to(torch.uint8)

"""Camera branch: image backbone + neck on the valid views, LSS view transform to a camera BEV."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from drivepi.models.cuda_graphs import GraphedFunction
from drivepi.registry import MODELS


def check_camera_inputs(imgs: torch.Tensor, ego2img: torch.Tensor, cam_valid: torch.Tensor) -> Tuple[bool, bool]:
    """Raise ``ValueError`` for malformed camera inputs (shapes, dtypes, non-finite valid views).

    Returns:
        (any view valid, all views valid), read in the same single host synchronisation as the checks.
    """
    if imgs.dim() != 5 or imgs.shape[2] != 3 or not imgs.dtype.is_floating_point:
        raise ValueError(f'imgs must be float (B, V, 3, H, W), got {imgs.dtype} {tuple(imgs.shape)}')
    if ego2img.shape != imgs.shape[:2] + (4, 4):
        raise ValueError(f'ego2img must be (B, V, 4, 4) = {tuple(imgs.shape[:2]) + (4, 4)}, got {tuple(ego2img.shape)}')
    if cam_valid.shape != imgs.shape[:2] or cam_valid.dtype != torch.bool:
        raise ValueError(f'cam_valid must be bool (B, V) = {tuple(imgs.shape[:2])}, got {cam_valid.dtype} '
                         f'{tuple(cam_valid.shape)}')
    bad_img = ~torch.isfinite(imgs).flatten(2).all(dim=2) & cam_valid
    affine = (ego2img[..., 3, :3] == 0).all(dim=2) & (ego2img[..., 3, 3] == 1)  # no constant copied to the GPU
    bad_proj = ~(torch.isfinite(ego2img).flatten(2).all(dim=2) & affine)
    bad_proj &= cam_valid.to(ego2img.device)
    flags = torch.stack([bad_img.any(), bad_proj.any().to(bad_img.device), cam_valid.any(), cam_valid.all()])
    any_bad_img, any_bad_proj, any_valid, all_valid = flags.tolist()
    if any_bad_img or any_bad_proj:
        raise ValueError(f'non-finite values in valid views: imgs at (b, v) {torch.nonzero(bad_img).tolist()}, '
                         f'or ego2img not finite and affine (last row 0, 0, 0, 1) at (b, v) '
                         f'{torch.nonzero(bad_proj).tolist()}')
    return any_valid, all_valid


@MODELS.register_module()
class CameraBranch(BaseModule):
    """Multi-view images to a camera BEV over the occupancy range.

    Only the views with ``cam_valid`` True enter the backbone (so a missing camera affects neither the
    features nor the batch-norm statistics) and the BEV; with no valid view the BEV is all zeros.

    Args:
        backbone: image backbone config (e.g. ``dict(type='mmdet.ResNet', depth=18, out_indices=(2, 3))``).
        neck: neck config (e.g. ``dict(type='mmdet.FPN', in_channels=[128, 256], out_channels=64, num_outs=2)``).
        view_transform: ``LSSViewTransform`` config.
        feat_level: index of the neck output whose resolution is lifted to BEV; the other neck levels
            are resized to it and added, so every neck output contributes.
        cuda_graphs: on a GPU, at inference with all views valid, replay the branch from a CUDA graph
            (``drivepi.models.cuda_graphs.GraphedFunction``: one launch instead of the backbone's hundreds;
            38.5 -> 23.1 ms per all-heads frame on an H200, graph off vs on in one call, docs/benchmarks.md).
        init_cfg: mmengine weight-init config (e.g. pretrained backbone weights go in ``backbone.init_cfg``).
    """

    def __init__(self, backbone: dict, neck: dict, view_transform: dict, feat_level: int = 0,
                 cuda_graphs: bool = True, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.view_transform = MODELS.build(view_transform)
        self.feat_level = feat_level
        self.out_channels = self.view_transform.out_channels
        self.bev_shape: Tuple[int, int] = self.view_transform.bev_shape
        self._graphed_all_views = GraphedFunction(self.all_views_bev)
        self.cuda_graphs = cuda_graphs

    def forward(self, imgs: torch.Tensor, ego2img: torch.Tensor, cam_valid: torch.Tensor) -> torch.Tensor:
        """Args:
            imgs: float ``(B, V, 3, H, W)`` normalised images (zeros for missing views).
            ego2img: ``(B, V, 4, 4)`` ego -> image projections incl. augmentation.
            cam_valid: bool ``(B, V)``.

        Returns:
            float ``(B, C_c, Hb, Wb)`` camera BEV indexed ``[ix, iy]``.
        """
        any_valid, all_valid = check_camera_inputs(imgs, ego2img, cam_valid)
        B, V = imgs.shape[:2]
        if not any_valid:
            return imgs.new_zeros((B, self.out_channels) + tuple(self.bev_shape))
        if all_valid:  # fixed shapes: on a GPU at inference, one CUDA graph replay
            graphed = self.cuda_graphs and imgs.is_cuda and not torch.is_grad_enabled() and not self.training
            return (self._graphed_all_views if graphed else self.all_views_bev)(imgs, ego2img)
        batch_idx = torch.arange(B, device=imgs.device).unsqueeze(1).expand(B, V)[cam_valid]
        return self.views_bev(imgs[cam_valid], ego2img[cam_valid], batch_idx, B)

    @property
    def cuda_graphs(self) -> bool:
        """Whether inference with every view valid replays a CUDA graph on a GPU (settable; drops the graphs)."""
        return self._cuda_graphs

    @cuda_graphs.setter
    def cuda_graphs(self, enabled: bool) -> None:
        self._cuda_graphs = enabled
        self._graphed_all_views.reset()

    def all_views_bev(self, imgs: torch.Tensor, ego2img: torch.Tensor) -> torch.Tensor:
        """Camera BEV ``(B, C_c, Hb, Wb)`` of ``imgs`` ``(B, V, 3, H, W)`` with every view valid: fixed shapes
        and no host synchronisation, so a CUDA graph can capture it."""
        B, V = imgs.shape[:2]
        batch_idx = torch.arange(B, device=imgs.device).repeat_interleave(V)
        return self.views_bev(imgs.flatten(0, 1), ego2img.flatten(0, 1), batch_idx, B)

    def views_bev(self, views: torch.Tensor, ego2img: torch.Tensor, batch_idx: torch.Tensor,
                  batch_size: int) -> torch.Tensor:
        """Camera BEV ``(batch_size, C_c, Hb, Wb)`` of N views ``(N, 3, H, W)`` with projections ``(N, 4, 4)``
        and samples ``batch_idx`` ``(N,)``."""
        feats = self.merge_levels(self.neck(self.backbone(views)))
        return self.view_transform(feats, ego2img, views.shape[-2:], batch_idx, batch_size)

    def merge_levels(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sum of the neck levels ``(N, C, h_l, w_l)``, bilinearly resized to level ``feat_level``."""
        size = levels[self.feat_level].shape[-2:]
        return sum(F.interpolate(level, size=size, mode='bilinear', align_corners=False)
                   if level.shape[-2:] != size else level for level in levels)

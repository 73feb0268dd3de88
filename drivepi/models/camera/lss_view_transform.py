"""LSS-style view transform: per-pixel depth distribution x context features, splatted onto the BEV."""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from drivepi.geometry import OCC_RANGE, grid_shape
from drivepi.models.bev_grid import register_grid_buffers
from drivepi.registry import MODELS


def affine_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of affine ``(..., 4, 4)`` matrices ``[[A, b], [0, 0, 0, 1]]`` in closed form: ``A^-1`` from cross
    products of ``A``'s columns over its determinant. Elementwise kernels only, unlike ``torch.linalg.inv``, whose
    batched GPU solver a CUDA graph cannot replay safely."""
    a, b = matrices[..., :3, :3], matrices[..., :3, 3:]
    c0, c1, c2 = a[..., :, 0], a[..., :, 1], a[..., :, 2]
    rows = torch.stack([torch.cross(c1, c2, dim=-1), torch.cross(c2, c0, dim=-1), torch.cross(c0, c1, dim=-1)], dim=-2)
    a_inv = rows / (c0 * rows[..., 0, :]).sum(-1)[..., None, None]
    top = torch.cat([a_inv, -a_inv @ b], dim=-1)
    return torch.cat([top, matrices[..., 3:, :]], dim=-2)


def frustum_points(ego2img: torch.Tensor, feat_hw: Tuple[int, int], img_hw: Tuple[int, int],
                   depths: torch.Tensor) -> torch.Tensor:
    """Ego-frame positions of the frustum samples of every feature-map cell.

    The feature cell ``(r, c)`` of an image downsampled by ``s = H / h`` covers pixels ``r*s .. r*s + s - 1``;
    its sample is the cell centre ``(c*s + (s-1)/2, r*s + (s-1)/2)`` (pixel centres at integer coordinates,
    the mmdet3d/OpenCV convention of ``cam2img``) at each depth.

    Args:
        ego2img: ``(N, 4, 4)`` affine matrices (last row ``[0, 0, 0, 1]``) mapping ego ``[x, y, z, 1]`` to
            ``[u*d, v*d, d, 1]`` (pixels, metres).
        feat_hw: feature map ``(h, w)``.
        img_hw: image ``(H, W)`` in pixels (the space ``ego2img`` projects to).
        depths: ``(D,)`` depths in metres along the camera axis.

    Returns:
        float32 ``(N, D, h, w, 3)`` ego-frame points in metres.
    """
    (h, w), (H, W) = feat_hw, img_hw
    device = ego2img.device
    sy, sx = H / h, W / w
    v = torch.arange(h, device=device, dtype=torch.float32) * sy + (sy - 1) / 2
    u = torch.arange(w, device=device, dtype=torch.float32) * sx + (sx - 1) / 2
    d = depths.to(device=device, dtype=torch.float32)
    grid_d, grid_v, grid_u = torch.meshgrid(d, v, u, indexing='ij')  # (D, h, w)
    homogeneous = torch.stack([grid_u * grid_d, grid_v * grid_d, grid_d, torch.ones_like(grid_d)], dim=-1)
    img2ego = affine_inverse(ego2img.float())  # (N, 4, 4)
    return torch.einsum('nij,dhwj->ndhwi', img2ego, homogeneous)[..., :3]


def splat(lifted: torch.Tensor, cells: torch.Tensor, inside: torch.Tensor, num_cells: int,
          sync_free: bool) -> torch.Tensor:
    """Sum-pool lifted features onto BEV cells.

    Args:
        lifted: ``(..., C)`` features; cells: long ``(...)`` flat BEV cell of each; inside: bool ``(...)``,
            False for samples outside the BEV (their cells are out of bounds).
        num_cells: number of BEV cells (over the batch).
        sync_free: add every sample, those outside with weight 0 at their cell index modulo ``num_cells``
            (fixed shapes, no host synchronisation: what a CUDA graph needs), instead of selecting the inside
            ones first (less work, but boolean indexing waits for the GPU). The two give the same sums. The
            modulo spreads the zeros over the grid: sent to one cell, the 59 % of a frame's 498 k samples that
            fall outside (full-size config, the demo keyframe's cameras) would queue on its atomic adds.

    Returns:
        ``(num_cells, C)`` sums.
    """
    bev = lifted.new_zeros((num_cells, lifted.shape[-1]))
    if sync_free:
        weights = inside.unsqueeze(-1).to(lifted.dtype)
        return bev.index_add(0, cells.remainder(num_cells).flatten(), (lifted * weights).flatten(0, -2))
    return bev.index_add(0, cells[inside], lifted[inside])


@MODELS.register_module()
class LSSViewTransform(BaseModule):
    """Lift (depth softmax x context) and splat (sum-pool) camera features onto the BEV grid.

    Args:
        in_channels: image feature channels.
        out_channels: context (BEV) channels.
        depth_bins: ``[d_min, d_max, step]`` metres; bin centres ``d_min + (k + 0.5) * step``.
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` metres; samples outside are dropped.
        bev_cell_size: ``[dx, dy]`` metres of a BEV cell.
        init_cfg: mmengine weight-init config.
    """

    def __init__(self, in_channels: int, out_channels: int, depth_bins: Sequence[float] = (1.0, 45.0, 1.0),
                 point_cloud_range: Sequence[float] = OCC_RANGE,
                 bev_cell_size: Sequence[float] = (0.8, 0.8), init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        d_min, d_max, step = depth_bins
        self.register_buffer('depths', torch.arange(d_min + step / 2, d_max, step, dtype=torch.float32),
                             persistent=False)
        self.out_channels = out_channels
        self.point_cloud_range = list(point_cloud_range)
        self.bev_cell_size = list(bev_cell_size)
        self.bev_shape = grid_shape(point_cloud_range, bev_cell_size)
        register_grid_buffers(self, point_cloud_range, bev_cell_size)
        self.depth_net = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False), nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True), nn.Conv2d(in_channels, len(self.depths) + out_channels, 1))

    def forward(self, feats: torch.Tensor, ego2img: torch.Tensor, img_hw: Tuple[int, int],
                batch_idx: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Args:
            feats: ``(N, C_in, h, w)`` features of the N valid views of the batch.
            ego2img: ``(N, 4, 4)`` their projection matrices (incl. image augmentation).
            img_hw: image size ``(H, W)`` in pixels.
            batch_idx: long ``(N,)`` sample of each view.
            batch_size: B.

        Returns:
            float ``(B, out_channels, Hb, Wb)`` BEV indexed ``[ix, iy]`` (sum of splatted features).
        """
        num_depths = len(self.depths)
        out = self.depth_net(feats)
        depth_prob = out[:, :num_depths].softmax(dim=1)  # (N, D, h, w)
        context = out[:, num_depths:]  # (N, C, h, w)
        lifted = depth_prob.unsqueeze(-1) * context.permute(0, 2, 3, 1).unsqueeze(1)  # (N, D, h, w, C)
        points = frustum_points(ego2img, feats.shape[2:], img_hw, self.depths)
        lower, upper, cell = self.range_lower, self.range_upper, self.cell_size
        inside = ((points >= lower) & (points < upper)).all(dim=-1)
        ixy = torch.floor((points[..., :2] - lower[:2]) / cell).long()
        Hb, Wb = self.bev_shape
        inside &= (ixy[..., 0] < Hb) & (ixy[..., 1] < Wb)
        flat = (batch_idx.view(-1, 1, 1, 1) * Hb + ixy[..., 0]) * Wb + ixy[..., 1]
        bev = splat(lifted, flat, inside, batch_size * Hb * Wb, sync_free=lifted.is_cuda)
        return bev.view(batch_size, Hb, Wb, -1).permute(0, 3, 1, 2).contiguous()

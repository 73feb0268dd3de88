"""The RayIoU voxel traversal as one Triton kernel: each GPU thread follows its rays to the end.

The torch traversal (:func:`drivepi.evaluation.ray_casting.traverse_first_hit` off the GPU) steps all rays
together, ~30 kernel launches and a host synchronisation per step, ~260 steps per sample: on a GPU its
time is launch overhead. Here every ray keeps its state in registers and loops until it hits an occupied
voxel or leaves the grid, with the torch loop's float64 operations in the same order (same results).
Imported only on a GPU machine (Triton ships with CUDA builds of torch).
"""
from typing import Tuple

import torch
import triton
import triton.language as tl

BLOCK_RAYS = 128


@triton.jit
def _first_hit_kernel(occ_ptr, grid_ptr, voxel_ptr, step_ptr, t_max_ptr, t_delta_ptr,
                      depth_ptr, out_voxel_ptr, hit_ptr, num_rays, max_steps, size_x, size_y, size_z,
                      BLOCK: tl.constexpr):
    rays = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    alive = rays < num_rays
    grid = tl.load(grid_ptr + rays, mask=alive, other=0)
    vx = tl.load(voxel_ptr + 3 * rays, mask=alive, other=0)
    vy = tl.load(voxel_ptr + 3 * rays + 1, mask=alive, other=0)
    vz = tl.load(voxel_ptr + 3 * rays + 2, mask=alive, other=0)
    sx = tl.load(step_ptr + 3 * rays, mask=alive, other=0)
    sy = tl.load(step_ptr + 3 * rays + 1, mask=alive, other=0)
    sz = tl.load(step_ptr + 3 * rays + 2, mask=alive, other=0)
    tx = tl.load(t_max_ptr + 3 * rays, mask=alive, other=0.0)
    ty = tl.load(t_max_ptr + 3 * rays + 1, mask=alive, other=0.0)
    tz = tl.load(t_max_ptr + 3 * rays + 2, mask=alive, other=0.0)
    dx = tl.load(t_delta_ptr + 3 * rays, mask=alive, other=0.0)
    dy = tl.load(t_delta_ptr + 3 * rays + 1, mask=alive, other=0.0)
    dz = tl.load(t_delta_ptr + 3 * rays + 2, mask=alive, other=0.0)
    last_t = tl.full([BLOCK], -1.0, tl.float64)
    lx = tl.zeros([BLOCK], tl.int64)
    ly = tl.zeros([BLOCK], tl.int64)
    lz = tl.zeros([BLOCK], tl.int64)
    was_inside = tl.zeros([BLOCK], tl.int1)
    depth = tl.full([BLOCK], -1.0, tl.float64)
    ox = tl.zeros([BLOCK], tl.int64)
    oy = tl.zeros([BLOCK], tl.int64)
    oz = tl.zeros([BLOCK], tl.int64)
    hit = tl.zeros([BLOCK], tl.int1)
    steps = tl.full([], 0, tl.int32)
    while (steps < max_steps) & (tl.max(alive.to(tl.int32), axis=0) > 0):
        inside = (vx >= 0) & (vx < size_x) & (vy >= 0) & (vy < size_y) & (vz >= 0) & (vz < size_z)
        flat = ((grid * size_x + vx) * size_y + vy) * size_z + vz
        occ_here = inside & (tl.load(occ_ptr + flat, mask=inside & alive, other=0) != 0)
        along_x = (tx < ty) & (tx < tz)
        along_y = (tx >= ty) & (ty < tz)
        along_z = ~along_x & ~along_y
        last_t = tl.where(inside, tl.where(along_x, tx, tl.where(along_y, ty, tz)), last_t)
        lx = tl.where(inside, vx, lx)
        ly = tl.where(inside, vy, ly)
        lz = tl.where(inside, vz, lz)
        finished = alive & (occ_here | (was_inside & ~inside))
        depth = tl.where(finished, last_t, depth)
        ox = tl.where(finished, lx, ox)
        oy = tl.where(finished, ly, oy)
        oz = tl.where(finished, lz, oz)
        hit = tl.where(finished, occ_here, hit)
        alive = alive & ~finished
        was_inside = was_inside | inside
        vx += tl.where(along_x, sx, 0)
        vy += tl.where(along_y, sy, 0)
        vz += tl.where(along_z, sz, 0)
        tx += tl.where(along_x, dx, 0.0)
        ty += tl.where(along_y, dy, 0.0)
        tz += tl.where(along_z, dz, 0.0)
        steps += 1
    # rays still running after max_steps keep what they have reached
    depth = tl.where(alive, last_t, depth)
    ox = tl.where(alive, lx, ox)
    oy = tl.where(alive, ly, oy)
    oz = tl.where(alive, lz, oz)
    valid = rays < num_rays
    tl.store(depth_ptr + rays, depth, mask=valid)
    tl.store(out_voxel_ptr + 3 * rays, ox, mask=valid)
    tl.store(out_voxel_ptr + 3 * rays + 1, oy, mask=valid)
    tl.store(out_voxel_ptr + 3 * rays + 2, oz, mask=valid)
    tl.store(hit_ptr + rays, hit.to(tl.int8), mask=valid)


def traverse_on_gpu(occupied: torch.Tensor, grid_index: torch.Tensor, voxel: torch.Tensor, step: torch.Tensor,
                    t_max: torch.Tensor, t_delta: torch.Tensor,
                    max_steps: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`drivepi.evaluation.ray_casting.traverse_first_hit` on CUDA tensors, start state from
    :func:`~drivepi.evaluation.ray_casting.traversal_start`; returns ``(depth, voxel, hit)`` as it does."""
    num_rays = voxel.shape[0]
    device = occupied.device
    depth = torch.empty(num_rays, dtype=torch.float64, device=device)
    out_voxel = torch.empty((num_rays, 3), dtype=torch.long, device=device)
    hit = torch.empty(num_rays, dtype=torch.int8, device=device)
    size_x, size_y, size_z = occupied.shape[-3:]
    _first_hit_kernel[(triton.cdiv(num_rays, BLOCK_RAYS),)](
        occupied.contiguous().view(torch.uint8), grid_index.contiguous(), voxel.contiguous(), step.contiguous(),
        t_max.contiguous(), t_delta.contiguous(), depth, out_voxel, hit, num_rays, max_steps,
        size_x, size_y, size_z, BLOCK=BLOCK_RAYS)
    return depth, out_voxel, hit.bool()

"""Exact voxel traversal of query rays through a semantic occupancy grid (the RayIoU ray caster).

The ray set and the traversal follow SparseOcc's RayIoU code (``loaders/ray_metrics.py`` and
``loaders/ego_pose_dataset.py`` of MCG-NJU/SparseOcc; the OpenOcc challenge devkit in
OpenDriveLab/OccNet ``ray_metrics.py`` / ``nuscenes_ego_pose_loader.py`` uses the same set):

- **directions** (:func:`lidar_ray_directions`): pitch angles ``-(pi/2 - atan(k + 1))`` for k = 0..9,
  then continued with the last spacing until the pitch reaches 0.21 rad (the nuScenes LiDAR's upper
  field of view): 39 pitches x 360 azimuths at 1 degree = 14,040 unit rays per origin.
- **origins** (:func:`scene_ray_origins`): the LiDAR sensor position of every keyframe of the scene,
  expressed in the current ego frame; those with ``|x| < 39 m`` and ``|y| < 39 m`` are kept and, when
  more than 8 remain, 8 are taken at ``round(linspace(0, n - 1, 8))``.
- **range**: no maximum range; a ray runs until it leaves the grid.
- **traversal** (:func:`traverse_first_hit`): Amanatides-Woo in voxel units (double precision), with
  SparseOcc's tie-break (on equal boundary distances z steps before y before x). A ray stops at the
  first non-free voxel; its **depth is the distance at which the ray leaves that voxel**, as in the
  reference (``d[count] = _d``). A ray that meets no occupied voxel reports the last voxel inside the
  grid (a free voxel, so its class is free) and the distance at which it leaves the grid.

All functions are vectorised over rays with torch and run on CPU or CUDA (the device of the grid); on CUDA
the traversal itself is one Triton kernel (:mod:`drivepi.evaluation.ray_traversal_triton`, same results).
The only deviation from the reference: origin voxels are found with ``floor`` instead of C's
truncation, which differs only for origins outside the grid (the reference then starts in the wrong
voxel).
"""
import importlib.util
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from drivepi.geometry import OCC_RANGE, OCC_VOXEL_SIZE

MAX_ORIGINS = 8
ORIGIN_XY_LIMIT_M = 39.0
_TOP_PITCH_RAD = 0.21
_FAR = torch.finfo(torch.float64).max
_AXES = torch.arange(3)


def lidar_ray_directions() -> torch.Tensor:
    """SparseOcc's query ray directions (ego frame, unit vectors).

    Returns:
        float32 ``(14040, 3)``: pitch-major, azimuth 0..359 degrees inside each pitch.
    """
    pitches = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    while pitches[-1] < _TOP_PITCH_RAD:
        pitches.append(pitches[-1] + (pitches[-1] - pitches[-2]))
    pitch = np.asarray(pitches)[:, None]
    azimuth = np.deg2rad(np.arange(0, 360, 1))[None, :]
    dirs = np.stack(np.broadcast_arrays(np.cos(pitch) * np.cos(azimuth), np.cos(pitch) * np.sin(azimuth),
                                        np.sin(pitch)), axis=-1)
    return torch.from_numpy(dirs.reshape(-1, 3).astype(np.float32))


def scene_ray_origins(ego2globals: Sequence[np.ndarray], lidar2egos: Sequence[np.ndarray],
                      ref_index: int) -> np.ndarray:
    """LiDAR origins of all keyframes of a scene in the ego frame of keyframe ``ref_index``.

    Args:
        ego2globals: per keyframe, ``(4, 4)`` ego-to-global pose, in scene order.
        lidar2egos: per keyframe, ``(4, 4)`` LiDAR-to-ego calibration.
        ref_index: index of the current keyframe in those lists.

    Returns:
        float32 ``(T, 3)`` origins in metres, ``1 <= T <= 8`` (the current frame's LiDAR origin is
        always inside the limit, so at least one remains).
    """
    if len(ego2globals) != len(lidar2egos) or not 0 <= ref_index < len(ego2globals):
        raise ValueError(f'scene_ray_origins: {len(ego2globals)} poses, {len(lidar2egos)} calibrations, '
                         f'reference index {ref_index}')
    global2ref = np.linalg.inv(np.asarray(ego2globals[ref_index], dtype=np.float64))
    origins = []
    for ego2global, lidar2ego in zip(ego2globals, lidar2egos):
        sensor2ref = global2ref @ np.asarray(ego2global, np.float64) @ np.asarray(lidar2ego, np.float64)
        origin = sensor2ref[:3, 3]
        if abs(origin[0]) < ORIGIN_XY_LIMIT_M and abs(origin[1]) < ORIGIN_XY_LIMIT_M:
            origins.append(origin)
    if len(origins) > MAX_ORIGINS:
        pick = np.round(np.linspace(0, len(origins) - 1, MAX_ORIGINS)).astype(np.int64)
        origins = [origins[i] for i in pick]
    return np.stack(origins).astype(np.float32)


def traverse_first_hit(occupied: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                       grid_index: Optional[torch.Tensor] = None,
                       max_steps: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Amanatides-Woo traversal of rays to their first occupied voxel, all rays at once.

    Coordinates are in voxel units: voxel ``(i, j, k)`` spans ``[i, i+1) x [j, j+1) x [k, k+1)``.
    Several grids of the same shape can be traversed in one pass. On a GPU with Triton (CUDA builds of
    torch ship it) one kernel runs every ray's whole traversal (:mod:`.ray_traversal_triton`); elsewhere
    torch operations step all unfinished rays at once, dropping finished ones after every step. Both
    make the same float64 operations in the same order, so they give identical results.

    Args:
        occupied: bool ``(X, Y, Z)`` occupancy, or ``(G, X, Y, Z)`` for G grids.
        origins: float ``(R, 3)`` ray origins in voxel units.
        dirs: float ``(R, 3)`` unit directions.
        grid_index: long ``(R,)`` grid each ray runs through (default: grid 0).
        max_steps: traversal steps before giving up (default ``X + Y + Z + 3``, enough to cross the grid).

    Returns:
        ``depth`` float64 ``(R,)`` distance in voxel units at which the ray leaves the reported voxel
        (-1 for a ray that never enters the grid); ``voxel`` long ``(R, 3)`` the first occupied voxel,
        or the last voxel inside the grid when nothing is hit ((0, 0, 0) for a ray that never enters);
        ``hit`` bool ``(R,)``.
    """
    if occupied.dim() not in (3, 4) or origins.shape != dirs.shape or origins.dim() != 2 or origins.shape[1] != 3:
        raise ValueError(f'traverse_first_hit: occupied must be (X,Y,Z) or (G,X,Y,Z) and origins/dirs (R,3), got '
                         f'{tuple(occupied.shape)}, {tuple(origins.shape)}, {tuple(dirs.shape)}')
    device = occupied.device
    origins = origins.to(device, torch.float64)
    dirs = dirs.to(device, torch.float64)
    num_rays = origins.shape[0]
    grid_index = (torch.zeros(num_rays, dtype=torch.long, device=device) if grid_index is None
                  else grid_index.to(device, torch.long))
    max_steps = sum(occupied.shape[-3:]) + 3 if max_steps is None else max_steps
    start = traversal_start(origins, dirs)
    if device.type == 'cuda' and importlib.util.find_spec('triton') is not None:
        from drivepi.evaluation.ray_traversal_triton import traverse_on_gpu  # Triton ships with CUDA torch
        return traverse_on_gpu(occupied, grid_index, *start, max_steps)
    return _traverse_steps(occupied, grid_index, *start, max_steps)


def traversal_start(origins: torch.Tensor, dirs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Amanatides-Woo start state of float64 rays ``(R, 3)``: ``voxel`` long ``(R, 3)`` holding the origin,
    ``step`` long ``(R, 3)`` (+1 / -1 per axis), ``t_max`` float64 ``(R, 3)`` distance to the first boundary
    of each axis and ``t_delta`` float64 ``(R, 3)`` between boundaries (``_FAR`` on axes the ray does not move along).
    """
    voxel = torch.floor(origins).long()
    step = torch.where(dirs >= 0, 1, -1)
    moving = dirs != 0
    safe_dirs = torch.where(moving, dirs, torch.ones_like(dirs))
    t_max = torch.where(moving, (voxel + (step > 0).long() - origins) / safe_dirs, _FAR)
    t_delta = torch.where(moving, step / safe_dirs, _FAR)
    return voxel, step, t_max, t_delta


def _traverse_steps(occupied: torch.Tensor, grid_index: torch.Tensor, voxel: torch.Tensor, step: torch.Tensor,
                    t_max: torch.Tensor, t_delta: torch.Tensor,
                    max_steps: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The traversal in torch operations, one step of all rays of a working set at a time (any device; about 260
    steps of ~30 small kernels and a host synchronisation each for a RayIoU sample); arguments
    and results as in :func:`traverse_first_hit` and :func:`traversal_start`. A ray's result is written when it
    finishes; finished rays keep stepping, unread, until they are a quarter of the working set, which is then
    compacted (compacting at every step cost more than the steps it saved)."""
    device = occupied.device
    size = torch.tensor(occupied.shape[-3:], device=device)
    axes = _AXES.to(device)
    flat_occ = occupied.reshape(-1)
    num_rays = voxel.shape[0]
    depth = torch.full((num_rays,), -1.0, dtype=torch.float64, device=device)
    out_voxel = torch.zeros((num_rays, 3), dtype=torch.long, device=device)
    hit = torch.zeros(num_rays, dtype=torch.bool, device=device)
    # working set; last_* = exit distance and index of the last voxel inside the grid
    ray_id = torch.arange(num_rays, device=device)
    last_t = torch.full((num_rays,), -1.0, dtype=torch.float64, device=device)
    last_voxel = torch.zeros_like(voxel)
    was_inside = torch.zeros(num_rays, dtype=torch.bool, device=device)
    running = torch.ones(num_rays, dtype=torch.bool, device=device)  # in the working set and not finished
    num_running = num_rays
    for _ in range(max_steps):
        inside = ((voxel >= 0) & (voxel < size)).all(dim=1)
        flat = ((grid_index * size[0] + voxel[:, 0]) * size[1] + voxel[:, 1]) * size[2] + voxel[:, 2]
        occ_here = inside & flat_occ[torch.where(inside, flat, 0)]
        t_x, t_y, t_z = t_max.unbind(dim=1)
        axis = torch.where(t_x < t_y, torch.where(t_x < t_z, 0, 2), torch.where(t_y < t_z, 1, 2))
        last_t = torch.where(inside, t_max.gather(1, axis[:, None])[:, 0], last_t)
        last_voxel = torch.where(inside[:, None], voxel, last_voxel)
        done = (running & (occ_here | (was_inside & ~inside))).nonzero()[:, 0]
        was_inside = was_inside | inside
        chosen = axis[:, None] == axes
        voxel = voxel + torch.where(chosen, step, 0)
        t_max = t_max + torch.where(chosen, t_delta, 0.0)
        if len(done):
            rays = ray_id[done]
            depth[rays], out_voxel[rays], hit[rays] = last_t[done], last_voxel[done], occ_here[done]
            running[done] = False
            num_running -= len(done)
            if num_running == 0:
                break
            if num_running < 0.75 * len(ray_id):
                keep = running.nonzero()[:, 0]
                ray_id, grid_index, voxel, step, t_max, t_delta, last_t, last_voxel, was_inside = (
                    x.index_select(0, keep)
                    for x in (ray_id, grid_index, voxel, step, t_max, t_delta, last_t, last_voxel, was_inside))
                running = torch.ones(len(keep), dtype=torch.bool, device=device)
    else:  # rays still running after max_steps keep what they have reached
        depth[ray_id[running]], out_voxel[ray_id[running]] = last_t[running], last_voxel[running]
    return depth, out_voxel, hit


def scene_rays(origins_m: torch.Tensor, directions: torch.Tensor,
               point_cloud_range: Sequence[float] = OCC_RANGE,
               voxel_size: float = OCC_VOXEL_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Voxel-unit origins and unit directions of every direction from every origin, formed on the CPU with the
    reference's roundings: origins and end points (one metre along the ray) in float32 as
    ``(p - range_min) / voxel_size``, a true division by a tensor, and the direction in float64 as
    ``r / sqrt(rx*rx + ry*ry + rz*rz)``. On the host, so that every device traverses the same numbers: the same
    operations on an H100 gave other bits in the unit directions (a CUDA test, 2026-12-07), and a division by a
    Python scalar there multiplies by its reciprocal, which moves rays that run exactly along voxel faces.

    Args:
        origins_m: float ``(T, 3)`` ray origins, metres, ego frame. directions: float ``(R, 3)`` unit directions.

    Returns:
        float64 ``(T*R, 3)`` origins in voxel units and ``(T*R, 3)`` unit directions, origin-major, on the CPU.
    """
    offset = torch.tensor(point_cloud_range[:3], dtype=torch.float32)
    scale = torch.full((3,), voxel_size, dtype=torch.float32)
    origins_m = origins_m.detach().cpu().float()
    directions = directions.detach().cpu().float()
    origin_vox = (origins_m - offset) / scale                                   # (T, 3)
    end_vox = ((directions[None] + origins_m[:, None]) - offset) / scale       # (T, R, 3)
    ray = (end_vox - origin_vox[:, None]).double()
    ray_x, ray_y, ray_z = ray.unbind(dim=-1)
    ray = (ray / torch.sqrt(ray_x * ray_x + ray_y * ray_y + ray_z * ray_z)[..., None]).reshape(-1, 3)
    return origin_vox.double().repeat_interleave(directions.shape[0], dim=0), ray


def cast_sample_rays(semantics: torch.Tensor, origins_m: Sequence[torch.Tensor], directions: torch.Tensor,
                     free_label: int, point_cloud_range: Sequence[float] = OCC_RANGE,
                     voxel_size: float = OCC_VOXEL_SIZE) -> Tuple[torch.Tensor, ...]:
    """Cast every direction from every origin of each sample through that sample's grids, all samples in one
    traversal (a batch's GT and predicted grids at once); the rays formed on the host by :func:`scene_rays`
    (one copy crosses to the grids' device).

    Args:
        semantics: long ``(S, G, X, Y, Z)`` class indices: G grids per sample (e.g. GT and prediction), all cast
            with the sample's rays; ``free_label`` = empty.
        origins_m: S float ``(T_s, 3)`` ray origins, metres, in each sample's ego frame.
        directions: float ``(R, 3)`` unit directions.
        free_label: index of the free class.
        point_cloud_range: grid range, metres.
        voxel_size: cubic voxel edge, metres.

    Returns:
        ``label`` long ``(G, N)`` class of the reported voxel (free when nothing is hit), ``depth`` float32
        ``(G, N)`` metres, ``voxel`` long ``(G, N, 3)`` and ``ray_sample`` long ``(N,)`` the sample of each ray;
        ``N = R * sum(T_s)`` rays, sample-major, origin-major inside a sample.
    """
    if semantics.dim() != 5 or len(origins_m) != semantics.shape[0]:
        raise ValueError(f'cast_sample_rays: semantics must be (S, G, X, Y, Z) with one origin set per sample, got '
                         f'{tuple(semantics.shape)} and {len(origins_m)} origin sets')
    num_samples, num_grids = semantics.shape[:2]
    device = semantics.device
    rays = [scene_rays(origins, directions, point_cloud_range, voxel_size) for origins in origins_m]
    origin_vox, ray = (torch.cat(parts).to(device) for parts in zip(*rays))
    ray_sample = torch.repeat_interleave(torch.arange(num_samples), torch.tensor([len(r[0]) for r in rays]))
    ray_sample = ray_sample.to(device)
    grids = semantics.reshape(num_samples * num_grids, *semantics.shape[2:])
    grid_index = (ray_sample[None] * num_grids + torch.arange(num_grids, device=device)[:, None]).reshape(-1)
    depth, voxel, hit = traverse_first_hit(grids != free_label, origin_vox.repeat(num_grids, 1),
                                           ray.repeat(num_grids, 1), grid_index)
    label = grids[grid_index, voxel[:, 0], voxel[:, 1], voxel[:, 2]].long()
    label = torch.where(hit, label, torch.full_like(label, free_label))
    num_rays = len(ray)
    return (label.reshape(num_grids, num_rays), (depth * voxel_size).float().reshape(num_grids, num_rays),
            voxel.reshape(num_grids, num_rays, 3), ray_sample)


def cast_scene_rays(semantics: torch.Tensor, origins_m: torch.Tensor, directions: torch.Tensor,
                    free_label: int, point_cloud_range: Sequence[float] = OCC_RANGE,
                    voxel_size: float = OCC_VOXEL_SIZE) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cast every direction from every origin through a semantic grid (SparseOcc's per-sample render): the
    one-sample case of :func:`cast_sample_rays`.

    Args:
        semantics: long ``(X, Y, Z)`` class indices, or ``(G, X, Y, Z)`` for G grids cast with the
            same rays in one pass (e.g. GT and prediction); ``free_label`` = empty.
        origins_m: float ``(T, 3)`` ray origins, metres, ego frame.
        directions, free_label, point_cloud_range, voxel_size: as :func:`cast_sample_rays`.

    Returns:
        ``label`` long ``([G,] T*R)`` class of the reported voxel (free when nothing is hit),
        ``depth`` float32 ``([G,] T*R)`` metres, ``voxel`` long ``([G,] T*R, 3)``; origin-major order.
    """
    grids = semantics if semantics.dim() == 4 else semantics[None]
    outputs = cast_sample_rays(grids[None], [origins_m], directions, free_label, point_cloud_range, voxel_size)[:3]
    return outputs if semantics.dim() == 4 else tuple(x[0] for x in outputs)

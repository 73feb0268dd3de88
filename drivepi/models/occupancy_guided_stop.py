"""Occupancy-guided stop: the planned trajectory swerves around, or brakes before, the first predicted collision.

The planning head regresses waypoints from the LLM's planning queries and has no hard notion of free
space, so in closed loop it can drive into a stopped lead car that the occupancy head sees perfectly
well. Like UniAD's occupancy-guided collision optimisation (Hu et al., CVPR 2023), the model's own
predictions are used at inference time to make the plan safe, here in its simplest form, braking along
the planned path:

1. obstacle columns: BEV cells with a voxel of an obstacle class (not ground, not free) in the height band
   ``z_range`` (ego frame, m), each moved by the mean predicted flow of those voxels (m/s) x time;
2. the path ``origin -> waypoints`` is sampled every ``1 / samples_per_step`` of a waypoint interval; at each
   sample the ego footprint (``EGO_LENGTH`` x ``EGO_WIDTH`` plus margins, centred ``rear_axle_to_center``
   ahead of the rear axle, heading along the path) is tested against the obstacles at that time; cells in
   the footprint at t = 0 are ignored (the ego's own cell or a mislabelled neighbour would block everything);
3. if at least ``min_cells`` obstacle cells fall inside the footprint at some sample, the ego must stop
   ``stop_distance`` m of path before it, at ``s_stop``. The plan's progress becomes a constant-deceleration
   stop from its first waypoint's speed ``v0`` (``a = v0^2 / (2 s_stop)``), where it is ahead of the plan's own
   progress: waypoint ``k`` moves back along the path to ``min(s_k, v0 t_k - a t_k^2 / 2)`` (the path's geometry
   is kept). Braking starts at once: cutting only the waypoints beyond ``s_stop`` leaves the first ones at full
   speed, and a tracking controller then brakes too late (on the mini benchmark's stopped lead cars it did).
4. before braking, the path shifted sideways by each of ``lateral_offsets`` in turn (m, left positive, eased in
   over ``offset_ramp`` m of path with a half-cosine so the steering stays smooth) is tested the same way; the
   first shifted path that is free of obstacles and whose footprint centres never stand on a column that the
   occupancy labels as non-driveable ground (sidewalk, terrain, other flat) replaces the plan, with the plan's
   own progress. This goes around a parked car where braking would wait behind it for ever.

   With ``swerve_static_only`` a shift is tried only when every obstacle cell in the footprint at the first
   collision stands still (predicted flow below ``static_speed``) and is no pedestrian, bicycle or motorcycle:
   swerving around a walking pedestrian steers into its way.
5. with a multi-mode planning head (``pred_traj_modes`` (M, T, 2), ``pred_traj_scores`` (M,) probabilities),
   :meth:`OccupancyGuidedStop.select` chooses among candidates: each mode as it is when its path is free, else
   its first free on-road shift (if any) and its braked version. Each candidate costs
   ``score_weight * -log p(mode) + collision_weight * [the mode's own path collides] + offroad_weight * (share of
   path samples over non-driveable ground) + offset_weight * |shift| - progress_weight * (path length, m)``;
   ``pred_traj`` is the cheapest and ``pred_traj_candidates`` / ``pred_traj_costs`` / ``pred_traj_candidate_modes``
   keep them all, so the closed loop (:class:`drivepi.closed_loop.model_planner.ModelPlanner`) can keep the
   candidate closest to its previous plan unless another is cheaper by more than ``hysteresis_margin``
   (:func:`hysteresis_choice`): one frame's noise does not flip the choice.

Nothing is learned; it runs after the heads in ``DrivePI.predict`` (:meth:`OccupancyGuidedStop.refine` of every
data sample) when the model config has a ``plan_refiner``.
"""
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from mmengine.model import BaseModule

from drivepi.geometry import (
    EGO_LENGTH,
    EGO_REAR_AXLE_TO_CENTER,
    EGO_WIDTH,
    FREE_INDEX,
    GROUND_CLASSES,
    OCC_RANGE,
    OCC_VOXEL_SIZE,
    OPENOCC_CLASSES,
)
from drivepi.registry import MODELS

OBSTACLE_CLASSES = tuple(i for i, name in enumerate(OPENOCC_CLASSES)
                         if name not in GROUND_CLASSES and i != FREE_INDEX)
OFFROAD_CLASSES = tuple(OPENOCC_CLASSES.index(name) for name in GROUND_CLASSES if name != 'driveable_surface')
DRIVEABLE_INDEX = OPENOCC_CLASSES.index('driveable_surface')
VULNERABLE_CLASSES = tuple(OPENOCC_CLASSES.index(name) for name in ('pedestrian', 'bicycle', 'motorcycle'))
MIN_PROBABILITY = 1e-6  # floor of a mode probability in the score cost (-log p <= 13.8)


class Obstacles(NamedTuple):
    """Obstacle columns of one sample: centres (N, 2) m at t = 0, velocities (N, 2) m/s, and ``dynamic`` (N,)
    bool: moving faster than ``static_speed`` or holding a pedestrian, bicycle or motorcycle voxel."""
    centres: torch.Tensor
    velocities: torch.Tensor
    dynamic: torch.Tensor


def path_headings(path: torch.Tensor):
    """cos and sin (..., S, 1) of the heading at each sample of (..., S, 2) paths: the direction of the last step
    that moved (a standing sample keeps the last heading; sample 0 takes sample 1's), without a host sync."""
    step = path[..., 1:, :] - path[..., :-1, :]
    moving = step.norm(dim=-1) > 1e-3
    angles = torch.cat([step.new_zeros(step.shape[:-2] + (1,)), torch.atan2(step[..., 1], step[..., 0])], -1)
    index = torch.arange(1, path.shape[-2], device=path.device).expand_as(moving)
    last_move = torch.where(moving, index, 0).cummax(-1).values  # [0] of angles: before any move
    heading = angles.gather(-1, torch.cat([last_move[..., :1], last_move], -1))
    return heading.cos()[..., None], heading.sin()[..., None]


def footprint_centres(paths: torch.Tensor):
    """Centres (..., S, 2) of the ego footprint at the samples of (..., S, 2) rear-axle paths, m, and the heading's
    cos and sin (..., S, 1) (:func:`path_headings`)."""
    cos, sin = path_headings(paths)
    return paths + EGO_REAR_AXLE_TO_CENTER * torch.cat([cos, sin], dim=-1), cos, sin


def arc_lengths(path: torch.Tensor) -> torch.Tensor:
    """(N,) cumulative arc length (m) of an (N, 2) polyline, 0 at its first point."""
    steps = (path[1:] - path[:-1]).norm(dim=-1)
    return torch.cat([steps.new_zeros(1), steps.cumsum(0)])


def point_at_arc_length(path: torch.Tensor, s_path: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Points (M, 2) at arc lengths ``s`` (M,) along the (N, 2) polyline whose arc lengths are ``s_path``."""
    s = s.clamp(0, float(s_path[-1]))
    seg = torch.searchsorted(s_path, s, right=True).clamp(1, len(path) - 1)
    s0, s1 = s_path[seg - 1], s_path[seg]
    frac = ((s - s0) / (s1 - s0).clamp(min=1e-9))[:, None]
    return path[seg - 1] + frac * (path[seg] - path[seg - 1])


@MODELS.register_module()
class OccupancyGuidedStop(BaseModule):
    """Limits the progress of a planned trajectory so the ego stops before predicted obstacles, and chooses
    among the modes of a multi-mode planning head (see the module docstring).

    Args:
        dt: seconds between waypoints (the first waypoint is at ``dt``).
        occ_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` of the occupancy grid, m, ego frame.
        voxel_size: occupancy voxel edge, m.
        obstacle_classes: class indices that block the ego (default: every class but ground and free).
        z_range: (low, high) m, ego frame (z = 0 on the ground under the rear axle): only voxels whose centre
            lies in this band count. The lower bound keeps the ground layer out, and the voxels below it, which
            no sensor sees and which a trained model labels with arbitrary classes (on the mini set 'bus' and
            'construction_vehicle' under the road stopped every plan).
        lateral_margin, longitudinal_margin: added to each side of the footprint, m.
        stop_distance: the ego's rear axle stops this far (m of path) before the first colliding sample.
        samples_per_step: path samples per waypoint interval (obstacles thinner than the gap between samples
            could be missed otherwise).
        min_cells: obstacle cells inside the footprint that make a collision.
        use_flow: move obstacle cells with the predicted flow.
        lateral_offsets: sideways shifts (m, left positive) tried in this order before braking; () only brakes.
        offset_ramp: path length (m) over which a shift eases in.
        swerve_static_only: shift only around obstacles that stand still and are not vulnerable road users.
        static_speed: m/s of predicted flow below which an obstacle column stands still.
        select_modes: choose among the modes of a multi-mode head by cost (False: refine its best-scoring mode).
        score_weight, collision_weight, offroad_weight, offset_weight, progress_weight: the cost terms of a
            candidate (module docstring); ``progress_weight`` is per metre of path, ``offset_weight`` per metre of
            shift.
        hysteresis_margin: closed loop: the candidate closest to the previous plan is kept unless another costs
            less by more than this (0: always the cheapest).
    """

    def __init__(self, dt: float = 0.5, occ_range: Sequence[float] = OCC_RANGE, voxel_size: float = OCC_VOXEL_SIZE,
                 obstacle_classes: Sequence[int] = OBSTACLE_CLASSES, z_range: Sequence[float] = (0.2, 2.0),
                 lateral_margin: float = 0.0, longitudinal_margin: float = 0.5, stop_distance: float = 1.0,
                 samples_per_step: int = 5, min_cells: int = 2, use_flow: bool = True,
                 lateral_offsets: Sequence[float] = (), offset_ramp: float = 10.0, swerve_static_only: bool = True,
                 static_speed: float = 0.5, select_modes: bool = True, score_weight: float = 1.0,
                 collision_weight: float = 5.0, offroad_weight: float = 5.0, offset_weight: float = 0.5,
                 progress_weight: float = 0.1, hysteresis_margin: float = 0.5, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        for name, value in dict(dt=dt, voxel_size=voxel_size, samples_per_step=samples_per_step,
                                min_cells=min_cells, offset_ramp=offset_ramp).items():
            if not value > 0:
                raise ValueError(f'OccupancyGuidedStop: {name} must be positive, got {value}')
        weights = dict(static_speed=static_speed, score_weight=score_weight, collision_weight=collision_weight,
                       offroad_weight=offroad_weight, offset_weight=offset_weight, progress_weight=progress_weight,
                       hysteresis_margin=hysteresis_margin)
        for name, value in weights.items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f'OccupancyGuidedStop: {name} must be finite and non-negative, got {value}')
        self.dt, self.voxel_size = float(dt), float(voxel_size)
        self.occ_range = [float(v) for v in occ_range]
        self.obstacle_classes = list(obstacle_classes)
        self.z_range = tuple(float(v) for v in z_range)
        self.half_length = EGO_LENGTH / 2 + longitudinal_margin
        self.half_width = EGO_WIDTH / 2 + lateral_margin
        self.stop_distance = float(stop_distance)
        self.samples_per_step, self.min_cells, self.use_flow = int(samples_per_step), int(min_cells), use_flow
        self.lateral_offsets = [float(v) for v in lateral_offsets]
        self.offset_ramp = float(offset_ramp)
        self.swerve_static_only, self.select_modes = swerve_static_only, select_modes
        for name, value in weights.items():
            setattr(self, name, float(value))

    # ------------------------------------------------------------------ obstacles and paths
    def obstacles(self, occ: torch.Tensor, flow: Optional[torch.Tensor]) -> Obstacles:
        """:class:`Obstacles` of one sample: occ (X, Y, Z) class labels, flow (X, Y, Z, 2) m/s or None.

        Only the layers of the height band are read, and the flow only in the obstacle columns (a few thousand
        of the 40,000): 26 ms a frame on one CPU core when the whole grid was multiplied, the heaviest step of
        an evaluated frame on a GPU machine (2026-12-07)."""
        x_min, y_min, z_min = self.occ_range[:3]
        z_centres = z_min + (torch.arange(occ.shape[2], device=occ.device) + 0.5) * self.voxel_size
        band = ((z_centres >= self.z_range[0]) & (z_centres <= self.z_range[1])).nonzero()[:, 0]  # (B,)
        occ_band = occ.index_select(2, band)  # (X, Y, B)
        obstacle = torch.isin(occ_band, torch.tensor(self.obstacle_classes, device=occ.device))
        count = obstacle.sum(-1)
        ix, iy = count.nonzero(as_tuple=True)
        centres = torch.stack([x_min + (ix + 0.5) * self.voxel_size, y_min + (iy + 0.5) * self.voxel_size], -1)
        vulnerable = torch.isin(occ_band[ix, iy], torch.tensor(VULNERABLE_CLASSES, device=occ.device)).any(-1)
        if flow is None or not self.use_flow:
            velocities = torch.zeros_like(centres, dtype=torch.float32)
        else:
            column_flow = flow[ix, iy].index_select(1, band).float()  # (N, B, 2)
            velocities = (column_flow * obstacle[ix, iy][..., None]).sum(1) / count[ix, iy, None].float()
        return Obstacles(centres.float(), velocities, vulnerable | (velocities.norm(dim=-1) > self.static_speed))

    def obstacle_cells(self, occ: torch.Tensor, flow: Optional[torch.Tensor]):
        """Centres (N, 2) m and velocities (N, 2) m/s (zeros without flow) of the obstacle columns of one sample
        (occ (X, Y, Z) class labels, flow (X, Y, Z, 2) m/s or None)."""
        return self.obstacles(occ, flow)[:2]

    def sample_paths(self, trajs: torch.Tensor):
        """(..., S, 2) paths ``origin -> waypoints`` of (..., T, 2) waypoints, sampled ``samples_per_step`` times per
        interval (S = T * samples_per_step + 1), and their (S,) times, s."""
        trajs = trajs.float()
        knots = torch.cat([trajs.new_zeros(trajs.shape[:-2] + (1, 2)), trajs], -2)  # the ego now, then the waypoints
        frac = torch.arange(self.samples_per_step, device=trajs.device) / self.samples_per_step
        steps = knots[..., :-1, None, :] + frac[:, None] * (knots[..., 1:, None, :] - knots[..., :-1, None, :])
        paths = torch.cat([steps.flatten(-3, -2), knots[..., -1:, :]], -2)
        step = self.dt / self.samples_per_step
        times = torch.arange(paths.shape[-2], device=trajs.device, dtype=torch.float32) * step
        return paths, times

    def footprint_cells(self, paths: torch.Tensor, times: torch.Tensor, obstacles: Obstacles) -> torch.Tensor:
        """(P, S, N) bool: obstacle cell n (moved by its velocity) inside the ego footprint at sample s of path p
        ((P, S, 2) rear-axle positions); cells in the footprint at t = 0 never count (the ego's own cell or a
        mislabelled neighbour would block everything)."""
        centre, cos, sin = footprint_centres(paths)
        moved = obstacles.centres[None] + obstacles.velocities[None] * times[:, None, None]  # (S, N, 2)
        px, py = moved[None, ..., 0] - centre[..., 0:1], moved[None, ..., 1] - centre[..., 1:2]  # (P, S, N)
        inside = ((cos * px + sin * py).abs() <= self.half_length) & ((-sin * px + cos * py).abs() <= self.half_width)
        return inside & ~inside[:, :1]

    def within_reach(self, paths: torch.Tensor, times: torch.Tensor, obstacles: Obstacles) -> Obstacles:
        """The obstacle cells that can enter the footprint of a (P, S, 2) path at the (S,) ``times``: those whose
        box swept from t = 0 to the last time overlaps the box of every footprint centre grown by
        ``half_length + half_width`` (a point inside the footprint lies at most that far from its centre along
        each axis). :meth:`footprint_cells` gives the others no cell, so dropping them changes no hit: most of a
        scene's thousands of columns lie far off the paths (26 ms of host time a frame on a GPU machine with
        all of them, 2026-12-07)."""
        centres = footprint_centres(paths)[0].reshape(-1, 2)
        reach = self.half_length + self.half_width + 0.01  # 1 cm against rounding
        low, high = centres.amin(0) - reach, centres.amax(0) + reach
        end = obstacles.centres + obstacles.velocities * times[-1]
        near = (torch.minimum(obstacles.centres, end) <= high) & (torch.maximum(obstacles.centres, end) >= low)
        keep = near.all(-1).nonzero()[:, 0]
        return Obstacles(*(field.index_select(0, keep) for field in obstacles))

    def first_hits(self, paths: torch.Tensor, times: torch.Tensor, obstacles: Obstacles) -> torch.Tensor:
        """(P,) long: per (P, S, 2) path the first sample whose footprint holds ``min_cells`` obstacle cells, S
        where none does (one host synchronisation on a GPU: the count of cells within reach)."""
        num, samples = paths.shape[:2]
        obstacles = self.within_reach(paths, times, obstacles)
        cells = len(obstacles.centres)
        if not cells:
            return torch.full((num,), samples, dtype=torch.long, device=paths.device)
        chunk = max(1, 4_000_000 // (samples * cells))  # bounds the (P, S, N) masks' memory
        hits = []
        for start in range(0, num, chunk):
            hit = self.footprint_cells(paths[start:start + chunk], times, obstacles).sum(-1) >= self.min_cells
            hits.append(torch.where(hit.any(1), hit.float().argmax(1), samples))
        return torch.cat(hits)

    def first_collision(self, path: torch.Tensor, times: torch.Tensor, centres: torch.Tensor,
                        velocities: torch.Tensor) -> Optional[int]:
        """Index of the first path sample whose footprint holds ``min_cells`` obstacle cells, or None.

        Args:
            path: (S, 2) rear-axle positions, m; ``path[0]`` is the ego now. times: (S,) s.
            centres, velocities: (N, 2) obstacle columns at t = 0 and their velocities.
        """
        obstacles = Obstacles(centres, velocities, torch.zeros(len(centres), dtype=torch.bool, device=centres.device))
        hit = int(self.first_hits(path[None], times, obstacles)[0])
        return hit if hit < len(path) else None

    def offroad_fraction(self, paths: torch.Tensor, occ: torch.Tensor) -> torch.Tensor:
        """(P,): share of the samples of (P, S, 2) rear-axle paths whose footprint centre lies over a column of
        ``occ`` (X, Y, Z) labelled non-driveable ground (sidewalk, terrain, other flat) without driveable surface;
        columns the occupancy leaves unlabelled count as road."""
        centre = footprint_centres(paths)[0]
        x_min, y_min = self.occ_range[:2]
        ix = ((centre[..., 0] - x_min) / self.voxel_size).long().clamp(0, occ.shape[0] - 1)
        iy = ((centre[..., 1] - y_min) / self.voxel_size).long().clamp(0, occ.shape[1] - 1)
        columns = occ[ix, iy]  # (P, S, Z)
        offroad = torch.isin(columns, torch.tensor(OFFROAD_CLASSES, device=occ.device)).any(-1)
        return (offroad & ~(columns == DRIVEABLE_INDEX).any(-1)).float().mean(-1)

    def stays_on_road(self, path: torch.Tensor, occ: torch.Tensor) -> bool:
        """Whether no footprint centre of the (S, 2) rear-axle ``path`` lies over non-driveable ground
        (:meth:`offroad_fraction`)."""
        return not bool(self.offroad_fraction(path[None], occ)[0] > 0)

    # ------------------------------------------------------------------ one trajectory
    def forward(self, traj: torch.Tensor, occ: torch.Tensor, flow: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The (T, 2) waypoints (m, ego frame, rear axle): unchanged without a predicted collision, else shifted
        sideways onto the first free offset path, else with their progress limited."""
        path, times = self.sample_paths(traj)
        obstacles = self.obstacles(occ, flow)
        hit = int(self.first_hits(path[None], times, obstacles)[0])
        if hit == len(path):
            return traj
        s_path = arc_lengths(path)
        shifted = self.swerve(path, s_path, times, hit, obstacles, occ)
        if shifted is not None:
            return shifted[0].to(traj.dtype)
        return self.brake(path, s_path, hit).to(traj.dtype)

    def swerve(self, path: torch.Tensor, s_path: torch.Tensor, times: torch.Tensor, hit: int, obstacles: Obstacles,
               occ: torch.Tensor):
        """``(waypoints (T, 2), offset)`` of the first of ``lateral_offsets`` whose shifted (S, 2) ``path`` is free
        and on the road, or None (also when the obstacles at the first collision ``hit`` are dynamic and
        ``swerve_static_only`` is set)."""
        if not self.lateral_offsets:
            return None
        if self.swerve_static_only:
            near = self.within_reach(path[None], times, obstacles)  # of this path only: the shifted ones get all
            blocking = self.footprint_cells(path[None], times, near)[0, hit]
            if bool((blocking & near.dynamic).any()):
                return None
        shifted = torch.stack([self.shifted_path(path, s_path, offset) for offset in self.lateral_offsets])
        free = (self.first_hits(shifted, times, obstacles) == len(path)) & (self.offroad_fraction(shifted, occ) == 0)
        first = int(free.float().argmax()) if bool(free.any()) else None
        if first is None:
            return None
        return shifted[first, self.samples_per_step::self.samples_per_step], self.lateral_offsets[first]

    def brake(self, path: torch.Tensor, s_path: torch.Tensor, hit: int) -> torch.Tensor:
        """(T, 2) waypoints along the (S, 2) ``path`` (arc lengths ``s_path``) braking at once, at constant
        deceleration, to a stop ``stop_distance`` before sample ``hit``."""
        s_stop = (s_path[hit] - self.stop_distance).clamp(min=0.0)
        s_knots = s_path[::self.samples_per_step][1:]
        s_braking = self.braking_progress(s_knots[0] / self.dt, s_stop, len(s_knots))
        return point_at_arc_length(path, s_path, torch.minimum(s_knots, s_braking))

    def shifted_path(self, path: torch.Tensor, s_path: torch.Tensor, offset: float) -> torch.Tensor:
        """(S, 2) ``path`` moved ``offset`` m to its left (right if negative), eased in with a half-cosine over the
        first ``offset_ramp`` m of arc length ``s_path`` (S,)."""
        cos, sin = path_headings(path)
        ease = (1 - torch.cos(torch.pi * (s_path / self.offset_ramp).clamp(max=1.0))) / 2
        return path + offset * ease[:, None] * torch.cat([-sin, cos], dim=1)

    def braking_progress(self, v0: torch.Tensor, s_stop: torch.Tensor, num: int) -> torch.Tensor:
        """(num,) distance (m) covered at ``t_k = dt (k + 1)`` by a constant-deceleration stop from speed ``v0``
        (m/s) that ends exactly ``s_stop`` m ahead."""
        if s_stop <= 0 or v0 <= 0:
            return s_stop.expand(num)
        decel = v0 ** 2 / (2 * s_stop)
        t = self.dt * torch.arange(1, num + 1, device=s_stop.device, dtype=torch.float32)
        return torch.where(t < v0 / decel, v0 * t - decel * t ** 2 / 2, s_stop)

    # ------------------------------------------------------------------ several modes
    def select(self, modes: torch.Tensor, probs: torch.Tensor, occ: torch.Tensor,
               flow: Optional[torch.Tensor] = None) -> dict:
        """Candidates and costs of the (M, T, 2) modes with probabilities (M,) (module docstring, step 5).

        Returns:
            dict of ``candidates`` (C, T, 2), ``costs`` (C,), ``modes`` (C,) long (the mode each comes from),
            ``choice`` (int, the cheapest).
        """
        modes32 = modes.float()
        paths, times = self.sample_paths(modes32)
        obstacles = self.obstacles(occ, flow)
        hits = self.first_hits(paths, times, obstacles).tolist()
        found = []  # (waypoints, mode, whether the mode's own path collides, shift)
        for m, hit in enumerate(hits):
            if hit == paths.shape[1]:
                found.append((modes32[m], m, 0.0, 0.0))
                continue
            s_path = arc_lengths(paths[m])
            shifted = self.swerve(paths[m], s_path, times, hit, obstacles, occ)
            if shifted is not None:
                found.append((shifted[0], m, 1.0, shifted[1]))
            found.append((self.brake(paths[m], s_path, hit), m, 1.0, 0.0))
        candidates = torch.stack([c[0] for c in found])
        origin, collided, offsets = (torch.tensor(values, device=modes.device) for values in list(zip(*found))[1:])
        knots = torch.cat([candidates.new_zeros(len(candidates), 1, 2), candidates], 1)
        progress = (knots[:, 1:] - knots[:, :-1]).norm(dim=-1).sum(1)
        score_cost = -probs.float().clamp(min=MIN_PROBABILITY).log()[origin]
        costs = (self.score_weight * score_cost
                 + self.collision_weight * collided
                 + self.offroad_weight * self.offroad_fraction(self.sample_paths(candidates)[0], occ)
                 + self.offset_weight * offsets.abs()
                 - self.progress_weight * progress)
        return dict(candidates=candidates.to(modes.dtype), costs=costs, modes=origin, choice=int(costs.argmin()))

    def refine(self, sample) -> None:
        """Rewrite a data sample's ``pred_traj`` from its predictions (``pred_occ``, ``pred_flow``): with
        ``pred_traj_modes`` / ``pred_traj_scores`` and ``select_modes``, the cheapest candidate of :meth:`select`
        (kept as ``pred_traj_candidates``, ``pred_traj_costs``, ``pred_traj_candidate_modes``), else
        :meth:`forward` of ``pred_traj``."""
        flow = sample.get('pred_flow')
        if not self.select_modes or sample.get('pred_traj_modes') is None:
            sample.pred_traj = self(sample.pred_traj, sample.pred_occ, flow)
            return
        selection = self.select(sample.pred_traj_modes, sample.pred_traj_scores, sample.pred_occ, flow)
        sample.pred_traj = selection['candidates'][selection['choice']]
        sample.pred_traj_candidates, sample.pred_traj_costs = selection['candidates'], selection['costs']
        sample.pred_traj_candidate_modes = selection['modes']


def hysteresis_choice(candidates, costs, previous, margin: float) -> int:
    """Index of the candidate to drive: the one closest to the ``previous`` plan unless another costs less by
    more than ``margin``.

    Args:
        candidates: (C, T, 2) waypoints (ego frame now). costs: (C,).
        previous: (T, 2) the previous plan at the candidates' waypoint times, in the same frame (NaN rows where
            it does not reach), or None (no previous plan: the cheapest).
        margin: cost margin; 0 gives the cheapest.
    """
    candidates, costs = np.asarray(candidates, np.float64), np.asarray(costs, np.float64)
    cheapest = int(np.argmin(costs))
    if previous is None or margin <= 0:
        return cheapest
    previous = np.asarray(previous, np.float64)
    known = np.isfinite(previous).all(1)
    if not known.any():
        return cheapest
    distance = np.linalg.norm(candidates[:, known] - previous[known], axis=-1).mean(1)
    closest = int(np.argmin(distance))
    return closest if costs[closest] <= costs[cheapest] + margin else cheapest


__all__ = ['OccupancyGuidedStop', 'OBSTACLE_CLASSES', 'hysteresis_choice']

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

Nothing is learned; it runs after the heads in ``DrivePI.predict`` when the model config has a
``plan_refiner``.
"""
from typing import Optional, Sequence

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


def path_headings(path: torch.Tensor):
    """cos and sin (S, 1) of the heading at each sample of an (S, 2) path: the direction of the last step that
    moved (a standing sample keeps the last heading; sample 0 takes sample 1's), without a per-sample host sync."""
    step = path[1:] - path[:-1]
    moving = step.norm(dim=-1) > 1e-3
    angles = torch.cat([step.new_zeros(1), torch.atan2(step[:, 1], step[:, 0])])  # [0]: before any move
    last_move = torch.where(moving, torch.arange(1, len(path), device=path.device), 0).cummax(0).values
    heading = angles[torch.cat([last_move[:1], last_move])]
    return heading.cos()[:, None], heading.sin()[:, None]


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
    """Limits the progress of a planned trajectory so the ego stops before predicted obstacles.

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
    """

    def __init__(self, dt: float = 0.5, occ_range: Sequence[float] = OCC_RANGE, voxel_size: float = OCC_VOXEL_SIZE,
                 obstacle_classes: Sequence[int] = OBSTACLE_CLASSES, z_range: Sequence[float] = (0.2, 2.0),
                 lateral_margin: float = 0.0, longitudinal_margin: float = 0.5, stop_distance: float = 1.0,
                 samples_per_step: int = 5, min_cells: int = 2, use_flow: bool = True,
                 lateral_offsets: Sequence[float] = (), offset_ramp: float = 10.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        for name, value in dict(dt=dt, voxel_size=voxel_size, samples_per_step=samples_per_step,
                                min_cells=min_cells, offset_ramp=offset_ramp).items():
            if not value > 0:
                raise ValueError(f'OccupancyGuidedStop: {name} must be positive, got {value}')
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

    def obstacle_cells(self, occ: torch.Tensor, flow: Optional[torch.Tensor]):
        """Obstacle columns of one sample.

        Args:
            occ: (X, Y, Z) class labels. flow: (X, Y, Z, 2) m/s or None.

        Returns:
            centres (N, 2) m and velocities (N, 2) m/s (zeros without flow) of the obstacle columns.
        """
        x_min, y_min, z_min = self.occ_range[:3]
        z_centres = z_min + (torch.arange(occ.shape[2], device=occ.device) + 0.5) * self.voxel_size
        band = (z_centres >= self.z_range[0]) & (z_centres <= self.z_range[1])
        obstacle = torch.isin(occ, torch.tensor(self.obstacle_classes, device=occ.device)) & band
        count = obstacle.sum(-1)
        ix, iy = count.nonzero(as_tuple=True)
        centres = torch.stack([x_min + (ix + 0.5) * self.voxel_size, y_min + (iy + 0.5) * self.voxel_size], -1)
        if flow is None or not self.use_flow:
            return centres.float(), torch.zeros_like(centres, dtype=torch.float32)
        summed = (flow.float() * obstacle[..., None]).sum(2)[ix, iy]
        return centres.float(), summed / count[ix, iy, None].float()

    def first_collision(self, path: torch.Tensor, times: torch.Tensor, centres: torch.Tensor,
                        velocities: torch.Tensor) -> Optional[int]:
        """Index of the first path sample whose footprint holds ``min_cells`` obstacle cells, or None.

        Args:
            path: (S, 2) rear-axle positions, m; ``path[0]`` is the ego now. times: (S,) s.
            centres, velocities: (N, 2) obstacle columns at t = 0 and their velocities.
        """
        cos, sin = path_headings(path)
        centre_x = path[:, 0:1] + EGO_REAR_AXLE_TO_CENTER * cos
        centre_y = path[:, 1:2] + EGO_REAR_AXLE_TO_CENTER * sin
        px = centres[None, :, 0] + velocities[None, :, 0] * times[:, None] - centre_x  # (S, N)
        py = centres[None, :, 1] + velocities[None, :, 1] * times[:, None] - centre_y
        inside = ((cos * px + sin * py).abs() <= self.half_length) & ((-sin * px + cos * py).abs() <= self.half_width)
        inside = inside & ~inside[:1]  # cells in the footprint now are not obstacles ahead
        hits = (inside.sum(1) >= self.min_cells).nonzero()
        return int(hits[0]) if len(hits) else None

    def forward(self, traj: torch.Tensor, occ: torch.Tensor, flow: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The (T, 2) waypoints (m, ego frame, rear axle): unchanged without a predicted collision, else shifted
        sideways onto the first free offset path, else with their progress limited."""
        traj32 = traj.float()
        knots = torch.cat([traj32.new_zeros(1, 2), traj32])  # (T + 1, 2): the ego now, then the waypoints
        frac = torch.arange(self.samples_per_step, device=traj.device) / self.samples_per_step
        path = torch.cat([(knots[:-1, None] + frac[None, :, None] * (knots[1:] - knots[:-1])[:, None]).reshape(-1, 2),
                          knots[-1:]])
        times = torch.arange(len(path), device=traj.device, dtype=torch.float32) * self.dt / self.samples_per_step
        centres, velocities = self.obstacle_cells(occ, flow)
        hit = self.first_collision(path, times, centres, velocities) if len(centres) else None
        if hit is None:
            return traj
        s_path = arc_lengths(path)
        for offset in self.lateral_offsets:
            shifted = self.shifted_path(path, s_path, offset)
            if self.first_collision(shifted, times, centres, velocities) is None and self.stays_on_road(shifted, occ):
                return shifted[self.samples_per_step::self.samples_per_step].to(traj.dtype)
        s_stop = (s_path[hit] - self.stop_distance).clamp(min=0.0)
        s_knots = s_path[::self.samples_per_step][1:]
        s_braking = self.braking_progress(s_knots[0] / self.dt, s_stop, len(s_knots))
        return point_at_arc_length(path, s_path, torch.minimum(s_knots, s_braking)).to(traj.dtype)

    def shifted_path(self, path: torch.Tensor, s_path: torch.Tensor, offset: float) -> torch.Tensor:
        """(S, 2) ``path`` moved ``offset`` m to its left (right if negative), eased in with a half-cosine over the
        first ``offset_ramp`` m of arc length ``s_path`` (S,)."""
        cos, sin = path_headings(path)
        ease = (1 - torch.cos(torch.pi * (s_path / self.offset_ramp).clamp(max=1.0))) / 2
        return path + offset * ease[:, None] * torch.cat([-sin, cos], dim=1)

    def stays_on_road(self, path: torch.Tensor, occ: torch.Tensor) -> bool:
        """Whether no footprint centre of the (S, 2) rear-axle ``path`` lies over a column of ``occ`` (X, Y, Z)
        labelled non-driveable ground (sidewalk, terrain, other flat) without driveable surface; columns the
        occupancy leaves unlabelled count as road."""
        cos, sin = path_headings(path)
        centre = path + EGO_REAR_AXLE_TO_CENTER * torch.cat([cos, sin], dim=1)
        x_min, y_min = self.occ_range[:2]
        ix = ((centre[:, 0] - x_min) / self.voxel_size).long().clamp(0, occ.shape[0] - 1)
        iy = ((centre[:, 1] - y_min) / self.voxel_size).long().clamp(0, occ.shape[1] - 1)
        columns = occ[ix, iy]  # (S, Z)
        offroad = torch.isin(columns, torch.tensor(OFFROAD_CLASSES, device=occ.device)).any(1)
        return not bool((offroad & ~(columns == DRIVEABLE_INDEX).any(1)).any())

    def braking_progress(self, v0: torch.Tensor, s_stop: torch.Tensor, num: int) -> torch.Tensor:
        """(num,) distance (m) covered at ``t_k = dt (k + 1)`` by a constant-deceleration stop from speed ``v0``
        (m/s) that ends exactly ``s_stop`` m ahead."""
        if s_stop <= 0 or v0 <= 0:
            return s_stop.expand(num)
        decel = v0 ** 2 / (2 * s_stop)
        t = self.dt * torch.arange(1, num + 1, device=s_stop.device, dtype=torch.float32)
        return torch.where(t < v0 / decel, v0 * t - decel * t ** 2 / 2, s_stop)


__all__ = ['OccupancyGuidedStop', 'OBSTACLE_CLASSES']

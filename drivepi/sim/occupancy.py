"""Occupancy / flow ground truth of a keyframe (OpenOcc layout, see docs/contracts.md).

Computed from the world geometry itself, not from sensor returns:
- semantics: the ground layer (the voxel row holding z = 0) takes the ground material's class;
  every voxel that a solid overlaps (with positive volume) takes the solid's class
  (agents override static structure, static structure overrides ground);
- flow: (vx, vy) of the owning agent rotated into the ego frame (m/s), zero elsewhere;
- mask_lidar / mask_camera: voxels whose centre lies in front of (or at) the first surface seen by
  the nearest LiDAR beam / camera pixel, i.e. observed free space plus the hit voxels
  (:class:`VisibilityProjector`).
"""
from dataclasses import dataclass

import numpy as np

from drivepi.geometry import FREE_INDEX, OCC_GRID, OCC_RANGE, OCC_VOXEL_SIZE
from drivepi.sim.geometry import box_corners, transform_boxes, transform_points
from drivepi.sim.sensors import pixel_rays
from drivepi.sim.shapes import MATERIAL_TO_OCC

PC_RANGE = np.array(OCC_RANGE)
VOXEL_SIZE = OCC_VOXEL_SIZE
GRID_SHAPE = OCC_GRID
FREE = FREE_INDEX
SURFACE_TOLERANCE = VOXEL_SIZE * np.sqrt(3) / 2   # a voxel is seen if its centre is this close to a hit


@dataclass
class OccupancyGT:
    """``semantics`` uint8 (200,200,16), ``flow`` float32 (200,200,16,2), ``mask_lidar`` and
    ``mask_camera`` uint8 (200,200,16)."""
    semantics: np.ndarray
    flow: np.ndarray
    mask_lidar: np.ndarray
    mask_camera: np.ndarray

    def to_npz_dict(self) -> dict:
        return dict(semantics=self.semantics, mask_lidar=self.mask_lidar, mask_camera=self.mask_camera,
                    flow=self.flow)


def voxel_centres() -> np.ndarray:
    """(200,200,16,3) voxel centres in the ego frame (m)."""
    axes = [PC_RANGE[i] + (np.arange(GRID_SHAPE[i]) + 0.5) * VOXEL_SIZE for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing='ij'), -1)


def semantics_and_flow(mesh, ego2global: np.ndarray, agent_velocities: np.ndarray) -> tuple:
    """Semantics (200,200,16) uint8 and flow (200,200,16,2) float32 of ``mesh`` around the ego.

    Args:
        mesh: :class:`~drivepi.sim.world.WorldMesh` at the keyframe time.
        agent_velocities: (N,2) global (vx, vy) of the agents the mesh was built with.
    """
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    flow = np.zeros(GRID_SHAPE + (2,), np.float32)
    centres = voxel_centres()
    ground_iz = int((0.0 - PC_RANGE[2]) // VOXEL_SIZE)
    col_xy = transform_points(ego2global, centres[:, :, ground_iz].reshape(-1, 3))[:, :2]
    sem[:, :, ground_iz] = MATERIAL_TO_OCC[mesh.world.ground_material_at(col_xy)].reshape(GRID_SHAPE[:2])
    global2ego = np.linalg.inv(ego2global)
    boxes = transform_boxes(global2ego, mesh.solids.boxes)
    yaw = np.arctan2(global2ego[1, 0], global2ego[0, 0])
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    reach = np.hypot(boxes[:, 3], boxes[:, 4]) / 2
    near = np.all(np.abs(boxes[:, :2]) <= PC_RANGE[3:5] + reach[:, None], axis=1)
    order = np.flatnonzero(near)[np.argsort(mesh.solids.owner[near] >= 0, kind='stable')]  # agents last (win)
    for m in order:
        idx = _voxels_of_box(boxes[m])
        if idx is None:
            continue
        sem[idx] = mesh.solids.labels[m]
        owner = mesh.solids.owner[m]
        flow[idx] = rot @ agent_velocities[owner] if owner >= 0 else 0.0
    return sem, flow


def _voxels_of_box(box: np.ndarray):
    """Index arrays of the voxels that overlap ``box`` (ego frame, yaw about z) with positive volume,
    by the separating-axis test of each voxel square against the box footprint plus the z interval."""
    corners = box_corners(box)[0]
    lo = np.floor((corners.min(0) - PC_RANGE[:3]) / VOXEL_SIZE).astype(int)
    hi = np.floor((corners.max(0) - PC_RANGE[:3]) / VOXEL_SIZE).astype(int)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, np.array(GRID_SHAPE) - 1)
    if np.any(hi < lo):
        return None
    half = VOXEL_SIZE / 2
    ix, iy = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing='ij')
    dx = PC_RANGE[0] + (ix + 0.5) * VOXEL_SIZE - box[0]
    dy = PC_RANGE[1] + (iy + 0.5) * VOXEL_SIZE - box[1]
    a, b, c, s = box[3] / 2, box[4] / 2, abs(np.cos(box[6])), abs(np.sin(box[6]))
    u = dx * np.cos(box[6]) + dy * np.sin(box[6])
    v = -dx * np.sin(box[6]) + dy * np.cos(box[6])
    hit = ((np.abs(dx) < half + a * c + b * s) & (np.abs(dy) < half + a * s + b * c)
           & (np.abs(u) < a + half * (c + s)) & (np.abs(v) < b + half * (c + s)))
    iz = np.arange(lo[2], hi[2] + 1)
    z0 = PC_RANGE[2] + iz * VOXEL_SIZE
    iz = iz[(z0 < box[2] + box[5]) & (z0 + VOXEL_SIZE > box[2])]
    if not hit.any() or not len(iz):
        return None
    cols = np.flatnonzero(hit.ravel())
    return (np.repeat(ix.ravel()[cols], len(iz)), np.repeat(iy.ravel()[cols], len(iz)), np.tile(iz, len(cols)))


class VisibilityProjector:
    """Visibility masks of the grid for one sensor set-up (the grid is fixed in the ego frame, so the
    projection of every voxel centre into the LiDAR range image and the camera images is computed once).
    A voxel is observed when its centre is no farther than the first surface seen by the LiDAR beam /
    camera pixel it falls in (+ ``SURFACE_TOLERANCE``), or when a LiDAR return / pixel surface lies in it."""

    def __init__(self, setup):
        centres = voxel_centres().reshape(-1, 3)
        pts = transform_points(np.linalg.inv(setup.lidar2ego), centres)
        rng = np.linalg.norm(pts, axis=1)
        elev = np.deg2rad(np.linspace(*setup.lidar_elevation_deg, setup.lidar_beams))
        num_az = len(np.arange(0, 360, setup.lidar_azimuth_res_deg))
        ie = np.round((np.arcsin(pts[:, 2] / np.maximum(rng, 1e-6)) - elev[0]) / (elev[1] - elev[0])).astype(int)
        ia = np.round(np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2 * np.pi)
                      / np.deg2rad(setup.lidar_azimuth_res_deg)).astype(int) % num_az
        valid = (ie >= 0) & (ie < len(elev))
        self.lidar = (np.flatnonzero(valid), ie[valid] * num_az + ia[valid], rng[valid])
        self.lidar2ego = setup.lidar2ego
        self.cameras, self.pixel_rays = {}, {}
        for name, calib in setup.cameras.items():
            self.pixel_rays[name] = (calib.cam2ego, pixel_rays(calib))
            cam = transform_points(np.linalg.inv(calib.cam2ego), centres)
            front = np.flatnonzero(cam[:, 2] > 0.1)
            uvw = cam[front] @ calib.intrinsic.T
            u = np.floor(uvw[:, 0] / uvw[:, 2]).astype(int)
            v = np.floor(uvw[:, 1] / uvw[:, 2]).astype(int)
            ok = (u >= 0) & (u < calib.width) & (v >= 0) & (v < calib.height)
            self.cameras[name] = (front[ok], v[ok] * calib.width + u[ok], cam[front[ok], 2])

    def lidar_mask(self, range_image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(200,200,16) uint8 mask_lidar from a (beams, azimuths) range image (inf = no return) and
        the sweep's (N,>=3) points in the LiDAR frame."""
        idx, pix, dist = self.lidar
        seen = np.zeros(GRID_SHAPE, bool)
        seen.ravel()[idx] = dist <= range_image.ravel()[pix] + SURFACE_TOLERANCE
        _mark(seen, transform_points(self.lidar2ego, points[:, :3].astype(np.float64)))
        return seen.astype(np.uint8)

    def camera_mask(self, depths: dict) -> np.ndarray:
        """(200,200,16) uint8 mask_camera from channel -> (H,W) z-depth images (inf = sky)."""
        seen = np.zeros(GRID_SHAPE, bool)
        for name, (idx, pix, depth) in self.cameras.items():
            seen.ravel()[idx] |= depth <= depths[name].ravel()[pix] + SURFACE_TOLERANCE
            cam2ego, rays = self.pixel_rays[name]
            d = depths[name].ravel()
            hit = np.isfinite(d)
            _mark(seen, transform_points(cam2ego, rays[hit] * d[hit, None]))
        return seen.astype(np.uint8)


def _mark(grid: np.ndarray, points_ego: np.ndarray) -> None:
    """Set the voxels of (N,3) ego-frame points inside the range."""
    idx = np.floor((points_ego - PC_RANGE[:3]) / VOXEL_SIZE).astype(int)
    ok = np.all((idx >= 0) & (idx < GRID_SHAPE), axis=1)
    grid[tuple(idx[ok].T)] = True

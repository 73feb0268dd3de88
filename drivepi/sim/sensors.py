"""LIDAR_TOP and the six cameras, by ray casting a :class:`~drivepi.sim.world.WorldMesh` (Embree or torch,
:mod:`drivepi.sim.ray_backends`).

LiDAR: nuScenes HDL-32E geometry (32 beams evenly spaced over the elevation range, one full turn per
sweep, all returns at the sweep time), points ``[x, y, z, intensity, ring]`` in the LiDAR frame.
Cameras: pinhole rays through every pixel centre, shaded by class colour, Lambert term of the hit
normal, ground-material texture (lane paint, zebra crossings) and distance haze.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from drivepi.geometry import FREE_INDEX, OPENOCC_CLASSES
from drivepi.sim.shapes import MATERIAL_TO_OCC

# reflectivity per occupancy class (LiDAR intensity) and per ground material
CLASS_REFLECTIVITY = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.4, 0.5, 0.3, 0.95, 0.75,
                               0.15, 0.2, 0.3, 0.25, 0.4, 0.35, 0.0])
MATERIAL_REFLECTIVITY = np.array([0.25, 0.12, 0.3, 0.8, 0.7])
MATERIAL_COLOURS = np.array([[0.35, 0.5, 0.25], [0.33, 0.33, 0.35], [0.62, 0.6, 0.57],
                             [0.92, 0.92, 0.9], [0.9, 0.75, 0.2]])
SUN = np.array([0.4, 0.25, 0.88]) / np.linalg.norm([0.4, 0.25, 0.88])
SKY_HORIZON, SKY_ZENITH, HAZE = np.array([0.8, 0.85, 0.9]), np.array([0.35, 0.55, 0.85]), 150.0


@dataclass
class RayHits:
    """Ray-cast result for R rays: ``distance`` (R,) m (inf = miss), ``points`` (R,3) global,
    ``normals`` (R,3) float32 facing the ray origin, ``label`` (R,) occupancy class (16 = miss),
    ``owner`` (R,) agent index (-1 = static / ground / miss), ``material`` (R,) ground material or 255,
    ``solid`` (R,) index into ``mesh.solids`` (-1 = ground / miss)."""
    distance: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    label: np.ndarray
    owner: np.ndarray
    material: np.ndarray
    solid: np.ndarray


def cast_rays(mesh, origins: np.ndarray, directions: np.ndarray, max_range: float = np.inf) -> RayHits:
    """Cast (R,3) unit ``directions`` from (R,3) or (3,) global ``origins`` against ``mesh``."""
    origins = np.broadcast_to(origins, directions.shape)
    directions = directions.astype(np.float32)
    dist, solid, normals = mesh.cast(np.concatenate([origins.astype(np.float32), directions], axis=1))
    dist[dist > max_range] = np.inf
    hit = np.isfinite(dist)
    solid[~hit] = -1
    normals *= -np.sign(np.einsum('ij,ij->i', normals, directions) + 1e-12)[:, None]
    points = origins + directions * np.where(hit, dist, 0)[:, None].astype(np.float32)
    label = np.full(len(dist), FREE_INDEX, np.uint8)
    owner = np.full(len(dist), -1, np.int64)
    material = np.full(len(dist), 255, np.uint8)
    on_solid, on_ground = hit & (solid >= 0), hit & (solid < 0)
    label[on_solid] = mesh.solids.labels[solid[on_solid]]
    owner[on_solid] = mesh.solids.owner[solid[on_solid]]
    material[on_ground] = mesh.world.ground_material_at(points[on_ground, :2])
    label[on_ground] = MATERIAL_TO_OCC[material[on_ground]]
    return RayHits(dist, points, normals, label, owner, material, solid)


@dataclass
class LidarScan:
    """One sweep: ``points`` (N,5) float32 LiDAR frame, ``owner``/``label`` (N,) of each point,
    ``range_image`` (beams, azimuths) m (inf = no return), ``elevations``/``azimuths`` (rad)."""
    points: np.ndarray
    owner: np.ndarray
    label: np.ndarray
    range_image: np.ndarray
    elevations: np.ndarray
    azimuths: np.ndarray


@lru_cache(maxsize=4)
def lidar_directions(setup) -> tuple:
    """Unit beam directions (B*A,3) in the LiDAR frame, ring (B*A,), elevations (B,), azimuths (A,) rad."""
    elev = np.deg2rad(np.linspace(*setup.lidar_elevation_deg, setup.lidar_beams))
    azim = np.deg2rad(np.arange(0, 360, setup.lidar_azimuth_res_deg))
    e, a = np.meshgrid(elev, azim, indexing='ij')
    dirs = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)
    ring = np.repeat(np.arange(setup.lidar_beams), len(azim))
    return dirs, ring, elev, azim


def cast_lidar(mesh, setup, ego2global: np.ndarray) -> LidarScan:
    """A LIDAR_TOP sweep of ``mesh`` with the ego at ``ego2global`` (4,4)."""
    dirs, ring, elev, azim = lidar_directions(setup)
    lidar2global = ego2global @ setup.lidar2ego
    hits = cast_rays(mesh, lidar2global[:3, 3], dirs @ lidar2global[:3, :3].T, setup.lidar_max_range)
    keep = np.isfinite(hits.distance) & (hits.distance > 1.0)
    reflect = np.where(hits.material != 255, MATERIAL_REFLECTIVITY[np.minimum(hits.material, 4)],
                       CLASS_REFLECTIVITY[hits.label])
    cos_inc = np.abs(np.sum(hits.normals * (dirs @ lidar2global[:3, :3].T), axis=1))
    intensity = np.round(255 * reflect * (0.3 + 0.7 * cos_inc))
    xyz = dirs[keep] * hits.distance[keep, None]
    points = np.c_[xyz, intensity[keep], ring[keep]].astype(np.float32)
    range_image = np.where(keep, hits.distance, np.inf).reshape(len(elev), len(azim))
    return LidarScan(points, hits.owner[keep], hits.label[keep], range_image, elev, azim)


@dataclass
class CameraView:
    """One rendered camera: ``image`` (H,W,3) uint8, ``depth`` (H,W) z-depth m (inf = sky),
    ``owner``/``label`` (H,W) per pixel."""
    image: np.ndarray
    depth: np.ndarray
    owner: np.ndarray
    label: np.ndarray


def pixel_rays(calib) -> np.ndarray:
    """(H*W,3) unnormalised camera-frame rays through the pixel centres (z = 1)."""
    u, v = np.meshgrid(np.arange(calib.width) + 0.5, np.arange(calib.height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], -1)
    return pix @ np.linalg.inv(calib.intrinsic).T


@lru_cache(maxsize=4)
def camera_rays(setup) -> tuple:
    """The cameras of ``setup`` (channel -> calibration) and per camera its (H*W,3) float32 unit pixel rays
    in the camera frame and (H*W,) z-depth per unit distance; cached per sensor set-up (rays never change)."""
    calibs = setup.cameras
    units, z_scale = [], []
    for calib in calibs.values():
        rays = pixel_rays(calib)
        norm = np.linalg.norm(rays, axis=1, keepdims=True)
        units.append((rays / norm).astype(np.float32))
        z_scale.append(1.0 / norm[:, 0])
    return calibs, units, z_scale


def render_cameras(mesh, setup, ego2global: np.ndarray) -> dict:
    """All six cameras of ``setup`` with the ego at ``ego2global``: channel -> :class:`CameraView`."""
    calibs, units, z_scale = camera_rays(setup)
    origins, dirs = [], []
    for calib, unit in zip(calibs.values(), units):
        cam2global = ego2global @ calib.cam2ego
        dirs.append(unit @ cam2global[:3, :3].T.astype(np.float32))
        origins.append(np.broadcast_to(cam2global[:3, 3].astype(np.float32), unit.shape))
    dirs = np.concatenate(dirs)
    hits = cast_rays(mesh, np.concatenate(origins), dirs)
    colours = _shade(mesh, hits, dirs)
    views, start = {}, 0
    for (name, calib), zs in zip(calibs.items(), z_scale):
        h, w = calib.height, calib.width
        sl = slice(start, start + h * w)
        start += h * w
        views[name] = CameraView((colours[sl].reshape(h, w, 3) * 255).round().astype(np.uint8),
                                 (hits.distance[sl] * zs).reshape(h, w), hits.owner[sl].reshape(h, w),
                                 hits.label[sl].reshape(h, w))
    return views


def _shade(mesh, hits: RayHits, dirs: np.ndarray) -> np.ndarray:
    """(R,3) RGB in [0,1] of the hits: base colour x Lambert x texture, hazed with distance; sky for misses."""
    colour = (SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * np.clip(dirs[:, 2:3] * 3, 0, 1)).astype(np.float32)
    hit = np.flatnonzero(np.isfinite(hits.distance))
    material = hits.material[hit]
    on_ground = material != 255
    base = np.empty((len(hit), 3), np.float32)
    base[on_ground] = MATERIAL_COLOURS[material[on_ground]]
    base[~on_ground] = _solid_colours(mesh, hits, hit[~on_ground])
    lambert = 0.45 + 0.55 * np.clip(hits.normals[hit] @ SUN.astype(np.float32), 0, 1)
    cells = np.floor(hits.points[hit] * 4).astype(np.int32).sum(1)   # 25 cm / 1 m checker texture
    texture = 0.92 + 0.04 * (cells & 1) + 0.04 * ((cells >> 2) & 1)
    haze = (1 - np.exp(-hits.distance[hit].astype(np.float32) / HAZE))[:, None]
    shade = (lambert * texture)[:, None]
    colour[hit] = np.minimum(base * shade * (1 - haze) + SKY_HORIZON * haze, 1.0)
    return colour


def _solid_colours(mesh, hits: RayHits, index: np.ndarray) -> np.ndarray:
    """Base colours of the solid hits ``index``; buildings get darker window bands every 3.2 m of height."""
    colours = mesh.solids.colours[hits.solid[index]]
    pts, labels = hits.points[index], hits.label[index]
    manmade = labels == OPENOCC_CLASSES.index('manmade')
    window = (np.mod(pts[:, 2], 3.2) > 1.2) & (np.mod(pts[:, 2], 3.2) < 2.4) & (pts[:, 2] > 1.0)
    colours[manmade & window] *= 0.55
    return colours

"""The generated mini dataset in nuScenes format: :func:`generate_mini_dataset`.

Layout under ``out_dir`` (docs/contracts.md): ``v1.0-drivepi-mini/*.json`` tables,
``samples/LIDAR_TOP`` + ``sweeps/LIDAR_TOP`` (``.pcd.bin``, 5 float32 per point),
``samples/CAM_*`` (JPEG), ``maps/<scene>.png`` (drivable-area mask, 0.5 m/pixel, grid frame, row = y),
``occupancy/<scene>/<sample_token>/labels.npz``, ``worlds/<scene>.json`` and ``splits.json``
(``{"train": [...], "val": [...]}``: the last 20 % of the scenes, at least one, are val).
"""
import json
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from mmengine.utils import ProgressBar

from drivepi.fileio import atomic_write_bytes, atomic_write_image, atomic_write_npz, atomic_write_text
from drivepi.sim import layout
from drivepi.sim.generator import generate_world
from drivepi.sim.geometry import transform_points
from drivepi.sim.nuscenes_export import NuScenesTables
from drivepi.sim.occupancy import VisibilityProjector, semantics_and_flow
from drivepi.sim.sensors import cast_lidar, render_cameras
from drivepi.sim.shapes import CATEGORY_TO_OCC
from drivepi.sim.world import SensorSetup, load_scene_world

VERSION = 'v1.0-drivepi-mini'
EGO_ROUTES = (('left', 'straight', 'right'), ('right', 'straight', 'left'), ('straight', 'left', 'straight'),
              ('straight', 'right', 'straight'), ('left', 'right', 'straight'), ('right', 'left', 'left'))
ANNOTATION_RADIUS = 50.0   # m around the ego within which agents are annotated
MAP_STRIDE = 5             # maps/<scene>.png: every 5th ground-raster cell, 0.5 m / pixel


@dataclass(frozen=True)
class MiniPreset:
    """Size knobs of a generated set."""
    num_keyframes: int
    sweeps_per_keyframe: int      # LiDAR sweeps per 0.5 s keyframe interval (10 = the real 20 Hz)
    sensors: SensorSetup
    ego_lead_in: tuple = (15.0, 35.0)
    jpeg_quality: int = 85
    workers: int = 2


PRESETS = {
    'default': MiniPreset(40, 5, SensorSetup(image_width=400, image_height=225, lidar_azimuth_res_deg=0.6)),
    'test': MiniPreset(6, 2, SensorSetup(image_width=160, image_height=90, lidar_azimuth_res_deg=1.0),
                       ego_lead_in=(4.0, 10.0), workers=1),
}


def generate_mini_dataset(out_dir, num_scenes: int, seed: int, preset: str = 'default', workers: int = None) -> str:
    """Generate ``num_scenes`` scenes into ``out_dir`` (see the module docstring); returns the version.

    Scene ``k`` is built from seed ``seed * 1000 + k``, so every scene (and the whole set) is
    reproducible. ``workers`` processes share the scenes (default: the preset's).
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown mini-dataset preset {preset!r}; choose from {sorted(PRESETS)}')
    if num_scenes < 1:
        raise ValueError(f'num_scenes must be >= 1, got {num_scenes}')
    out_dir = Path(out_dir)
    cfg = PRESETS[preset]
    jobs = [(out_dir, k, seed * 1000 + k, cfg) for k in range(num_scenes)]
    workers = min(cfg.workers if workers is None else workers, num_scenes)
    progress = ProgressBar(num_scenes)
    results = []
    if workers > 1:
        with get_context('spawn').Pool(workers) as pool:
            for res in pool.imap(_export_scene_job, jobs):
                results.append(res)
                progress.update()
    else:
        for job in jobs:
            results.append(_export_scene_job(job))
            progress.update()
    tables = NuScenesTables(sorted(CATEGORY_TO_OCC))
    for res in results:
        for name in ('instance', 'calibrated_sensor', 'ego_pose', 'log', 'scene', 'sample', 'sample_data',
                     'sample_annotation', 'map'):
            tables.tables[name].extend(res[name])
    tables.write(out_dir / VERSION)
    names = [f'scene-{k:04d}' for k in range(num_scenes)]
    num_val = max(1, round(0.2 * num_scenes)) if num_scenes > 1 else 0
    atomic_write_text(out_dir / 'splits.json', json.dumps(
        dict(train=names[:num_scenes - num_val], val=names[num_scenes - num_val:], version=VERSION,
             seed=seed, preset=preset), indent=1))
    return VERSION


def _export_scene_job(job) -> dict:
    out_dir, k, scene_seed, cfg = job
    return export_scene(out_dir, f'scene-{k:04d}', scene_seed, EGO_ROUTES[k % len(EGO_ROUTES)], cfg,
                        start_timestamp_us=1_600_000_000_000_000 + k * 3_600_000_000)


def export_scene(out_dir: Path, name: str, seed: int, ego_actions, cfg: MiniPreset,
                 start_timestamp_us: int) -> dict:
    """Generate and write one scene; returns its nuScenes records per table."""
    world = generate_world(name, seed, cfg.num_keyframes, list(ego_actions), cfg.sensors,
                           start_timestamp_us=start_timestamp_us, ego_lead_in=cfg.ego_lead_in)
    world.save(out_dir / 'worlds' / f'{name}.json')
    world = load_scene_world(out_dir, name)   # sensors see exactly the (rounded) world the file rebuilds
    tables = NuScenesTables(sorted(CATEGORY_TO_OCC))
    map_file = f'maps/{name}.png'
    materials = world.ground_materials[::MAP_STRIDE, ::MAP_STRIDE]
    drivable = (materials != layout.TERRAIN) & (materials != layout.SIDEWALK)
    atomic_write_image(out_dir / map_file, drivable.astype(np.uint8) * 255)
    scene = tables.add_scene(world, f'generated world, seed {seed}, ego route {"/".join(ego_actions)}', map_file)
    projector = _projector(world.sensors)
    step = 0.5 / cfg.sweeps_per_keyframe
    num_sweeps = (cfg.num_keyframes - 1) * cfg.sweeps_per_keyframe + 1
    sample = None
    for i in range(num_sweeps):
        t = i * step
        ts = world.start_timestamp_us + int(round(t * 1e6))
        is_key = i % cfg.sweeps_per_keyframe == 0
        ego2global = world.ego2global(t)
        agents = world.agents_at(t)
        mesh = world.mesh(agents)
        scan = cast_lidar(mesh, world.sensors, ego2global)
        folder = 'samples' if is_key else 'sweeps'
        lidar_file = f'{folder}/LIDAR_TOP/{name}__LIDAR_TOP__{ts}.pcd.bin'
        atomic_write_bytes(out_dir / lidar_file, scan.points.tobytes())
        if is_key:
            sample = tables.add_sample(scene, i // cfg.sweeps_per_keyframe, ts)
        tables.add_sample_data(scene, 'LIDAR_TOP', i, ts, ego2global, lidar_file, sample['token'], is_key)
        if is_key:
            _export_keyframe(out_dir, world, tables, scene, sample, i, ts, ego2global, agents, mesh, scan,
                             projector, cfg)
    return {name: records for name, records in tables.tables.items()}


def _export_keyframe(out_dir, world, tables, scene, sample, i, ts, ego2global, agents, mesh, scan, projector, cfg):
    """Camera JPEGs, occupancy GT and annotations of one keyframe."""
    views = render_cameras(mesh, world.sensors, ego2global)
    for ch, view in views.items():
        cam_file = f'samples/{ch}/{world.name}__{ch}__{ts}.jpg'
        atomic_write_image(out_dir / cam_file, view.image, cfg.jpeg_quality)
        tables.add_sample_data(scene, ch, i, ts, ego2global, cam_file, sample['token'], True,
                               (view.image.shape[1], view.image.shape[0]))
    sem, flow = semantics_and_flow(mesh, ego2global, agents.velocities)
    atomic_write_npz(out_dir / 'occupancy' / world.name / sample['token'] / 'labels.npz', dict(
        semantics=sem, mask_lidar=projector.lidar_mask(scan.range_image, scan.points),
        mask_camera=projector.camera_mask({ch: v.depth for ch, v in views.items()}), flow=flow))
    ego_xy = ego2global[:2, 3]
    near = np.linalg.norm(agents.boxes[:, :2] - ego_xy, axis=1) <= ANNOTATION_RADIUS
    counts = np.bincount(scan.owner[scan.owner >= 0], minlength=len(agents))
    visible = visible_fractions(views, world.sensors.cameras, ego2global, agents.boxes, near)
    attributes = {a['token']: a['attribute'] for a in world.agents}
    for n in np.flatnonzero(near):
        tables.add_annotation(sample, agents.tokens[n], agents.categories[n], agents.boxes[n],
                              _attribute(attributes[agents.tokens[n]], np.linalg.norm(agents.velocities[n])),
                              visible[n], counts[n])


@lru_cache(maxsize=2)
def _projector(setup: SensorSetup) -> VisibilityProjector:
    return VisibilityProjector(setup)


def _attribute(logged: str, speed: float) -> str:
    """The agent's attribute at one instant (moving agents may stand still for a while)."""
    if logged in ('vehicle.moving', 'vehicle.stopped'):
        return 'vehicle.moving' if speed > 0.2 else 'vehicle.stopped'
    if logged in ('pedestrian.moving', 'pedestrian.standing'):
        return 'pedestrian.moving' if speed > 0.2 else 'pedestrian.standing'
    return logged


def visible_fractions(views: dict, calibs: dict, ego2global: np.ndarray, boxes: np.ndarray,
                      which: np.ndarray) -> np.ndarray:
    """(N,) fraction of 3x3x3 points inside each agent box (at 10/50/90 % of each side) that some camera
    sees: the pixel it projects to shows that agent or a surface behind the point. 0 where not ``which``."""
    unit = np.stack(np.meshgrid(*[np.array([0.1, 0.5, 0.9])] * 3, indexing='ij'), -1).reshape(-1, 3)
    idx = np.flatnonzero(which)
    out = np.zeros(len(boxes))
    if not len(idx):
        return out
    sel = boxes[idx]
    local = (unit[None] - [0.5, 0.5, 0.0]) * sel[:, None, 3:6]               # (n,27,3)
    c, s = np.cos(sel[:, 6])[:, None], np.sin(sel[:, 6])[:, None]
    pts = np.stack([sel[:, None, 0] + c * local[..., 0] - s * local[..., 1],
                    sel[:, None, 1] + s * local[..., 0] + c * local[..., 1], sel[:, None, 2] + local[..., 2]], -1)
    pts = pts.reshape(-1, 3)
    agent = np.repeat(idx, len(unit))
    seen = np.zeros(len(pts), bool)
    global2ego = np.linalg.inv(ego2global)
    for ch, view in views.items():
        calib = calibs[ch]
        cam = transform_points(np.linalg.inv(calib.cam2ego) @ global2ego, pts)
        uvw = cam @ calib.intrinsic.T
        with np.errstate(divide='ignore', invalid='ignore'):
            u, v = np.floor(uvw[:, 0] / uvw[:, 2]), np.floor(uvw[:, 1] / uvw[:, 2])
        ok = (cam[:, 2] > 0.1) & (u >= 0) & (u < calib.width) & (v >= 0) & (v < calib.height)
        ui, vi = u[ok].astype(int), v[ok].astype(int)
        seen[ok] |= (view.owner[vi, ui] == agent[ok]) | (view.depth[vi, ui] >= cam[ok, 2])
    out[idx] = seen.reshape(len(idx), -1).mean(1)
    return out

"""The generated mini dataset in nuScenes format: :func:`generate_mini_dataset`.

Layout under ``out_dir`` (docs/contracts.md): ``v1.0-drivepi-mini/*.json`` tables,
``samples/LIDAR_TOP`` + ``sweeps/LIDAR_TOP`` (``.pcd.bin``, 5 float32 per point),
``samples/CAM_*`` (JPEG), ``maps/<scene>.png`` (drivable-area mask, 0.5 m/pixel, grid frame, row = y),
``occupancy/<scene>/<sample_token>/labels.npz``, ``worlds/<scene>.json`` and ``splits.json``
(``{"train": [...], "val": [...]}``: the last 20 % of the scenes, at least one, are val; a one-scene set is all
train, which ``tools/create_data.py`` refuses: every split needs a scene).

Recovery samples (off by default; ``MiniPreset.recovery.per_keyframe`` or the ``recovery_per_keyframe``
argument): every train scene gets one-sample scenes ``<scene>-recovery-<keyframe>-<n>`` whose ego is
displaced off the expert's path (:mod:`drivepi.sim.recovery`), rendered by the same code as the keyframes,
listed in ``splits.json``'s ``train`` after the scenes and described by the extra table
``v1.0-drivepi-mini/recovery.json`` (docs/mini_dataset.md).
"""
import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from mmengine.utils import ProgressBar

from drivepi.fileio import atomic_write_bytes, atomic_write_image, atomic_write_npz, atomic_write_text
from drivepi.sim import layout
from drivepi.sim.generator import generate_world
from drivepi.sim.geometry import transform_points
from drivepi.sim.nuscenes_export import NuScenesTables
from drivepi.sim.occupancy import VisibilityProjector, semantics_and_flow
from drivepi.sim.ray_backends import resolve_ray_backend
from drivepi.sim.recovery import ExpertPath, RecoverySpec, sample_recovery
from drivepi.sim.scenarios import HELD_OUT_SEEDS
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
    recovery: RecoverySpec = field(default_factory=RecoverySpec)   # recovery samples (default: none)


PRESETS = {
    'default': MiniPreset(40, 5, SensorSetup(image_width=400, image_height=225, lidar_azimuth_res_deg=0.6)),
    # the full-size model's inputs: 10 sweeps per keyframe (20 Hz), ~35k points per sweep as the real LIDAR_TOP,
    # 704x396 images (the nuScenes 16:9 aspect; the full config resizes them to 256x704)
    'full': MiniPreset(40, 10, SensorSetup(image_width=704, image_height=396, lidar_azimuth_res_deg=0.33)),
    'test': MiniPreset(6, 2, SensorSetup(image_width=160, image_height=90, lidar_azimuth_res_deg=1.0),
                       ego_lead_in=(4.0, 10.0), workers=1),
}


def generate_mini_dataset(out_dir, num_scenes: int, seed: int, preset: str = 'default', workers: int = None,
                          recovery_per_keyframe: int = None, ray_backend: str = 'auto') -> str:
    """Generate ``num_scenes`` scenes into ``out_dir`` (see the module docstring); returns the version.

    Scene ``k`` is built from seed :func:`scene_seed` ``(seed, k)``, so every scene (and the whole set) is
    reproducible, and never from a closed-loop benchmark seed. ``workers`` processes share the scenes
    (default: the preset's). ``recovery_per_keyframe`` overrides the preset's ``recovery.per_keyframe``
    (recovery samples per eligible train keyframe; 0 = none). ``ray_backend`` casts the sensors
    (:data:`~drivepi.sim.ray_backends.RAY_BACKENDS`, resolved once here, so every worker uses the same one; the
    files are the same with any number of workers).
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown mini-dataset preset {preset!r}; choose from {sorted(PRESETS)}')
    if num_scenes < 1:
        raise ValueError(f'num_scenes must be >= 1, got {num_scenes}')
    out_dir = Path(out_dir)
    ray_backend = resolve_ray_backend(ray_backend)
    cfg = PRESETS[preset]
    if recovery_per_keyframe is not None:
        if recovery_per_keyframe < 0:
            raise ValueError(f'recovery_per_keyframe must be >= 0, got {recovery_per_keyframe}')
        cfg = replace(cfg, recovery=replace(cfg.recovery, per_keyframe=int(recovery_per_keyframe)))
    num_val = max(1, round(0.2 * num_scenes)) if num_scenes > 1 else 0
    num_train = num_scenes - num_val
    jobs = [(out_dir, k, scene_seed(seed, k), cfg, k < num_train, ray_backend) for k in range(num_scenes)]
    workers = min(cfg.workers if workers is None else workers, num_scenes)
    progress = ProgressBar(num_scenes)
    results = []
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with get_context('spawn').Pool(workers, initializer=_share_the_cores, initargs=(threads,)) as pool:
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
                     'sample_annotation', 'map', 'recovery'):
            tables.tables[name].extend(res[name])
    tables.write(out_dir / VERSION)
    names = [f'scene-{k:04d}' for k in range(num_scenes)]
    recovery_scenes = [rec['scene_name'] for rec in tables.tables['recovery']]
    splits = dict(train=names[:num_train] + recovery_scenes, val=names[num_train:], version=VERSION,
                  seed=seed, preset=preset)
    if cfg.recovery.per_keyframe:
        splits.update(recovery_per_keyframe=cfg.recovery.per_keyframe, recovery_scenes=len(recovery_scenes))
    atomic_write_text(out_dir / 'splits.json', json.dumps(splits, indent=1))
    return VERSION


def _share_the_cores(threads: int) -> None:
    """A worker process's torch thread pool gets its share of the cores, as the closed loop's workers do. On a
    16-core GPU host this did not speed generation up: 205 s a scene per process with 12 workers of as many
    threads as cores (2026-12-06), 252 s with 16 workers of one thread (2026-12-07), about 4x a 2-core machine's."""
    torch.set_num_threads(threads)


def scene_seed(dataset_seed: int, k: int) -> int:
    """World seed of scene ``k`` of the set made with ``dataset_seed``: ``dataset_seed * 1000 + k``.

    Raises:
        ValueError: ``k`` is not in [0, 1000) or the seed is one of the closed-loop benchmark's held-out
            seeds (:data:`drivepi.sim.scenarios.HELD_OUT_SEEDS`), which no training world may use.
    """
    if not 0 <= k < 1000:
        raise ValueError(f'scene index {k} out of range [0, 1000): scene seeds of two dataset seeds would collide')
    seed = dataset_seed * 1000 + k
    if seed in HELD_OUT_SEEDS:
        raise ValueError(f'dataset seed {dataset_seed}: scene {k} would use world seed {seed}, reserved for the '
                         f'closed-loop benchmark (held-out seeds [{HELD_OUT_SEEDS.start}, {HELD_OUT_SEEDS.stop}))')
    return seed


def _export_scene_job(job) -> dict:
    out_dir, k, scene_seed, cfg, train, ray_backend = job
    return export_scene(out_dir, f'scene-{k:04d}', scene_seed, EGO_ROUTES[k % len(EGO_ROUTES)], cfg,
                        start_timestamp_us=1_600_000_000_000_000 + k * 3_600_000_000, recovery=train,
                        ray_backend=ray_backend)


def export_scene(out_dir: Path, name: str, seed: int, ego_actions, cfg: MiniPreset,
                 start_timestamp_us: int, recovery: bool = False, ray_backend: str = 'auto') -> dict:
    """Generate and write one scene (plus its recovery samples when ``recovery`` and the preset asks for
    them), its sensors ray-cast with ``ray_backend``; returns its nuScenes records per table (and ``recovery``,
    the recovery table's records)."""
    world = generate_world(name, seed, cfg.num_keyframes, list(ego_actions), cfg.sensors,
                           start_timestamp_us=start_timestamp_us, ego_lead_in=cfg.ego_lead_in)
    world.save(out_dir / 'worlds' / f'{name}.json')
    world = load_scene_world(out_dir, name, ray_backend)   # sensors see exactly the (rounded) world of the file
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
        is_key = i % cfg.sweeps_per_keyframe == 0
        if is_key:
            sample = tables.add_sample(scene, i // cfg.sweeps_per_keyframe, _timestamp(world, t))
        _export_frame(out_dir, world, tables, scene, sample, i, t, world.ego2global(t), is_key, projector, cfg)
    if recovery and cfg.recovery.per_keyframe:
        export_recovery_samples(out_dir, world, tables, scene, cfg, projector)
    return {name: records for name, records in tables.tables.items()}


def _timestamp(world, t: float) -> int:
    return world.start_timestamp_us + int(round(t * 1e6))


def _export_frame(out_dir, world, tables, scene, sample, i, t, ego2global, is_key, projector, cfg,
                  annotate_only=None):
    """Sweep ``i`` (time ``t`` s, ego at ``ego2global``) of ``scene``: its LiDAR file and sample_data, and
    at a keyframe the cameras, occupancy and annotations of ``sample`` (see :func:`_export_keyframe`)."""
    ts = _timestamp(world, t)
    agents = world.agents_at(t)
    mesh = world.mesh(agents)
    scan = cast_lidar(mesh, world.sensors, ego2global)
    folder = 'samples' if is_key else 'sweeps'
    lidar_file = f'{folder}/LIDAR_TOP/{scene["name"]}__LIDAR_TOP__{ts}.pcd.bin'
    atomic_write_bytes(out_dir / lidar_file, scan.points.tobytes())
    tables.add_sample_data(scene, 'LIDAR_TOP', i, ts, ego2global, lidar_file, sample['token'], is_key)
    if is_key:
        _export_keyframe(out_dir, world, tables, scene, sample, i, ts, ego2global, agents, mesh, scan,
                         projector, cfg, annotate_only)


def export_recovery_samples(out_dir: Path, world, tables, scene: dict, cfg: MiniPreset, projector) -> None:
    """Recovery samples of a scene's keyframes (module docstring; docs/mini_dataset.md "Recovery samples").

    Keyframe ``i`` is eligible when it has two keyframes of history (the ego status) and at least one
    future keyframe; each gets up to ``cfg.recovery.per_keyframe`` samples, sample ``n`` drawing its
    offsets from ``default_rng([scene seed, i, n])``. A sample is a one-sample scene (same log) with the
    LiDAR sweeps of the last second before it and the keyframe, all rendered from the displaced poses; its
    ``recovery`` record holds the offsets and the ego's keyframe poses from t - 1 s to the last future
    keyframe of the parent (the planning label and ego status that tools/create_data.py derives).
    """
    # the converter's horizon and ego-status window (imported here: drivepi.datasets pulls in mmdet3d)
    from drivepi.datasets.converters.nuscenes_converter import NUM_FUTURE_STEPS, NUM_STATUS_KEYFRAMES
    history_kf = NUM_STATUS_KEYFRAMES - 1
    spec = cfg.recovery
    spk, num_kf = cfg.sweeps_per_keyframe, cfg.num_keyframes
    step = 0.5 / spk
    samples = [s for s in tables.tables['sample'] if s['scene_token'] == scene['token']]
    annotated = {}
    for ann in tables.tables['sample_annotation']:
        annotated.setdefault(ann['sample_token'], set()).add(ann['instance_token'])
    path = ExpertPath(world)
    for i in range(history_kf, num_kf - 1):
        t = float(world.keyframe_times[i])
        future_times = t + 0.5 * np.arange(1, min(NUM_FUTURE_STEPS, num_kf - 1 - i) + 1)
        history_times = t - step * np.arange(history_kf * spk, 0, -1)
        for n in range(spec.per_keyframe):
            rng = np.random.default_rng([int(world.meta['seed']), i, n])
            track = sample_recovery(world, t, future_times, history_times, spec, rng, path)
            if track is None:
                continue
            parent = samples[i]
            name = f'{scene["name"]}-recovery-{i:03d}-{n}'
            rscene = tables.add_scene(world, f'recovery sample of {scene["name"]} keyframe {i}: lateral '
                                      f'{track.lateral:+.2f} m, heading {np.rad2deg(track.heading):+.1f} deg',
                                      '', name=name, log_token=scene['log_token'])
            sample = tables.add_sample(rscene, 0, parent['timestamp'])
            for j, tau in enumerate(history_times):
                _export_frame(out_dir, world, tables, rscene, sample, j, tau, track.history_pose(world, tau),
                              False, projector, cfg)
            _export_frame(out_dir, world, tables, rscene, sample, len(history_times), t, track.pose, True,
                          projector, cfg, annotate_only=annotated.get(parent['token'], set()))
            keyframe_times = [t - 0.5 * k for k in range(history_kf, 0, -1)]
            poses = [track.history_pose(world, tau) for tau in keyframe_times] + [track.pose] + track.future_poses
            times = keyframe_times + [t] + list(future_times)
            tables.add_recovery(rscene, sample, parent, track.lateral, track.heading, track.converge,
                                [_timestamp(world, tau) for tau in times], poses, history_kf)


def _export_keyframe(out_dir, world, tables, scene, sample, i, ts, ego2global, agents, mesh, scan, projector, cfg,
                     annotate_only=None):
    """Camera JPEGs, occupancy GT and annotations of one keyframe (annotations of the agents within
    ``ANNOTATION_RADIUS``, and only of the instance tokens ``annotate_only`` when given, unlinked then)."""
    views = render_cameras(mesh, world.sensors, ego2global)
    for ch, view in views.items():
        cam_file = f'samples/{ch}/{scene["name"]}__{ch}__{ts}.jpg'
        atomic_write_image(out_dir / cam_file, view.image, cfg.jpeg_quality)
        tables.add_sample_data(scene, ch, i, ts, ego2global, cam_file, sample['token'], True,
                               (view.image.shape[1], view.image.shape[0]))
    sem, flow = semantics_and_flow(mesh, ego2global, agents.velocities)
    atomic_write_npz(out_dir / 'occupancy' / scene['name'] / sample['token'] / 'labels.npz', dict(
        semantics=sem, mask_lidar=projector.lidar_mask(scan.range_image, scan.points),
        mask_camera=projector.camera_mask({ch: v.depth for ch, v in views.items()}), flow=flow))
    ego_xy = ego2global[:2, 3]
    near = np.linalg.norm(agents.boxes[:, :2] - ego_xy, axis=1) <= ANNOTATION_RADIUS
    if annotate_only is not None:
        near &= np.isin(np.asarray(agents.tokens), list(annotate_only))
    counts = np.bincount(scan.owner[scan.owner >= 0], minlength=len(agents))
    visible = visible_fractions(views, world.sensors.cameras, ego2global, agents.boxes, near)
    attributes = {a['token']: a['attribute'] for a in world.agents}
    for n in np.flatnonzero(near):
        tables.add_annotation(sample, agents.tokens[n], agents.categories[n], agents.boxes[n],
                              _attribute(attributes[agents.tokens[n]], np.linalg.norm(agents.velocities[n])),
                              visible[n], counts[n], link=annotate_only is None)


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

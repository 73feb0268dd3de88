"""A hand-made nuScenes-format dataset with known ego motion, for converter and dataset tests.

Three scenes drive a constant speed with a constant yaw rate (straight, left arc, right arc) from a
rotated, shifted start pose, so frame mistakes show up. Calibration (LIDAR_TOP with its ~90 deg yaw
and the six cameras) is read from the real nuScenes demo keyframe. Every LiDAR file (keyframe and
sweep) holds the same static global landmark points, written in that sweep's own LiDAR frame, so a
correct sweep transform stacks them onto one place in the current ego frame.
"""
import json
from pathlib import Path

import cv2
import numpy as np
from pyquaternion import Quaternion

from drivepi.geometry import OCC_GRID

KEYFRAME_DT = 0.5  # s
SWEEP_DT = 0.1  # s, LiDAR sweeps between keyframes
NUM_KEYFRAMES = 8
NUM_SWEEPS_BEFORE_FIRST = 2
SPEED = 6.0  # m/s
START_POSE = (100.0, 200.0, 0.7)  # global x, y (m), yaw (rad)
BASE_TIME_US = 1_600_000_000_000_000
IMAGE_SIZE = (64, 36)  # width, height
LANDMARKS_GLOBAL = np.array([[110.0, 210.0, 1.0], [95.0, 190.0, 2.0], [120.0, 195.0, 0.5]])
# scene name (official v1.0-mini names, so the official split can be tested too) -> yaw rate (rad/s)
SCENES = {'scene-0061': 0.0, 'scene-0103': 0.35, 'scene-0553': -0.35}
SPLITS = dict(train=['scene-0061', 'scene-0103'], val=['scene-0553'])
AGENTS = (  # category, size (w, l, h), start offset in the start ego frame (m), velocity in it (m/s)
    ('vehicle.car', (1.9, 4.5, 1.6), (12.0, 3.5), (4.0, 0.0)),
    ('human.pedestrian.adult', (0.6, 0.7, 1.7), (8.0, -6.0), (0.0, 1.0)),
    ('movable_object.debris', (0.5, 0.5, 0.3), (15.0, -2.0), (0.0, 0.0)),
)


def ego_state(yaw_rate: float, t: float) -> tuple:
    """Global (x, y, yaw) of the ego at time t (s) on a constant-speed, constant-yaw-rate path."""
    x0, y0, yaw0 = START_POSE
    if abs(yaw_rate) < 1e-9:
        return x0 + SPEED * t * np.cos(yaw0), y0 + SPEED * t * np.sin(yaw0), yaw0
    yaw = yaw0 + yaw_rate * t
    radius = SPEED / yaw_rate
    return x0 + radius * (np.sin(yaw) - np.sin(yaw0)), y0 - radius * (np.cos(yaw) - np.cos(yaw0)), yaw


def pose_matrix(x: float, y: float, yaw: float) -> np.ndarray:
    """(4,4) planar pose."""
    mat = np.eye(4)
    mat[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    mat[:2, 3] = x, y
    return mat


class _Tables:
    """Accumulates nuScenes table records with readable, unique tokens."""

    def __init__(self):
        self.tables = {name: [] for name in ('category', 'attribute', 'visibility', 'instance', 'sensor',
                                             'calibrated_sensor', 'ego_pose', 'log', 'scene', 'sample',
                                             'sample_data', 'sample_annotation', 'map')}
        self.count = 0

    def add(self, table: str, **record) -> dict:
        self.count += 1
        record.setdefault('token', f'{table}-{self.count:05d}')
        self.tables[table].append(record)
        return record


def _link(records: list) -> None:
    """Fill the prev/next tokens of a time-ordered chain of records."""
    for i, record in enumerate(records):
        record['prev'] = records[i - 1]['token'] if i else ''
        record['next'] = records[i + 1]['token'] if i + 1 < len(records) else ''


def _write_points(path: Path, lidar2global: np.ndarray, num_extra: int, rng) -> None:
    """Landmarks (in this LiDAR frame) plus random points, as float32 (N, 5) x,y,z,intensity,ring."""
    landmarks = (LANDMARKS_GLOBAL - lidar2global[:3, 3]) @ lidar2global[:3, :3]
    extra = rng.uniform(-20, 20, size=(num_extra, 3))
    xyz = np.concatenate([landmarks, extra])
    points = np.zeros((len(xyz), 5), dtype=np.float32)
    points[:, :3] = xyz
    points[:, 3] = np.arange(len(xyz))
    path.parent.mkdir(parents=True, exist_ok=True)
    points.tofile(path)


def make_toy_nuscenes(root: Path, demo_info: dict, version: str = 'v1.0-drivepi-mini',
                      with_occ: bool = True) -> dict:
    """Write the toy dataset under ``root`` for ``version``; return its ground truth.

    Args:
        root: data root (created).
        demo_info: the demo keyframe's info dict (for the real calibration).
        version: table folder name (and version string).
        with_occ: write ``occupancy/<scene>/<token>/labels.npz`` for every keyframe.

    Returns:
        dict scene name -> list of keyframes ``dict(token, time, ego2global)``.
    """
    rng = np.random.default_rng(0)
    root = Path(root)
    tb = _Tables()
    log = tb.add('log', logfile='toy', vehicle='toy', date_captured='2026-11-23', location='singapore-onenorth')
    tb.add('map', category='semantic_prior', filename='maps/toy.png', log_tokens=[log['token']])
    (root / 'maps').mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / 'maps' / 'toy.png'), np.zeros((4, 4), np.uint8))
    visibility = tb.add('visibility', level='v80-100', description='')
    categories = {name: tb.add('category', name=name, description='') for name, _, _, _ in AGENTS}
    lidar_sensor = tb.add('sensor', channel='LIDAR_TOP', modality='lidar')
    lidar2ego = np.asarray(demo_info['lidar_points']['lidar2ego'])
    lidar_calib = tb.add('calibrated_sensor', sensor_token=lidar_sensor['token'], camera_intrinsic=[],
                         translation=lidar2ego[:3, 3].tolist(),
                         rotation=list(Quaternion(matrix=lidar2ego[:3, :3], atol=1e-5).elements))
    cam_calibs = {}
    for cam, cam_info in demo_info['images'].items():
        sensor = tb.add('sensor', channel=cam, modality='camera')
        cam2ego = np.asarray(cam_info['cam2ego'])
        intrinsic = np.asarray(cam_info['cam2img']) * [[IMAGE_SIZE[0] / 1600], [IMAGE_SIZE[1] / 900], [1]]
        cam_calibs[cam] = tb.add('calibrated_sensor', sensor_token=sensor['token'],
                                 camera_intrinsic=intrinsic.tolist(), translation=cam2ego[:3, 3].tolist(),
                                 rotation=list(Quaternion(matrix=cam2ego[:3, :3], atol=1e-5).elements))
    truth = {}
    for scene_name, yaw_rate in SCENES.items():
        scene = tb.add('scene', log_token=log['token'], nbr_samples=NUM_KEYFRAMES, name=scene_name,
                       description='toy')
        samples, lidar_sds, cam_sds, keyframes = [], [], {cam: [] for cam in cam_calibs}, []
        num_sweep_steps = int(round(KEYFRAME_DT / SWEEP_DT))
        for step in range(-NUM_SWEEPS_BEFORE_FIRST, (NUM_KEYFRAMES - 1) * num_sweep_steps + 1):
            t = step * SWEEP_DT
            time_us = BASE_TIME_US + int(round(t * 1e6)) + len(truth) * 100_000_000
            ego2global = pose_matrix(*ego_state(yaw_rate, t))
            is_key = step >= 0 and step % num_sweep_steps == 0
            if is_key:
                samples.append(tb.add('sample', timestamp=time_us, scene_token=scene['token']))
                keyframes.append(dict(token=samples[-1]['token'], time=t, ego2global=ego2global))
            sample_token = samples[-1]['token'] if samples else ''
            folder = 'samples' if is_key else 'sweeps'
            filename = f'{folder}/LIDAR_TOP/{scene_name}__LIDAR_TOP__{time_us}.pcd.bin'
            _write_points(root / filename, ego2global @ lidar2ego, 20, rng)
            pose = tb.add('ego_pose', timestamp=time_us, translation=ego2global[:3, 3].tolist(),
                          rotation=list(Quaternion(matrix=ego2global[:3, :3]).elements))
            lidar_sds.append(tb.add('sample_data', sample_token=sample_token, ego_pose_token=pose['token'],
                                    calibrated_sensor_token=lidar_calib['token'], timestamp=time_us,
                                    fileformat='pcd', is_key_frame=is_key, height=0, width=0, filename=filename))
            if not is_key:
                continue
            for cam_idx, (cam, calib) in enumerate(cam_calibs.items()):
                cam_time_us = time_us - 5_000 * (cam_idx + 1)
                cam_pose = pose_matrix(*ego_state(yaw_rate, t - 0.005 * (cam_idx + 1)))
                cam_ego = tb.add('ego_pose', timestamp=cam_time_us, translation=cam_pose[:3, 3].tolist(),
                                 rotation=list(Quaternion(matrix=cam_pose[:3, :3]).elements))
                cam_file = f'samples/{cam}/{scene_name}__{cam}__{cam_time_us}.jpg'
                (root / cam_file).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / cam_file), np.full((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), 40 * cam_idx, np.uint8))
                cam_sds[cam].append(tb.add('sample_data', sample_token=sample_token, ego_pose_token=cam_ego['token'],
                                           calibrated_sensor_token=calib['token'], timestamp=cam_time_us,
                                           fileformat='jpg', is_key_frame=True, height=IMAGE_SIZE[1],
                                           width=IMAGE_SIZE[0], filename=cam_file))
        _link(samples)
        _link(lidar_sds)
        for chain in cam_sds.values():
            _link(chain)
        scene.update(first_sample_token=samples[0]['token'], last_sample_token=samples[-1]['token'])
        start = pose_matrix(*START_POSE)
        for category, size, offset, velocity in AGENTS:
            instance = tb.add('instance', category_token=categories[category]['token'],
                              nbr_annotations=len(keyframes))
            anns = []
            for keyframe in keyframes:
                local = np.array([offset[0] + velocity[0] * keyframe['time'],
                                  offset[1] + velocity[1] * keyframe['time'], 0.0, 1.0])
                center = start @ local
                center[2] = size[2] / 2
                anns.append(tb.add('sample_annotation', sample_token=keyframe['token'],
                                   instance_token=instance['token'], visibility_token=visibility['token'],
                                   attribute_tokens=[], translation=center[:3].tolist(), size=list(size),
                                   rotation=list(Quaternion(axis=[0, 0, 1], angle=START_POSE[2]).elements),
                                   num_lidar_pts=5, num_radar_pts=0))
            _link(anns)
            instance.update(first_annotation_token=anns[0]['token'], last_annotation_token=anns[-1]['token'])
        if with_occ:
            for keyframe in keyframes:
                write_occ(root / 'occupancy' / scene_name / keyframe['token'] / 'labels.npz')
        truth[scene_name] = keyframes
    table_dir = root / version
    table_dir.mkdir(parents=True, exist_ok=True)
    for name, records in tb.tables.items():
        (table_dir / f'{name}.json').write_text(json.dumps(records))
    (root / 'splits.json').write_text(json.dumps(SPLITS))
    return truth


def write_occ(path: Path, flow: bool = True, semantics_value: int = 16) -> dict:
    """An OpenOcc ``labels.npz`` with one car voxel at [100, 100, 2] moving at (1.5, -0.5) m/s."""
    semantics = np.full(OCC_GRID, semantics_value, dtype=np.uint8)
    semantics[100, 100, 2] = 0
    arrays = dict(semantics=semantics, mask_camera=np.ones_like(semantics), mask_lidar=np.ones_like(semantics))
    if flow:
        arrays['flow'] = np.zeros(OCC_GRID + (2,), dtype=np.float32)
        arrays['flow'][100, 100, 2] = 1.5, -0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays

"""The generated mini set in nuScenes format: devkit loading, boxes vs LiDAR returns, occupancy and
flow vs the world geometry, ego poses, splits, determinism."""
import hashlib
import json

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import points_in_box
from pyquaternion import Quaternion

from drivepi.geometry import OCC_GRID, OCC_RANGE, OCC_VOXEL_SIZE, OPENOCC_CLASSES
from drivepi.sim.calibration import CAMERA_NAMES
from drivepi.sim.geometry import transform_points
from drivepi.sim.mini_dataset import EGO_ROUTES, PRESETS, export_scene, generate_mini_dataset
from drivepi.sim.nuscenes_export import token
from drivepi.sim.sensors import cast_lidar
from drivepi.sim.world import load_scene_world

NUM_SCENES = 2


@pytest.fixture(scope='module')
def sim_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('sim_mini')
    version = generate_mini_dataset(root, num_scenes=NUM_SCENES, seed=0, preset='test')
    return root, version, NuScenes(version=version, dataroot=str(root), verbose=False)


def _pose(record) -> np.ndarray:
    mat = np.eye(4)
    mat[:3, :3] = Quaternion(record['rotation']).rotation_matrix
    mat[:3, 3] = record['translation']
    return mat


def _keyframes(nusc):
    """(scene record, sample, lidar sample_data, frame index) of every keyframe."""
    for scene in nusc.scene:
        tok, k = scene['first_sample_token'], 0
        while tok:
            sample = nusc.get('sample', tok)
            yield scene, sample, nusc.get('sample_data', sample['data']['LIDAR_TOP']), k
            tok, k = sample['next'], k + 1


def _lidar2global(nusc, sd) -> np.ndarray:
    return _pose(nusc.get('ego_pose', sd['ego_pose_token'])) @ _pose(
        nusc.get('calibrated_sensor', sd['calibrated_sensor_token']))


def test_devkit_loads_the_set(sim_set):
    root, version, nusc = sim_set
    preset = PRESETS['test']
    assert version == 'v1.0-drivepi-mini'
    assert len(nusc.scene) == NUM_SCENES and len(nusc.sample) == NUM_SCENES * preset.num_keyframes
    sweeps = [sd for sd in nusc.sample_data if sd['channel'] == 'LIDAR_TOP' and not sd['is_key_frame']]
    assert len(sweeps) == NUM_SCENES * (preset.num_keyframes - 1) * (preset.sweeps_per_keyframe - 1)
    for sample in nusc.sample:
        assert set(sample['data']) == {'LIDAR_TOP', *CAMERA_NAMES}
        assert len(sample['anns']) >= 5
        cam = nusc.get('sample_data', sample['data']['CAM_FRONT'])
        assert (cam['width'], cam['height']) == (preset.sensors.image_width, preset.sensors.image_height)
        assert (root / cam['filename']).read_bytes()[:2] == b'\xff\xd8'   # JPEG
    pc = LidarPointCloud.from_file(str(root / sweeps[0]['filename']))
    assert pc.points.shape[0] == 4 and pc.points.shape[1] > 1000
    names = {c['name'] for c in nusc.category}
    assert {'vehicle.car', 'human.pedestrian.adult', 'movable_object.trafficcone'} <= names
    splits = json.loads((root / 'splits.json').read_text())
    assert splits['train'] == ['scene-0000'] and splits['val'] == ['scene-0001']


def test_boxes_contain_exactly_their_objects_returns(sim_set):
    """Re-cast each keyframe from the world file: the file's points equal the re-cast ones, each
    annotation box (devkit geometry) holds all returns of its object and only those."""
    root, _, nusc = sim_set
    checked = 0
    for scene, sample, sd, k in _keyframes(nusc):
        world = load_scene_world(root, scene['name'])
        t = world.keyframe_times[k]
        assert sample['timestamp'] == world.start_timestamp_us + round(t * 1e6)
        agents = world.agents_at(t)
        scan = cast_lidar(world.mesh(agents), world.sensors, world.ego2global(t))
        points = np.fromfile(root / sd['filename'], dtype=np.float32).reshape(-1, 5)
        np.testing.assert_array_equal(points, scan.points)
        xyz = transform_points(_lidar2global(nusc, sd), points[:, :3].astype(np.float64)).T
        for ann_token in sample['anns']:
            ann = nusc.get('sample_annotation', ann_token)
            idx = agents.tokens.index(ann['instance_token'])
            own = scan.owner == idx
            box = nusc.get_box(ann_token)
            assert ann['num_lidar_pts'] == own.sum()
            assert points_in_box(box, xyz[:, own], wlh_factor=1.01).all()
            inner = points_in_box(box, xyz, wlh_factor=0.98)
            assert np.all(scan.owner[inner] == idx)
            checked += own.sum()
    assert checked > 500


def _voxel_index(points_ego: np.ndarray) -> tuple:
    idx = np.floor((points_ego - np.array(OCC_RANGE[:3])) / OCC_VOXEL_SIZE).astype(int)
    ok = np.all((idx >= 0) & (idx < [200, 200, 16]), axis=1)
    return idx, ok


def test_occupancy_and_flow_agree_with_the_world(sim_set):
    root, _, nusc = sim_set
    stats = dict(surface=[], free=[], flow=[], masked=[])
    for scene, sample, sd, k in _keyframes(nusc):
        world = load_scene_world(root, scene['name'])
        t = world.keyframe_times[k]
        ego2global = world.ego2global(t)
        np.testing.assert_allclose(_pose(nusc.get('ego_pose', sd['ego_pose_token'])), ego2global, atol=1e-6)
        gt = np.load(root / 'occupancy' / scene['name'] / sample['token'] / 'labels.npz')
        sem, flow, mask_cam, mask_lidar = gt['semantics'], gt['flow'], gt['mask_camera'], gt['mask_lidar']
        assert sem.shape == OCC_GRID and flow.shape == OCC_GRID + (2,) and flow.dtype == np.float32
        agents = world.agents_at(t)
        scan = cast_lidar(world.mesh(agents), world.sensors, ego2global)
        pts = transform_points(world.sensors.lidar2ego, scan.points[:, :3].astype(np.float64))
        # a point 5 cm behind each LiDAR hit lies inside the hit surface: occupied by the hit's class
        rays = pts - world.sensors.lidar2ego[:3, 3]
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        idx, ok = _voxel_index(pts + 0.05 * rays)
        stats['surface'].append(sem[tuple(idx[ok].T)] == scan.label[ok])
        stats['masked'].append(mask_lidar[tuple(idx[ok].T)] == 1)
        # half-way to a hit more than 4 m away the ray crosses free space
        far = np.linalg.norm(pts - world.sensors.lidar2ego[:3, 3], axis=1) > 4
        idx, ok = _voxel_index(world.sensors.lidar2ego[:3, 3] + (pts[far] - world.sensors.lidar2ego[:3, 3]) / 2)
        stats['free'].append(sem[tuple(idx[ok].T)] == OPENOCC_CLASSES.index('free'))
        # flow: inside every moving agent its velocity in the ego frame; zero on static classes
        yaw = np.arctan2(ego2global[1, 0], ego2global[0, 0])
        rot = np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]])
        centres = np.c_[agents.boxes[:, :2], agents.boxes[:, 2] + 0.3]
        idx, ok = _voxel_index(transform_points(np.linalg.inv(ego2global), centres))
        for n in np.flatnonzero(ok):
            assert sem[tuple(idx[n])] == OPENOCC_CLASSES.index(_occ_name(agents.categories[n]))
            stats['flow'].append(np.abs(flow[tuple(idx[n])] - rot @ agents.velocities[n]).max())
        static = sem >= OPENOCC_CLASSES.index('driveable_surface')
        assert np.all(flow[static] == 0)
        assert mask_cam.any() and not mask_cam.all() and mask_cam[:, :, 0].sum() == 0   # below the ground
    assert np.mean(np.concatenate(stats['surface'])) > 0.97
    assert np.mean(np.concatenate(stats['free'])) > 0.97
    assert np.mean(np.concatenate(stats['masked'])) > 0.99
    assert max(stats['flow']) < 1e-4 and len(stats['flow']) > 20


def _occ_name(category: str) -> str:
    from drivepi.sim.shapes import CATEGORY_TO_OCC
    return OPENOCC_CLASSES[CATEGORY_TO_OCC[category]]


def test_annotation_velocities_and_ego_motion_are_consistent(sim_set):
    root, _, nusc = sim_set
    errors = []
    for scene, sample, sd, k in _keyframes(nusc):
        world = load_scene_world(root, scene['name'])
        agents = world.agents_at(world.keyframe_times[k])
        for ann_token in sample['anns']:
            ann = nusc.get('sample_annotation', ann_token)
            v = nusc.box_velocity(ann_token)[:2]
            if np.isfinite(v).all():
                errors.append(np.linalg.norm(v - agents.velocities[agents.tokens.index(ann['instance_token'])]))
        if sample['next']:
            nxt = nusc.get('sample_data', nusc.get('sample', sample['next'])['data']['LIDAR_TOP'])
            p0 = np.array(nusc.get('ego_pose', sd['ego_pose_token'])['translation'])
            p1 = np.array(nusc.get('ego_pose', nxt['ego_pose_token'])['translation'])
            i0, i1 = (int(round(world.keyframe_times[j] / 0.05)) for j in (k, k + 1))
            path = np.linalg.norm(np.diff(world.ego_track[i0:i1 + 1, :2], axis=0), axis=1).sum()
            assert np.linalg.norm(p1 - p0) == pytest.approx(path, rel=0.05, abs=0.05)
            assert np.linalg.norm(p1 - p0) == pytest.approx(np.mean(world.ego_track[i0:i1 + 1, 3]) * 0.5, abs=0.3)
            assert p0[2] == 0.0
    # central differences over 1 s: exact on straight constant-speed tracks, close elsewhere
    assert np.median(errors) < 0.05 and np.percentile(errors, 90) < 1.0


def test_ego_routes_turn_as_planned(sim_set):
    root, _, _ = sim_set
    for k in range(NUM_SCENES):
        world = load_scene_world(root, f'scene-{k:04d}')
        first = EGO_ROUTES[k][0]
        assert world.meta['ego_actions'][0] == first
        ego0 = np.linalg.inv(world.ego2global(0.0))
        x, y, _ = world.ego_pose(world.times[-1])
        lateral = transform_points(ego0, np.array([[x, y, 0.0]]))[0, 1]
        assert (lateral > 2.0) if first == 'left' else (lateral < -2.0)


def test_scene_export_is_deterministic(sim_set, tmp_path):
    root, _, _ = sim_set
    records = export_scene(tmp_path, 'scene-0001', 1, EGO_ROUTES[1], PRESETS['test'],
                           start_timestamp_us=1_600_000_000_000_000 + 3_600_000_000)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*') if p.is_file())
    assert len(files) > 40
    for rel in files:
        digest = hashlib.md5((tmp_path / rel).read_bytes()).hexdigest()
        assert digest == hashlib.md5((root / rel).read_bytes()).hexdigest(), rel
    assert records['scene'][0]['token'] == token('scene-0001', 'scene')


def test_two_workers_write_the_same_files(sim_set, tmp_path):
    root, _, _ = sim_set
    generate_mini_dataset(tmp_path, num_scenes=NUM_SCENES, seed=0, preset='test', workers=2)
    files = sorted(p.relative_to(root) for p in root.rglob('*') if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*') if p.is_file())
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_bad_generation_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="preset 'tiny'"):
        generate_mini_dataset(tmp_path, num_scenes=1, seed=0, preset='tiny')
    with pytest.raises(ValueError, match='num_scenes'):
        generate_mini_dataset(tmp_path, num_scenes=0, seed=0, preset='test')
    with pytest.raises(ValueError, match='unknown ray backend'):
        generate_mini_dataset(tmp_path, num_scenes=1, seed=0, preset='test', ray_backend='optix')
    assert not any(tmp_path.iterdir())

"""Recovery samples of the generated mini set (drivepi.sim.recovery, docs/mini_dataset.md): offsets,
recovery labels (start, convergence, comfort), sensors rendered from the displaced pose, train-only
marked infos that create_data, the dataset and the data engine take, determinism per seed."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
from drivepi.sim.geometry import points_in_boxes, pose2d_matrix, transform_points
from drivepi.sim.mini_dataset import PRESETS, generate_mini_dataset
from drivepi.sim.recovery import RECOVERY_LIMITS, RecoverySpec, plan_recovery
from drivepi.sim.sensors import cast_lidar
from drivepi.sim.world import OCC_CLASSES, load_scene_world

REPO = Path(__file__).resolve().parents[2]
COMFORT = Config.fromfile(REPO / 'configs' / '_base_' / 'closed_loop.py').closed_loop['scoring']['comfort_bounds']


@pytest.fixture(scope='module')
def rec_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('sim_recovery')
    version = generate_mini_dataset(root, num_scenes=2, seed=0, preset='test', recovery_per_keyframe=1)
    paths = create_drivepi_infos(root, root, version)
    infos = {split: pickle.loads(Path(p).read_bytes()) for split, p in paths.items()}
    train = infos['train']['data_list']
    by_token = {info['token']: info for info in train}
    recs = [info for info in train if info['recovery']]
    assert recs, 'the test set has no recovery sample'
    table = {r['sample_token']: r for r in json.loads((root / version / 'recovery.json').read_text())}
    return dict(root=root, version=version, paths=paths, infos=infos, recs=recs, by_token=by_token, table=table)


def _offset(rec_info, parent_info) -> np.ndarray:
    """(4,4) recovery ego pose in the parent's ego frame."""
    return np.linalg.inv(np.asarray(parent_info['ego2global'])) @ np.asarray(rec_info['ego2global'])


def test_recovery_only_in_train_marked_and_offset(rec_set):
    root, recs = rec_set['root'], rec_set['recs']
    splits = json.loads((root / 'splits.json').read_text())
    assert splits['val'] == ['scene-0001'] and splits['train'][0] == 'scene-0000'
    assert set(splits['train'][1:]) == {info['scene_name'] for info in recs}
    assert splits['recovery_scenes'] == len(recs) and splits['recovery_per_keyframe'] == 1
    assert not any(info['recovery'] for info in rec_set['infos']['val']['data_list'])
    spec = RecoverySpec()
    for info in recs:
        parent = rec_set['by_token'][info['recovery_parent']]
        assert not parent['recovery'] and parent['scene_name'] == 'scene-0000'
        assert info['scene_name'].startswith('scene-0000-recovery-')
        assert (info['frame_idx'], info['prev'], info['next']) == (0, '', '')
        assert info['timestamp'] == parent['timestamp'] and 2 <= parent['frame_idx'] <= 4
        lateral, heading = info['recovery_offset']
        assert spec.lateral[0] <= abs(lateral) <= spec.lateral[1]
        assert np.deg2rad(spec.heading_deg[0]) <= abs(heading) <= np.deg2rad(spec.heading_deg[1])
        # the perturbed pose: `lateral` m to the left of the expert's rear axle, turned by `heading`
        np.testing.assert_allclose(_offset(info, parent), pose2d_matrix(0.0, lateral, heading), atol=1e-5)
        # sweeps: the last second, rendered for this sample (its own files), ending before it
        assert len(info['lidar_sweeps']) == 2 * PRESETS['test'].sweeps_per_keyframe
        assert all(info['scene_name'] in s['lidar_points']['lidar_path'] for s in info['lidar_sweeps'])
        assert all(s['timestamp'] < info['timestamp'] for s in info['lidar_sweeps'])
        assert all(info['scene_name'] in cam['img_path'] for cam in info['images'].values())
        assert info['occ_path'] == f'occupancy/{info["scene_name"]}/{info["token"]}/labels.npz'


def test_recovery_label_starts_at_the_pose_and_rejoins_the_expert(rec_set):
    for info in rec_set['recs']:
        parent = rec_set['by_token'][info['recovery_parent']]
        rec = rec_set['table'][info['token']]
        np.testing.assert_array_equal(info['ego_fut_mask'], parent['ego_fut_mask'])
        valid = info['ego_fut_mask'] > 0
        # the expert's future in the recovery ego frame
        expert = transform_points(np.linalg.inv(_offset(info, parent)),
                                  np.c_[parent['ego_fut_traj'], np.zeros(6)])[:, :2]
        traj = info['ego_fut_traj']
        speed = np.hypot(*info['ego_status'][:2])
        # first waypoint: driven from the origin at the expert's speed, heading roughly along x
        assert abs(np.linalg.norm(traj[0]) - speed * 0.5) < 0.25 * speed * 0.5 + 0.1
        assert abs(np.arctan2(traj[0, 1], traj[0, 0])) < 0.35
        times = 0.5 * np.arange(1, 7)
        done = valid & (times >= rec['converge_s'] - 1e-6)
        np.testing.assert_allclose(traj[done], expert[done], atol=0.05)  # (the test preset's horizon is short:
        # convergence of the full 3 s path is checked in test_recovery_path_rejoins_the_expert_comfortably)
        # ego status and command follow the recovery ego (status of the displaced expert history)
        np.testing.assert_allclose(info['ego_status'], parent['ego_status'], atol=1e-3)
        assert info['ego_fut_cmd'] in (0, 1, 2)


def _comfort(xy: np.ndarray, dt: float) -> tuple:
    vel = np.gradient(xy, dt, axis=0)
    acc = np.gradient(vel, dt, axis=0)
    speed = np.linalg.norm(vel, axis=1)
    lat = (vel[:, 0] * acc[:, 1] - vel[:, 1] * acc[:, 0]) / np.maximum(speed, 1e-6)
    return np.abs(lat[speed > 0.5]), np.abs(lat / np.maximum(speed, 1e-6))[speed > 0.5]


def test_recovery_path_rejoins_the_expert_comfortably(rec_set):
    assert RECOVERY_LIMITS['max_abs_lat_accel'] <= COMFORT['max_abs_lat_accel']
    assert RECOVERY_LIMITS['max_abs_yaw_rate'] <= COMFORT['max_abs_yaw_rate']
    world = load_scene_world(rec_set['root'], 'scene-0000')
    for info in rec_set['recs']:
        rec = rec_set['table'][info['token']]
        parent = rec_set['by_token'][info['recovery_parent']]
        valid = info['ego_fut_mask'] > 0
        # the 0.5 s label (with the origin) ...
        lat, yaw_rate = _comfort(np.r_[np.zeros((1, 2)), info['ego_fut_traj'][valid]], 0.5)
        assert lat.max(initial=0) <= COMFORT['max_abs_lat_accel'] and yaw_rate.max(initial=0) <= COMFORT[
            'max_abs_yaw_rate']
        # ... and the path it samples, rebuilt from the world file at 0.1 s
        t = parent['frame_idx'] * 0.5
        dense_times = t + np.arange(0.1, 3.5 + 1e-9, 0.1)   # tracks reach 3.5 s past the end
        track = plan_recovery(world, t, rec['lateral_offset'], rec['heading_offset'], dense_times, np.zeros(0),
                              RecoverySpec(converge_s=(rec['converge_s'],)))
        assert track is not None
        xy = np.array([p[:2, 3] for p in [track.pose] + track.future_poses])
        lat, yaw_rate = _comfort(xy, 0.1)
        assert lat[1:-1].max() <= COMFORT['max_abs_lat_accel'] and yaw_rate[1:-1].max() <= COMFORT['max_abs_yaw_rate']
        label = transform_points(np.linalg.inv(np.asarray(info['ego2global'])), np.c_[xy[5:31:5], np.zeros(6)])[:, :2]
        np.testing.assert_allclose(info['ego_fut_traj'][valid], label[valid], atol=1e-3)
        # it starts `lateral` m beside the expert and is back on the expert's positions from `converge_s` on
        expert = np.array([world.ego_pose(tau)[:2] for tau in np.r_[t, dense_times]])
        assert abs(np.linalg.norm(xy[0] - expert[0]) - abs(rec['lateral_offset'])) < 1e-3
        back = np.r_[0.0, dense_times - t] >= rec['converge_s'] - 1e-6
        assert back.sum() >= 5 and np.abs(xy[back] - expert[back]).max() < 0.05
        assert np.linalg.norm(xy[~back] - expert[~back], axis=1).max() > 0.3   # it was off the path before


def test_recovery_lidar_is_rendered_from_the_displaced_pose(rec_set):
    root = rec_set['root']
    world = load_scene_world(root, 'scene-0000')
    static = np.flatnonzero(np.isin(world.static.labels, [OCC_CLASSES.index(c) for c in ('manmade', 'vegetation')]))
    lidar2ego = world.sensors.lidar2ego
    for info in rec_set['recs']:
        parent = rec_set['by_token'][info['recovery_parent']]
        points = np.fromfile(root / 'samples/LIDAR_TOP' / info['lidar_points']['lidar_path'], np.float32).reshape(-1, 5)
        keyframe = np.fromfile(root / 'samples/LIDAR_TOP' / parent['lidar_points']['lidar_path'],
                               np.float32).reshape(-1, 5)
        assert points.shape != keyframe.shape or not np.array_equal(points, keyframe)
        # exactly the scan of the world at the perturbed pose
        t = parent['frame_idx'] * 0.5
        scan = cast_lidar(world.mesh(world.agents_at(t)), world.sensors, np.asarray(info['ego2global']))
        np.testing.assert_array_equal(points, scan.points)
        # returns off buildings / trees: with the offset they land on the world's static solids (parent's ego
        # frame), taken as the parent's own frame (no offset) mostly not
        on = np.isin(scan.label, [OCC_CLASSES.index('manmade'), OCC_CLASSES.index('vegetation')])
        ego = transform_points(lidar2ego, points[on, :3].astype(np.float64))
        boxes = world.static.boxes[static]
        parent2global = np.asarray(parent['ego2global'])
        with_offset = transform_points(parent2global @ _offset(info, parent), ego)
        without = transform_points(parent2global, ego)
        hit_with = points_in_boxes(with_offset, boxes, margin=0.05).any(1).mean()
        hit_without = points_in_boxes(without, boxes, margin=0.05).any(1).mean()
        assert on.sum() > 50 and hit_with > 0.97 and hit_without < 0.7, (hit_with, hit_without)


def test_recovery_occupancy_and_flow_in_the_displaced_frame(rec_set):
    root = rec_set['root']
    world = load_scene_world(root, 'scene-0000')
    for info in rec_set['recs']:
        gt = np.load(root / info['occ_path'])
        t = rec_set['by_token'][info['recovery_parent']]['frame_idx'] * 0.5
        agents = world.agents_at(t)
        ego2global = np.asarray(info['ego2global'])
        yaw = np.arctan2(ego2global[1, 0], ego2global[0, 0])
        rot = np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]])
        centres = transform_points(np.linalg.inv(ego2global), np.c_[agents.boxes[:, :2], agents.boxes[:, 2] + 0.3])
        idx = np.floor((centres - [-40, -40, -1]) / 0.4).astype(int)
        inside = np.all((idx >= 0) & (idx < [200, 200, 16]), axis=1)
        assert inside.sum() > 3
        for n in np.flatnonzero(inside):
            assert gt['semantics'][tuple(idx[n])] < 10
            np.testing.assert_allclose(gt['flow'][tuple(idx[n])], rot @ agents.velocities[n], atol=1e-4)
        # boxes of the info: annotated agents in the recovery LiDAR frame, velocities of the parent keyframe
        assert info['instances'] and all(np.isfinite(i['velocity']).all() or np.isnan(i['velocity']).all()
                                         for i in info['instances'])
        assert len(info['fut_boxes']) == 6


def test_dataset_and_data_engine_take_recovery_samples(rec_set, tmp_path):
    from data_engine.generate_qa import main as generate_qa
    from data_engine.verify import verify_file
    from drivepi.datasets.qa_schema import load_qa_file
    from drivepi.registry import DATASETS
    from drivepi.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(REPO / 'configs' / '_base_' / 'datasets' / 'drivepi_mini.py')
    dataset_cfg = cfg['train_dataloader']['dataset']
    dataset_cfg.update(data_root=str(rec_set['root']) + '/', qa_file=None, ann_file=str(rec_set['paths']['train']))
    dataset = DATASETS.build(dataset_cfg)
    index = next(i for i, info in enumerate(rec_set['infos']['train']['data_list']) if info['recovery'])
    packed = dataset[index]
    sample = packed['data_samples']
    assert sample.token == rec_set['recs'][0]['token'] and packed['inputs']['points'].shape[0] > 100
    np.testing.assert_allclose(sample.gt_traj.numpy(), rec_set['recs'][0]['ego_fut_traj'], atol=1e-6)
    out = tmp_path / 'qa.jsonl'
    generate_qa(['--info', str(rec_set['paths']['train']), '--out', str(out), '--seed', '0'])
    qa = load_qa_file(out)
    assert {info['token'] for info in rec_set['recs']} <= set(qa)
    assert verify_file(rec_set['paths']['train'], out, progress=False).ok


def test_recovery_is_deterministic_per_seed_and_off_by_default(rec_set, tmp_path):
    # one scene: all train; the same seed gives the same recovery samples, byte for byte
    generate_mini_dataset(tmp_path / 'a', num_scenes=1, seed=0, preset='test', recovery_per_keyframe=1)
    table = json.loads((tmp_path / 'a' / rec_set['version'] / 'recovery.json').read_text())
    assert table == list(rec_set['table'].values())
    for rec in table:
        info = next(i for i in rec_set['recs'] if i['token'] == rec['sample_token'])
        name = info['lidar_points']['lidar_path']
        assert (tmp_path / 'a/samples/LIDAR_TOP' / name).read_bytes() == (
            rec_set['root'] / 'samples/LIDAR_TOP' / name).read_bytes()
    generate_mini_dataset(tmp_path / 'b', num_scenes=1, seed=1, preset='test', recovery_per_keyframe=1)
    other = json.loads((tmp_path / 'b' / rec_set['version'] / 'recovery.json').read_text())
    assert [r['lateral_offset'] for r in other] != [r['lateral_offset'] for r in table]
    # off by default: no table, no recovery scene, nothing marked
    generate_mini_dataset(tmp_path / 'c', num_scenes=1, seed=0, preset='test')
    assert not (tmp_path / 'c' / rec_set['version'] / 'recovery.json').exists()
    splits = json.loads((tmp_path / 'c' / 'splits.json').read_text())
    assert splits['train'] == ['scene-0000'] and 'recovery_scenes' not in splits

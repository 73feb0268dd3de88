"""Info creation (tools/create_data.py, drivepi.datasets.converters) on hand-made nuScenes tables with
known ego motion, and on the generated mini set."""
import importlib.util
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from nuscenes_tables import (
    AGENTS,
    KEYFRAME_DT,
    LANDMARKS_GLOBAL,
    NUM_KEYFRAMES,
    SCENES,
    SPEED,
    SPLITS,
    START_POSE,
    ego_state,
    make_toy_nuscenes,
    pose_matrix,
)

from drivepi.datasets.converters.ego_motion import driving_command, ego_status
from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
from drivepi.geometry import COMMANDS

CONTRACT_KEYS = ('sample_idx', 'token', 'timestamp', 'ego2global', 'lidar_points', 'lidar_sweeps', 'images',
                 'instances', 'scene_token', 'scene_name', 'frame_idx', 'prev', 'next', 'occ_path', 'ego_fut_traj',
                 'ego_fut_mask', 'ego_fut_cmd', 'ego_status', 'fut_boxes', 'map_location')


@pytest.fixture(scope='module')
def demo_info(demo_dir):
    with open(demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl', 'rb') as f:
        return pickle.load(f)['data_list'][0]


@pytest.fixture(scope='module')
def toy(tmp_path_factory, demo_info):
    root = tmp_path_factory.mktemp('toy_nuscenes')
    truth = make_toy_nuscenes(root, demo_info)
    paths = create_drivepi_infos(root, root / 'infos', 'v1.0-drivepi-mini')
    infos = {split: pickle.loads(path.read_bytes()) for split, path in paths.items()}
    return dict(root=root, truth=truth, infos=infos, paths=paths)


def all_infos(toy):
    return toy['infos']['train']['data_list'] + toy['infos']['val']['data_list']


def test_splits_keys_and_metainfo(toy):
    for split in ('train', 'val'):
        data = toy['infos'][split]
        assert [info['scene_name'] for info in data['data_list']][::NUM_KEYFRAMES] == SPLITS[split]
        assert len(data['data_list']) == NUM_KEYFRAMES * len(SPLITS[split])
        assert [info['sample_idx'] for info in data['data_list']] == list(range(len(data['data_list'])))
        assert data['metainfo']['dataset'] == 'drivepi-mini'
        assert data['metainfo']['info_version'] == 'drivepi-1.0'
        assert len(data['metainfo']['occ_classes']) == 17 and data['metainfo']['occ_classes'][16] == 'free'
        assert data['metainfo']['categories']['car'] == 0
    for info in all_infos(toy):
        assert set(CONTRACT_KEYS) <= set(info), set(CONTRACT_KEYS) - set(info)
        keyframes = toy['truth'][info['scene_name']]
        assert info['token'] == keyframes[info['frame_idx']]['token']
        assert info['prev'] == (keyframes[info['frame_idx'] - 1]['token'] if info['frame_idx'] else '')
        assert info['next'] == (keyframes[info['frame_idx'] + 1]['token'] if info['frame_idx'] + 1 < NUM_KEYFRAMES
                                else '')
        np.testing.assert_allclose(info['ego2global'], keyframes[info['frame_idx']]['ego2global'], atol=1e-6)
        assert (toy['root'] / info['occ_path']).is_file()
        assert info['occ_path'] == f'occupancy/{info["scene_name"]}/{info["token"]}/labels.npz'
        assert info['map_location'] == 'singapore-onenorth'
        assert len(info['images']) == 6


def expected_trajectory(yaw_rate: float, frame_idx: int):
    """Future (x, y) in the current ego frame from the analytic path, and the mask."""
    t_now = frame_idx * KEYFRAME_DT
    x0, y0, yaw0 = ego_state(yaw_rate, t_now)
    traj, mask = np.zeros((6, 2)), np.zeros(6)
    for step in range(6):
        if frame_idx + step + 1 >= NUM_KEYFRAMES:
            continue
        x, y, _ = ego_state(yaw_rate, t_now + (step + 1) * KEYFRAME_DT)
        dx, dy = x - x0, y - y0
        traj[step] = np.cos(yaw0) * dx + np.sin(yaw0) * dy, -np.sin(yaw0) * dx + np.cos(yaw0) * dy
        mask[step] = 1
    return traj, mask


def test_trajectory_and_command_follow_ego_poses(toy):
    seen_commands = set()
    for info in all_infos(toy):
        yaw_rate = SCENES[info['scene_name']]
        traj, mask = expected_trajectory(yaw_rate, info['frame_idx'])
        assert info['ego_fut_traj'].dtype == np.float32 and info['ego_fut_traj'].shape == (6, 2)
        np.testing.assert_allclose(info['ego_fut_traj'], traj, atol=1e-4)
        np.testing.assert_array_equal(info['ego_fut_mask'], mask)
        valid = np.flatnonzero(mask)
        lateral = traj[valid[-1], 1] if valid.size else 0.0
        expected_cmd = 0 if lateral <= -2 else 1 if lateral >= 2 else 2
        assert info['ego_fut_cmd'] == expected_cmd
        seen_commands.add(COMMANDS[info['ego_fut_cmd']])
    # the straight scene goes straight; the arcs turn left / right while 3 s of future remain
    assert seen_commands == set(COMMANDS)
    first_frames = {info['scene_name']: info['ego_fut_cmd'] for info in all_infos(toy) if info['frame_idx'] == 0}
    assert first_frames == {'scene-0061': 2, 'scene-0103': 1, 'scene-0553': 0}


@pytest.mark.parametrize('lateral, expected', [(-3.0, 0), (-2.0, 0), (-1.9, 2), (0.0, 2), (1.9, 2), (2.0, 1),
                                               (7.5, 1)])
def test_command_thresholds(lateral, expected):
    traj = np.zeros((6, 2), dtype=np.float32)
    traj[:, 0] = np.arange(1, 7)
    traj[3, 1] = lateral  # last valid waypoint is step 3
    traj[5, 1] = -50.0  # beyond the mask: must be ignored
    mask = np.array([1, 1, 1, 1, 0, 0], dtype=np.float32)
    assert driving_command(traj, mask) == expected
    assert driving_command(traj, np.zeros(6)) == 2


def test_ego_status_matches_constant_turn(toy):
    for info in all_infos(toy):
        yaw_rate = SCENES[info['scene_name']]
        status = info['ego_status']
        assert status.dtype == np.float32 and status.shape == (5,)
        # chord speed over a 0.5 s interval of a circle: 2 R sin(w dt / 2) / dt
        chord_speed = (SPEED if yaw_rate == 0
                       else 2 * SPEED / yaw_rate * np.sin(yaw_rate * KEYFRAME_DT / 2) / KEYFRAME_DT)
        np.testing.assert_allclose(np.hypot(status[0], status[1]), abs(chord_speed), rtol=1e-4)
        np.testing.assert_allclose(status[4], yaw_rate, atol=1e-4)
        assert status[0] > 5.5  # driving forwards
        if info['frame_idx'] >= 2:  # two past chords, at headings -w dt / 2 and -3 w dt / 2 in the ego frame
            angles = -yaw_rate * KEYFRAME_DT * np.array([0.5, 1.5])
            chords = abs(chord_speed) * np.stack([np.cos(angles), np.sin(angles)], 1)
            np.testing.assert_allclose(status[2:4], (chords[0] - chords[1]) / KEYFRAME_DT, atol=1e-3)
            np.testing.assert_allclose(status[3], SPEED * yaw_rate, atol=0.15)  # ~ centripetal v * w


def test_ego_status_hand_computed():
    # straight at 2 m/s then 4 m/s along global +y, ego heading +y (yaw 90 deg): forward = ego x
    poses = [pose_matrix(0, y, np.pi / 2) for y in (0.0, 1.0, 3.0)]
    status = ego_status([0.0, 0.5, 1.0], poses, now_index=2)
    np.testing.assert_allclose(status, [4.0, 0.0, 4.0, 0.0, 0.0], atol=1e-6)
    forward_status = ego_status([0.0, 0.5, 1.0], poses, now_index=0)
    np.testing.assert_allclose(forward_status, [2.0, 0.0, 4.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(ego_status([0.0], poses[:1], 0), np.zeros(5))
    with pytest.raises(ValueError, match='increasing'):
        ego_status([0.0, 0.0], poses[:2], 1)


def agent_box_global(agent_index: int, t: float) -> tuple:
    _, size, offset, velocity = AGENTS[agent_index]
    start = pose_matrix(*START_POSE)
    center = start @ np.array([offset[0] + velocity[0] * t, offset[1] + velocity[1] * t, 0.0, 1.0])
    return center[:2], size, START_POSE[2]


def to_frame(frame2global: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return (np.linalg.inv(frame2global) @ np.append(xyz, 1.0))[:3]


def test_future_boxes_in_current_ego_frame(toy):
    for info in all_infos(toy):
        t_now = info['frame_idx'] * KEYFRAME_DT
        ego2global = pose_matrix(*ego_state(SCENES[info['scene_name']], t_now))
        assert len(info['fut_boxes']) == 6
        for step, boxes in enumerate(info['fut_boxes']):
            assert boxes.dtype == np.float32 and boxes.shape[1] == 7
            if info['frame_idx'] + step + 1 >= NUM_KEYFRAMES:
                assert boxes.shape == (0, 7)
                continue
            assert boxes.shape == (2, 7)  # car + pedestrian; the debris is no detection class
            xy, size, yaw = agent_box_global(0, t_now + (step + 1) * KEYFRAME_DT)
            expected = to_frame(ego2global, np.array([*xy, 0.0]))
            car = boxes[np.argmax(boxes[:, 3])]
            np.testing.assert_allclose(car[:3], expected, atol=1e-3)  # z_bottom on the ground
            np.testing.assert_allclose(car[3:6], [size[1], size[0], size[2]], atol=1e-6)
            heading = np.arctan2(np.sin(yaw - ego_state(SCENES[info['scene_name']], t_now)[2]),
                                 np.cos(yaw - ego_state(SCENES[info['scene_name']], t_now)[2]))
            np.testing.assert_allclose(car[6], heading, atol=1e-5)


def test_instances_in_lidar_frame(toy):
    for info in all_infos(toy):
        t_now = info['frame_idx'] * KEYFRAME_DT
        lidar2global = np.asarray(info['ego2global']) @ np.asarray(info['lidar_points']['lidar2ego'])
        labels = sorted(inst['bbox_label_3d'] for inst in info['instances'])
        assert labels == [-1, 0, 7]  # debris (unmapped), car, pedestrian
        car = next(inst for inst in info['instances'] if inst['bbox_label_3d'] == 0)
        xy, size, _ = agent_box_global(0, t_now)
        centre_lidar = np.array(car['bbox_3d'][:3]) + [0.0, 0.0, car['bbox_3d'][5] / 2]  # z_bottom + h / 2
        centre_global = lidar2global @ np.append(centre_lidar, 1.0)
        np.testing.assert_allclose(centre_global[:3], [*xy, size[2] / 2], atol=1e-4)
        # the car drives 4 m/s along the start heading; nuScenes velocity by annotation differences
        velocity_global = 4.0 * np.array([np.cos(START_POSE[2]), np.sin(START_POSE[2]), 0.0])
        np.testing.assert_allclose(car['velocity'], (lidar2global[:3, :3].T @ velocity_global)[:2], atol=1e-6)
        assert car['bbox_3d_isvalid'] and car['num_lidar_pts'] == 5 and car['instance_token']


def test_sweeps_register_onto_keyframe(toy):
    """Inverting lidar2sensor maps the landmarks of every sweep file onto the keyframe's landmarks."""
    root = toy['root']
    for info in all_infos(toy):
        key_points = np.fromfile(root / 'samples/LIDAR_TOP' / info['lidar_points']['lidar_path'],
                                 dtype=np.float32).reshape(-1, 5)[:len(LANDMARKS_GLOBAL), :3]
        expected_sweeps = min(10, info['frame_idx'] * 5 + 2)
        assert len(info['lidar_sweeps']) == expected_sweeps
        times = [sweep['timestamp'] for sweep in info['lidar_sweeps']]
        assert np.all(np.diff([info['timestamp']] + times) < 0)  # newest first, seconds
        np.testing.assert_allclose(info['timestamp'] - times[0], 0.1, atol=1e-6)
        for sweep in info['lidar_sweeps']:
            sweep_points = np.fromfile(root / sweep['lidar_points']['lidar_path'],
                                       dtype=np.float32).reshape(-1, 5)[:len(LANDMARKS_GLOBAL), :3]
            sensor2lidar = np.linalg.inv(np.asarray(sweep['lidar_points']['lidar2sensor'], dtype=np.float64))
            registered = sweep_points @ sensor2lidar[:3, :3].T + sensor2lidar[:3, 3]
            np.testing.assert_allclose(registered, key_points, atol=2e-3)


def test_camera_extrinsics_include_ego_motion(toy, demo_info):
    info = next(i for i in all_infos(toy) if i['scene_name'] == 'scene-0103' and i['frame_idx'] == 3)
    key_lidar2global = np.asarray(info['ego2global']) @ np.asarray(info['lidar_points']['lidar2ego'])
    for cam_idx, (cam, cam_info) in enumerate(demo_info['images'].items()):
        entry = info['images'][cam]
        cam_time = info['frame_idx'] * KEYFRAME_DT - 0.005 * (cam_idx + 1)
        cam2global = pose_matrix(*ego_state(SCENES['scene-0103'], cam_time)) @ np.asarray(cam_info['cam2ego'])
        expected = np.linalg.inv(cam2global) @ key_lidar2global
        np.testing.assert_allclose(entry['lidar2cam'], expected, atol=1e-4)
        np.testing.assert_allclose(entry['cam2ego'], cam_info['cam2ego'], atol=1e-6)
        assert (toy['root'] / 'samples' / cam / entry['img_path']).is_file()
        np.testing.assert_allclose(info['timestamp'] - entry['timestamp'], 0.005 * (cam_idx + 1), atol=1e-6)


def test_official_split_for_real_versions(tmp_path, demo_info):
    make_toy_nuscenes(tmp_path, demo_info, version='v1.0-mini', with_occ=False)
    with pytest.warns(UserWarning, match='occupancy root'):
        paths = create_drivepi_infos(tmp_path, tmp_path, 'v1.0-mini', max_sweeps=2, occ_format='occ3d')
    infos = {split: pickle.loads(path.read_bytes()) for split, path in paths.items()}
    # nuscenes-devkit mini_train holds scene-0061 and scene-0553, mini_val scene-0103
    assert sorted({i['scene_name'] for i in infos['train']['data_list']}) == ['scene-0061', 'scene-0553']
    assert {i['scene_name'] for i in infos['val']['data_list']} == {'scene-0103'}
    assert infos['train']['metainfo']['dataset'] == 'nuscenes'
    assert infos['train']['metainfo']['occ_classes'][0] == 'others'
    assert len(infos['val']['metainfo']['occ_classes']) == 18
    assert all(i['occ_path'] == '' for i in infos['train']['data_list'])
    assert all(len(i['lidar_sweeps']) <= 2 for i in infos['train']['data_list'])


@pytest.fixture()
def toy_copy(tmp_path, toy):
    root = tmp_path / 'toy'
    shutil.copytree(toy['root'], root, ignore=shutil.ignore_patterns('infos'))
    return root


def test_truncated_lidar_file_is_named(toy_copy):
    sweep = sorted((toy_copy / 'sweeps/LIDAR_TOP').glob('scene-0553*'))[3]
    sweep.write_bytes(sweep.read_bytes()[:-7])
    with pytest.raises(ValueError, match=f'{sweep.name}.*truncated'):
        create_drivepi_infos(toy_copy, toy_copy, 'v1.0-drivepi-mini')


def test_missing_camera_file_is_named(toy_copy):
    image = sorted((toy_copy / 'samples/CAM_BACK_LEFT').glob('scene-0061*'))[2]
    image.unlink()
    with pytest.raises(FileNotFoundError, match=image.name):
        create_drivepi_infos(toy_copy, toy_copy, 'v1.0-drivepi-mini')


def test_truncated_jpeg_is_named(toy_copy):
    image = sorted((toy_copy / 'samples/CAM_FRONT').glob('scene-0103*'))[0]
    image.write_bytes(image.read_bytes()[:-20])
    with pytest.raises(ValueError, match=f'{image.name}.*truncated JPEG'):
        create_drivepi_infos(toy_copy, toy_copy, 'v1.0-drivepi-mini')


def test_missing_occupancy_file_is_named(toy_copy):
    occ = next((toy_copy / 'occupancy/scene-0553').rglob('labels.npz'))
    occ.unlink()
    with pytest.raises(FileNotFoundError, match='occupancy GT file not found'):
        create_drivepi_infos(toy_copy, toy_copy, 'v1.0-drivepi-mini')


def test_missing_split_file_is_named(toy_copy):
    (toy_copy / 'splits.json').unlink()
    with pytest.raises(FileNotFoundError, match='splits.json'):
        create_drivepi_infos(toy_copy, toy_copy, 'v1.0-drivepi-mini')


def test_cli_writes_the_same_infos(toy, tmp_path, monkeypatch):
    tool = Path(__file__).resolve().parents[2] / 'tools' / 'create_data.py'
    spec = importlib.util.spec_from_file_location('create_data', tool)
    create_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(create_data)
    monkeypatch.setattr(sys, 'argv', ['create_data.py', 'nuscenes', '--root-path', str(toy['root']),
                                      '--out-dir', str(tmp_path), '--version', 'v1.0-drivepi-mini'])
    create_data.main()
    written = pickle.loads((tmp_path / 'drivepi_infos_val.pkl').read_bytes())
    reference = toy['infos']['val']
    assert [i['token'] for i in written['data_list']] == [i['token'] for i in reference['data_list']]
    np.testing.assert_array_equal(written['data_list'][0]['ego_fut_traj'], reference['data_list'][0]['ego_fut_traj'])
    assert not list(tmp_path.glob('.*.tmp'))  # atomic write left no temporary file


def test_generated_mini_set(mini_dataset):
    """The generator's set converts; its trajectories agree with its ego poses."""
    from nuscenes import NuScenes
    nusc = NuScenes(version=mini_dataset['version'], dataroot=str(mini_dataset['root']), verbose=False)
    for split in ('train', 'val'):
        data = pickle.loads(Path(mini_dataset[f'{split}_info']).read_bytes())
        assert data['data_list'] and data['metainfo']['dataset'] == 'drivepi-mini'
        for info in data['data_list']:
            assert set(CONTRACT_KEYS) <= set(info)
            assert (Path(mini_dataset['root']) / info['occ_path']).is_file()
            sample = nusc.get('sample', info['token'])
            ego2global = np.asarray(info['ego2global'])
            for step in range(6):
                if not sample['next']:
                    assert info['ego_fut_mask'][step:].sum() == 0
                    break
                sample = nusc.get('sample', sample['next'])
                pose = nusc.get('ego_pose', nusc.get('sample_data', sample['data']['LIDAR_TOP'])['ego_pose_token'])
                expected = (np.linalg.inv(ego2global) @ np.append(pose['translation'], 1.0))[:2]
                np.testing.assert_allclose(info['ego_fut_traj'][step], expected, atol=1e-3)
                assert info['ego_fut_mask'][step] == 1

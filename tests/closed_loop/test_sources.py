"""Scene sources of the closed loop: mini worlds (re-rendered sensors) and nuScenes log replay."""
import mmengine
import numpy as np
import pytest

from drivepi.closed_loop.episode import EpisodeRunner
from drivepi.closed_loop.planners import ConstantVelocityPlanner, ExpertPlanner
from drivepi.closed_loop.sources import MiniWorldSource, NuScenesLogSource, load_scene_infos
from drivepi.sim.geometry import matrix_to_pose2d, transform_points

DEMO_INFO = 'n015-2018-07-24-11-22-45+0800.pkl'


@pytest.fixture(scope='module')
def mini_scenes(mini_dataset):
    infos, metainfo = load_scene_infos(mini_dataset['train_info'])
    assert metainfo['info_version'] == 'drivepi-1.0'
    infos.update(load_scene_infos(mini_dataset['val_info'])[0])
    return infos


def test_rerendered_sweep_at_logged_pose_matches_stored_one(mini_dataset, mini_scenes):
    root = mini_dataset['root']
    for scene, infos in mini_scenes.items():
        source = MiniWorldSource(root, scene)
        for info in infos[::2]:
            t = info['timestamp'] - source.timestamp_offset
            x, y, yaw = source.expert_pose(t)
            np.testing.assert_allclose([x, y], np.asarray(info['ego2global'])[:2, 3], atol=1e-3)
            assert yaw == pytest.approx(matrix_to_pose2d(np.asarray(info['ego2global']))[2], abs=1e-4)
            stored = np.fromfile(root / 'samples' / 'LIDAR_TOP' / info['lidar_points']['lidar_path'],
                                 dtype=np.float32).reshape(-1, 5)
            rendered = source.render_lidar(source.ego2global(x, y, yaw, t), source.agents_at(t), t)
            assert rendered.shape == stored.shape
            # same rays, same world: ring and intensity equal, positions equal up to the world file's rounding
            np.testing.assert_array_equal(rendered[:, 4], stored[:, 4])
            assert np.median(np.linalg.norm(rendered[:, :3] - stored[:, :3], axis=1)) < 1e-3
            assert np.mean(np.linalg.norm(rendered[:, :3] - stored[:, :3], axis=1) < 0.05) > 0.999


def test_expert_replay_in_mini_worlds_has_no_collision_and_stays_on_road(mini_dataset, mini_scenes):
    for mode in ('log_replay', 'idm'):
        runner = EpisodeRunner(agents=dict(mode=mode))
        for scene in mini_scenes:
            source = MiniWorldSource(mini_dataset['root'], scene)
            log = runner.run(source, ExpertPlanner(), 'expert', source.start_time, source.end_time, scene)
            assert log['status'] == 'ok'
            assert log['metrics']['nc'] == 1.0 and log['metrics']['dac'] == 1.0
            assert log['metrics']['ep'] > 0.95
            np.testing.assert_allclose(np.array(log['ego'])[:, :2], np.array(log['expert'])[:, :2], atol=0.5)
            if mode == 'log_replay':
                cv = runner.run(source, ConstantVelocityPlanner(), 'cv', source.start_time, source.end_time, scene)
                assert cv['status'] == 'ok' and 0.0 <= cv['metrics']['pdms'] <= 1.0


@pytest.fixture(scope='module')
def demo_source(demo_dir):
    infos = mmengine.load(str(demo_dir / DEMO_INFO))['data_list']
    return NuScenesLogSource(infos, demo_dir, data_prefix={}), infos[0]


def test_nuscenes_sweep_reexpressed_at_simulated_pose(demo_source, demo_dir):
    source, info = demo_source
    stored = np.fromfile(demo_dir / info['lidar_points']['lidar_path'], dtype=np.float32).reshape(-1, 5)
    x, y, yaw = source.expert_pose(0.0)
    logged = source.ego2global(x, y, yaw, 0.0)
    np.testing.assert_allclose(logged, np.asarray(info['ego2global']), atol=1e-9)
    np.testing.assert_allclose(source.render_lidar(logged, source.agents_at(0.0), 0.0), stored, atol=1e-4)
    # 2 m further along the heading: in the ego frame every point moves 2 m back (x), the
    # attributes stay; the LiDAR frame of the real car is rotated ~90 deg from the ego frame
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'])
    moved = source.render_lidar(source.ego2global(x + 2 * np.cos(yaw), y + 2 * np.sin(yaw), yaw, 0.0), None, 0.0)
    np.testing.assert_allclose(transform_points(lidar2ego, moved[:, :3].astype(np.float64)),
                               transform_points(lidar2ego, stored[:, :3].astype(np.float64)) - [2.0, 0.0, 0.0],
                               atol=0.05)
    np.testing.assert_array_equal(moved[:, 3:], stored[:, 3:])
    images = source.render_cameras(logged, None, 0.0)
    assert sorted(images) == sorted(info['images']) and images['CAM_FRONT'].shape == (900, 1600, 3)


def test_nuscenes_expert_pose_interpolates_keyframes_and_extrapolates(demo_source):
    _, info = demo_source
    first = np.asarray(info['ego2global'])
    x0, y0, yaw0 = matrix_to_pose2d(first)
    second = first.copy()
    second[:2, 3] += 5.0 * np.array([np.cos(yaw0), np.sin(yaw0)])  # 5 m ahead 0.5 s later: 10 m/s
    turn = np.array([[np.cos(0.2), -np.sin(0.2), 0], [np.sin(0.2), np.cos(0.2), 0], [0, 0, 1]])
    second[:3, :3] = turn @ first[:3, :3]  # 0.2 rad to the left
    source = NuScenesLogSource([info, dict(info, ego2global=second.tolist(), timestamp=info['timestamp'] + 0.5)],
                               '.', {})
    assert (source.start_time, source.end_time) == (0.0, 0.5)
    np.testing.assert_allclose(source.expert_pose(0.25)[:2], [x0 + 2.5 * np.cos(yaw0), y0 + 2.5 * np.sin(yaw0)])
    assert source.expert_pose(0.25)[2] == pytest.approx(np.angle(np.exp(1j * (yaw0 + 0.1))))
    np.testing.assert_allclose(source.expert_pose(1.0)[:2], [x0 + 10 * np.cos(yaw0), y0 + 10 * np.sin(yaw0)])
    # the lifted pose keeps the keyframe's height, roll and pitch and takes the simulated yaw
    lifted = source.ego2global(x0, y0, yaw0 + 0.2, 0.5)
    np.testing.assert_allclose(lifted[:3, :3], second[:3, :3], atol=1e-9)
    assert lifted[2, 3] == second[2, 3]


def test_nuscenes_agents_and_missing_map(demo_source, demo_dir, tmp_path):
    source, info = demo_source
    agents = source.agents_at(0.0)
    assert len(agents) == len(info['instances'])
    labels = [i['bbox_label_3d'] for i in info['instances']]
    assert agents.categories[labels.index(0)] == 'vehicle.car'
    assert agents.categories[labels.index(7)] == 'human.pedestrian.adult'
    # box centres: LiDAR frame -> global, independent of the source's code path
    lidar2global = np.asarray(info['ego2global']) @ np.asarray(info['lidar_points']['lidar2ego'])
    centres = transform_points(lidar2global, np.array([i['bbox_3d'][:3] for i in info['instances']]))
    np.testing.assert_allclose(agents.boxes[:, :3], centres, atol=1e-6)
    one_second = source.agents_at(1.0)
    np.testing.assert_allclose(one_second.boxes[:, :2] - agents.boxes[:, :2], agents.velocities, atol=1e-9)
    with pytest.raises(FileNotFoundError, match='map expansion'):
        NuScenesLogSource([dict(info, map_location='boston-seaport')], demo_dir, {}, map_root=tmp_path)

"""The model planner: sensors re-rendered at the simulated pose go through the real test pipeline."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from scipy.spatial import cKDTree

from drivepi.closed_loop.episode import EpisodeRunner
from drivepi.closed_loop.kinematics import EgoState
from drivepi.closed_loop.model_planner import ModelPlanner
from drivepi.closed_loop.planners import PlanningContext, route_ahead
from drivepi.closed_loop.sources import MiniWorldSource, load_scene_infos
from drivepi.datasets.converters.ego_motion import driving_command
from drivepi.registry import MODELS
from drivepi.sim.geometry import transform_points
from drivepi.utils import register_all_modules

REPO = Path(__file__).resolve().parents[2]
BASES = ('configs/_base_/models/drivepi_mini.py', 'configs/_base_/datasets/drivepi_mini.py',
         'configs/_base_/closed_loop.py')


@pytest.fixture(scope='module')
def setup(mini_dataset, tiny_llm_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('closed_loop_model')
    config = tmp / 'drivepi_mini_closed_loop.py'
    config.write_text('_base_ = [' + ', '.join(f"'{REPO / base}'" for base in BASES) + ']\n')
    cfg = Config.fromfile(str(config))
    cfg.model.llm.llm_path = str(tiny_llm_dir)
    cfg.closed_loop.update(data_root=str(mini_dataset['root']), info_file=str(mini_dataset['val_info']))
    register_all_modules()
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, tmp / 'model.pth')
    scene_infos, metainfo = load_scene_infos(mini_dataset['val_info'])
    planner = ModelPlanner.from_config(cfg, tmp / 'model.pth', scene_infos, metainfo, tmp / 'inputs')
    scene = next(iter(scene_infos))
    return planner, MiniWorldSource(mini_dataset['root'], scene)


def deviated_context(source, steps=6, lateral=0.8):
    """Expert states for ``steps`` sim steps, then the ego 0.8 m to the left of the expert."""
    history = []
    for k in range(steps):
        x, y, yaw = source.expert_pose(0.1 * k)
        history.append(EgoState(x, y, yaw, v=0.0, t=0.1 * k))
    x, y, yaw = source.expert_pose(0.1 * steps)
    ego = EgoState(x - lateral * np.sin(yaw), y + lateral * np.cos(yaw), yaw, v=5.0, t=0.1 * steps)
    agents = [source.agents_at(s.t) for s in history]
    return PlanningContext(source, ego, source.agents_at(ego.t), history, agents, episode_id='dev')


def test_model_inputs_are_the_sensors_rerendered_at_the_simulated_pose(setup):
    planner, source = setup
    ctx = deviated_context(source)
    info = planner.build_info(ctx)
    ego2global = source.ego2global(ctx.ego.x, ctx.ego.y, ctx.ego.yaw, ctx.ego.t)
    np.testing.assert_allclose(np.asarray(info['ego2global']), ego2global)
    rendered = source.render_lidar(ego2global, ctx.agents, ctx.ego.t)
    written = np.fromfile(planner.work_dir / 'samples' / 'LIDAR_TOP' / info['lidar_points']['lidar_path'],
                          dtype=np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(written, rendered)
    assert len(info['lidar_sweeps']) == planner.num_sweeps > 0
    assert info['ego_fut_cmd'] == driving_command(route_ahead(ctx), np.ones(6))
    assert info['ego_fut_mask'].sum() == 0 and info['occ_path'] == '' and info['instances'] == []
    sample = planner.dataset.pipeline(planner.dataset.parse_data_info(info))
    points = sample['inputs']['points'].numpy()
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'])
    current, earlier = points[points[:, 4] == 0], points[points[:, 4] > 0]
    # the key sweep is the rendered one, moved into the ego frame
    dist, _ = cKDTree(transform_points(lidar2ego, rendered[:, :3].astype(np.float64))).query(current[:, :3])
    assert len(current) > 1000 and dist.max() < 1e-3
    # earlier sweeps are motion-compensated into the current ego frame: static structure lines up
    # (the ego moved ~0.8 m sideways and along the road between them)
    aligned, _ = cKDTree(current[:, :3]).query(earlier[:, :3])
    assert len(earlier) > 1000 and np.median(aligned) < 0.15
    assert sample['data_samples'].ego_fut_cmd == info['ego_fut_cmd']


def test_model_planner_drives_an_episode(setup):
    planner, source = setup
    log = EpisodeRunner().run(source, planner, 'model', 0.0, 1.0, 'model-episode')
    assert len(log['ego']) == len(log['times'])
    if log['status'] == 'ok':
        assert len(log['plans']) == 2 and np.isfinite(np.array(log['plans'][0]['waypoints'])).all()
        assert 0.0 <= log['metrics']['pdms'] <= 1.0
    else:  # an untrained model may plan absurdly: recorded, not raised
        assert 'plan' in log['failure']['reason']


def test_nan_trajectory_from_the_model_fails_only_that_episode(setup, monkeypatch):
    planner, source = setup
    real_test_step = planner.model.test_step

    def nan_test_step(data):
        out = real_test_step(data)
        out[0].pred_traj = torch.full_like(out[0].pred_traj, float('nan'))
        return out

    monkeypatch.setattr(planner.model, 'test_step', nan_test_step)
    log = EpisodeRunner().run(source, planner, 'model', 0.0, 1.0, 'nan-episode')
    assert log['status'] == 'failed' and log['metrics'] is None
    assert log['failure']['step'] == 0 and 'non-finite' in log['failure']['reason']


def test_model_planner_pickles_as_its_recipe_and_plans_benchmark_worlds(setup):
    """Workers rebuild the planner from its recipe; a world outside the info file (a benchmark world) takes the
    info file's calibration and plans like the original planner."""
    import pickle

    from drivepi.sim.generator import generate_scenario_world
    from drivepi.sim.scenarios import HELD_OUT_SEEDS
    planner, source = setup
    world = generate_scenario_world('bench-x', HELD_OUT_SEEDS.start, 'straight', 3.0, source.world.sensors)
    bench = MiniWorldSource.from_world(world)
    clone = pickle.loads(pickle.dumps(planner))
    assert clone.checkpoint_digest == planner.checkpoint_digest and clone.model is not planner.model
    ctx = deviated_context(bench, steps=2)
    info = planner.build_info(ctx)
    assert info['lidar_points']['lidar2ego'] == next(iter(planner.scene_infos.values()))[0]['lidar_points']['lidar2ego']
    np.testing.assert_allclose(clone.plan(ctx), planner.plan(ctx), atol=1e-5)


def test_empty_sweep_fails_the_episode_not_the_run():
    """A simulated ego that drove into a building sees no LiDAR return: that episode fails (PlanError)."""
    from drivepi.closed_loop.episode import PlanError
    from drivepi.closed_loop.model_planner import lidar_bytes
    assert lidar_bytes(np.ones((2, 5)), 0.0) == np.ones((2, 5), np.float32).tobytes()
    with pytest.raises(PlanError, match='no LiDAR return'):
        lidar_bytes(np.zeros((0, 5), np.float32), 3.5)

"""The closed-loop benchmark: its definition, held-out seeds, scenario worlds, grouped scores, workers, resume."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import shapely
from closed_loop_scenes import make_scene
from mmengine.config import Config

from drivepi.closed_loop.benchmark import BenchmarkWorlds, benchmark_episodes
from drivepi.closed_loop.episode import EpisodeRunner
from drivepi.closed_loop.planners import ConstantVelocityPlanner, ExpertPlanner
from drivepi.closed_loop.runner import OVERALL, ClosedLoopRunner, EpisodeSpec, build_runner, format_table
from drivepi.sim.generator import generate_scenario_world
from drivepi.sim.layout import LANE_WIDTH
from drivepi.sim.mini_dataset import PRESETS, generate_mini_dataset, scene_seed
from drivepi.sim.scenarios import BENCHMARK_VERSION, HELD_OUT_SEEDS, SCENARIO_TYPES

REPO = Path(__file__).resolve().parents[2]
SENSORS = PRESETS['default'].sensors


@pytest.fixture(scope='module')
def cl_cfg() -> dict:
    return Config.fromfile(str(REPO / 'configs' / '_base_' / 'closed_loop.py')).closed_loop.to_dict()


@pytest.fixture(scope='module')
def worlds() -> dict:
    """One 15 s benchmark world per scenario type (seeds of the held-out range)."""
    return {name: generate_scenario_world(f'{name}-t', HELD_OUT_SEEDS.start + 500 + k, name, 15.0, SENSORS)
            for k, name in enumerate(SCENARIO_TYPES)}


# ------------------------------------------------------------------ definition and seeds
def test_benchmark_definition_is_complete_and_versioned(cl_cfg):
    episodes = benchmark_episodes(cl_cfg)
    assert cl_cfg['benchmark']['version'] == BENCHMARK_VERSION and len(episodes) >= 40
    counts = {t: sum(e.group == t for e in episodes) for t in SCENARIO_TYPES}
    assert min(counts.values()) >= 5, counts
    assert all(15.0 <= e.seconds <= 20.0 for e in episodes)
    assert {e.agents_mode for e in episodes if e.group == 'crossing_traffic'} == {'idm'}
    demo = benchmark_episodes(dict(cl_cfg, subset='demo'))
    assert sorted(e.group for e in demo) == sorted(SCENARIO_TYPES)  # one episode per scenario type
    assert pickle.loads(pickle.dumps(BenchmarkWorlds(demo))).episodes == BenchmarkWorlds(demo).episodes  # workers


def test_the_two_episode_sets_are_fixed_and_disjoint(cl_cfg):
    first, second = (benchmark_episodes(dict(cl_cfg, subset=name)) for name in ('first', 'second'))
    assert [e.episode_id for e in benchmark_episodes(cl_cfg)] == [e.episode_id for e in first]   # the default
    assert [e.settings['seed'] for e in first] == list(range(900000, 900042))
    assert [e.settings['seed'] for e in second] == list(range(901000, 901042))
    for episodes in (first, second):   # six episodes of every scenario type, in the same order
        assert [e.group for e in episodes] == [t for t in SCENARIO_TYPES for _ in range(6)]
    assert len(benchmark_episodes(dict(cl_cfg, subset=None))) == 84


def test_benchmark_seeds_are_disjoint_from_every_training_set(cl_cfg):
    seeds = {e['seed'] for e in cl_cfg['benchmark']['episodes']}
    assert seeds <= set(HELD_OUT_SEEDS)
    assert not seeds & {scene_seed(0, k) for k in range(40)}  # the mini set and its 40-scene version
    assert scene_seed(HELD_OUT_SEEDS.start // 1000 - 1, 999) < HELD_OUT_SEEDS.start  # every lower dataset seed
    with pytest.raises(ValueError, match='reserved for the closed-loop benchmark'):
        scene_seed(HELD_OUT_SEEDS.start // 1000, 0)
    with pytest.raises(ValueError, match='reserved for the closed-loop benchmark'):
        generate_mini_dataset('/nonexistent/never-written', 2, seed=HELD_OUT_SEEDS.start // 1000, preset='test')
    with pytest.raises(ValueError, match='outside the held-out seed range'):
        generate_scenario_world('w', scene_seed(0, 3), 'straight', 15.0, SENSORS)


@pytest.mark.parametrize('change, message', [
    (dict(version='drivepi-cl-bench-0'), 'version'),
    (dict(episodes=[dict(id='a', seed=HELD_OUT_SEEDS.start, scenario='roundabout', seconds=15.0)]), 'roundabout'),
    (dict(episodes=[dict(id='a', seed=7, scenario='straight', seconds=15.0)]), 'held-out'),
    (dict(episodes=[dict(id='a', seed=HELD_OUT_SEEDS.start, scenario='straight', seconds=15.0)] * 2), 'duplicate'),
])
def test_malformed_benchmark_is_rejected_naming_the_problem(cl_cfg, change, message):
    with pytest.raises(ValueError, match=message):
        benchmark_episodes(dict(cl_cfg, benchmark=dict(cl_cfg['benchmark'], **change)))
    with pytest.raises(ValueError, match="subset 'nope'"):
        benchmark_episodes(dict(cl_cfg, subset='nope'))


# ------------------------------------------------------------------ scenario worlds
def test_scenario_worlds_are_deterministic_per_seed(worlds):
    again = generate_scenario_world('lead_vehicle-t', HELD_OUT_SEEDS.start + 503, 'lead_vehicle', 15.0, SENSORS)
    assert json.dumps(again.to_dict()) == json.dumps(worlds['lead_vehicle'].to_dict())
    other = generate_scenario_world('lead_vehicle-t', HELD_OUT_SEEDS.start + 504, 'lead_vehicle', 15.0, SENSORS)
    assert not np.allclose(other.ego_track[:5], again.ego_track[:5])
    assert again.meta['benchmark_version'] == BENCHMARK_VERSION and again.meta['scenario'] == 'lead_vehicle'


def _element(world) -> list:
    """The scenario's defining agents (the first ones of the world)."""
    return [a for a in world.agents if a['token'] in world.meta['scenario_agents']]


def _route(world):
    return shapely.LineString(world.ego_track[:, :2])


def _heading_change(world, seconds=15.0) -> float:
    yaw = np.unwrap(world.ego_track[:, 2])
    return float(np.rad2deg(yaw[np.searchsorted(world.times, seconds)] - yaw[0]))


def test_turn_and_straight_worlds_turn_as_named(worlds):
    assert abs(_heading_change(worlds['straight'])) < 3.0
    assert _heading_change(worlds['left_turn']) == pytest.approx(90.0, abs=5.0)
    assert _heading_change(worlds['right_turn']) == pytest.approx(-90.0, abs=5.0)
    assert all(not _element(w) for name, w in worlds.items() if name in ('straight', 'left_turn', 'right_turn'))


def test_lead_vehicle_is_ahead_in_the_ego_lane_and_slow_or_stopped(worlds):
    world = worlds['lead_vehicle']
    (lead,) = _element(world)
    x, y, yaw, _ = world.ego_track[0]
    offset = lead['states'][0, :2] - [x, y]
    ahead, lateral = offset @ [np.cos(yaw), np.sin(yaw)], offset @ [-np.sin(yaw), np.cos(yaw)]
    assert 10.0 < ahead < 90.0 and abs(lateral) < 0.3
    assert np.linalg.norm(lead['states'][:, 4:6], axis=1).max() <= 4.0 + 1e-6
    assert world.ego_track[:, 3].min() < 4.5   # the expert slows down behind it


def test_pedestrian_crosses_the_ego_route_and_the_expert_yields(worlds):
    world = worlds['pedestrian_crossing']
    (ped,) = _element(world)
    assert ped['category'] == 'human.pedestrian.adult'
    walk = shapely.LineString(ped['states'][:, :2])
    assert walk.intersects(_route(world))
    # when the pedestrian is on the route, the ego is stopped or still before the crossing point
    on_route = np.flatnonzero(shapely.distance(_route(world), shapely.points(ped['states'][:, :2])) < 0.5)
    crossing = shapely.line_locate_point(_route(world), shapely.intersection(walk, _route(world)))
    ego_along = shapely.line_locate_point(_route(world), shapely.points(world.ego_track[on_route, :2]))
    assert len(on_route) and np.all(ego_along < crossing - 3.0)


def test_parked_cars_reach_into_the_ego_lane(worlds):
    world = worlds['parked_cars']
    cars = _element(world)
    assert len(cars) >= 2 and all(c['attribute'] == 'vehicle.parked' for c in cars)
    # the ego lane before the expert swerves: its first metres, extended along its heading
    x, y, yaw, _ = world.ego_track[0]
    lane = shapely.LineString([(x, y), (x + 200 * np.cos(yaw), y + 200 * np.sin(yaw))])
    for car in cars:
        cx, cy, _, yaw_c = car['states'][0, :4]
        footprint = shapely.affinity.rotate(shapely.box(cx - car['size'][0] / 2, cy - car['size'][1] / 2,
                                                        cx + car['size'][0] / 2, cy + car['size'][1] / 2),
                                            yaw_c, origin=(cx, cy), use_radians=True)
        assert footprint.intersects(lane.buffer(LANE_WIDTH / 2 - 0.8))  # >= 0.8 m into the 3.5 m lane
        assert not footprint.intersects(lane.buffer(0.2))


def test_crossing_vehicle_crosses_the_route_at_right_angles_and_the_expert_waits(worlds):
    world = worlds['crossing_traffic']
    (car,) = _element(world)
    path = shapely.LineString(car['states'][:, :2])
    assert car['attribute'] == 'vehicle.moving' and path.intersects(_route(world))
    angle = np.rad2deg(abs(np.angle(np.exp(1j * (car['states'][0, 3] - world.ego_track[0, 2])))))
    assert angle == pytest.approx(90.0, abs=5.0)
    assert world.ego_track[:, 3].min() < 3.0


def test_expert_drives_the_demo_episodes_comfortably_and_safely(cl_cfg, tmp_path):
    """The generated expert stays inside the comfort bounds it is scored on (one episode per scenario type)."""
    cfg = dict(cl_cfg, subset='demo')
    episodes = benchmark_episodes(cfg)
    summary = build_runner(cfg, tmp_path).run(episodes, BenchmarkWorlds(episodes), {'expert': ExpertPlanner()})
    for episode_id, record in summary['episodes']['expert'].items():
        log = json.loads((tmp_path / 'episodes' / 'expert' / f'{episode_id}.json').read_text())
        assert log['metrics']['comfort'] == 1.0, (episode_id, [e for e in log['events'] if e['type'] == 'discomfort'])
        assert log['metrics']['nc'] == log['metrics']['dac'] == log['metrics']['ddc'] == 1.0, episode_id
    assert summary['groups']['expert'][OVERALL]['comfort'] == pytest.approx(dict(mean=1.0, low=1.0, high=1.0))


# ------------------------------------------------------------------ runner: groups, workers, resume
class DriftRightPlanner:
    """Keeps its speed but steers off the road to the right."""

    def plan(self, ctx):
        t = 0.5 * np.arange(1, 7)
        return np.stack([ctx.ego.v * t, -0.6 * t ** 2], axis=1)


HAND_MADE = [EpisodeSpec('perfect', 'perfect', 6.0, group='easy'), EpisodeSpec('crash', 'crash', 6.0, group='hard'),
             EpisodeSpec('busy', 'busy', 6.0, group='hard')]


def test_grouped_scores_of_hand_made_episodes_have_known_answers(tmp_path):
    runner = ClosedLoopRunner(EpisodeRunner(), tmp_path)
    summary = runner.run(HAND_MADE, make_scene, {'cv': ConstantVelocityPlanner(), 'drift': DriftRightPlanner()})
    cv, drift = summary['groups']['cv'], summary['groups']['drift']
    assert list(cv) == ['easy', 'hard', OVERALL]
    assert cv['easy']['pdms'] == pytest.approx(dict(mean=1.0, low=1.0, high=1.0))           # perfect episode
    crash = json.loads((tmp_path / 'episodes' / 'cv' / 'crash.json').read_text())['metrics']
    assert crash['nc'] == 0.0 and crash['pdms'] == 0.0                        # collision episode
    assert cv['hard']['nc']['mean'] == 0.5 and cv[OVERALL]['nc']['mean'] == pytest.approx(2 / 3)
    assert cv['hard']['collisions_per_km']['mean'] == pytest.approx(
        1.0 / (sum(json.loads((tmp_path / 'episodes' / 'cv' / f'{e}.json').read_text())['metrics']['distance_m']
                   for e in ('crash', 'busy')) / 1000.0))
    assert drift[OVERALL]['dac'] == pytest.approx(dict(mean=0.0, low=0.0, high=0.0))       # off-road episodes
    assert drift[OVERALL]['pdms']['mean'] == 0.0
    table = format_table(summary)
    rows = [[c.strip() for c in line.split('|')] for line in table.splitlines() if '|' in line]
    assert rows[0][:3] == ['planner', 'group', 'pdms'] and ['cv', 'easy', '1.000 [1.00, 1.00]'] == rows[1][:3]


def test_parallel_run_equals_serial_run_and_resumes(tmp_path):
    planners = {'expert': ExpertPlanner(), 'cv': ConstantVelocityPlanner()}
    serial = ClosedLoopRunner(EpisodeRunner(), tmp_path / 'serial').run(HAND_MADE, make_scene, planners)
    parallel_runner = ClosedLoopRunner(EpisodeRunner(), tmp_path / 'parallel')
    parallel = parallel_runner.run(HAND_MADE, make_scene, planners, workers=2)
    assert parallel == serial
    for path in sorted((tmp_path / 'serial' / 'episodes').glob('*/*.json')):
        assert path.read_bytes() == (tmp_path / 'parallel' / path.relative_to(tmp_path / 'serial')).read_bytes()
    # resume: only the deleted episode runs again
    logs = sorted((tmp_path / 'parallel' / 'episodes').glob('*/*.json'))
    stamps = {p: p.stat().st_mtime_ns for p in logs}
    (tmp_path / 'parallel' / 'episodes' / 'cv' / 'busy.json').unlink()
    assert parallel_runner.run(HAND_MADE, make_scene, planners, workers=2) == serial
    changed = [p.name for p in logs if p.stat().st_mtime_ns != stamps[p]]
    assert changed == ['busy.json'] and (tmp_path / 'parallel' / 'episodes' / 'cv' / 'busy.json').is_file()

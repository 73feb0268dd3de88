"""Deterministic generation of one :class:`~drivepi.sim.world.SceneWorld` from a seed.

A random street grid (rotated and shifted into the global frame), block interiors filled with
buildings, trees, bushes and street lights, then traffic (:mod:`drivepi.sim.traffic`) and the ego
route, whose intersection actions are given so that a dataset covers left, right and straight.
"""
import numpy as np

from drivepi.sim import layout, scenarios
from drivepi.sim.geometry import pose2d_matrix, transform_boxes, wrap_angle
from drivepi.sim.nuscenes_export import token
from drivepi.sim.traffic import TrafficBuilder
from drivepi.sim.world import OCC_CLASSES, SceneWorld, SensorSetup, Solids

MANMADE, VEGETATION, SIDEWALK = (OCC_CLASSES.index(n) for n in ('manmade', 'vegetation', 'sidewalk'))
TRACK_DT = 0.05   # s between track samples (the 20 Hz LiDAR rate)
# agent counts per scene: (builder method, args, count)
TRAFFIC_MIX = (('moving_vehicle', ('vehicle.car', (5, 12)), 14), ('moving_vehicle', ('vehicle.truck', (4, 9)), 3),
               ('moving_vehicle', ('vehicle.bus.rigid', (4, 8)), 2),
               ('moving_vehicle', ('vehicle.bicycle', (3, 5.5)), 3),
               ('moving_vehicle', ('vehicle.motorcycle', (5, 11)), 2),
               ('parked', ('vehicle.car', 'vehicle.parked', None), 22),
               ('parked', ('vehicle.truck', 'vehicle.parked', None), 3),
               ('parked', ('vehicle.trailer', 'vehicle.parked', None), 1),
               ('parked', ('vehicle.construction', 'vehicle.parked', None), 1),
               ('parked', ('vehicle.bicycle', 'cycle.without_rider', 8.4), 3),
               ('pedestrian_walk', (), 16), ('pedestrian_crossing', (), 6), ('pedestrian_standing', (), 8),
               ('work_zone', (), 2))


def generate_world(name: str, seed: int, num_keyframes: int, ego_actions: list, sensors: SensorSetup,
                   num_roads: int = 4, block: float = 80.0, start_timestamp_us: int = 1_600_000_000_000_000,
                   keyframe_interval: float = 0.5, ego_lead_in: tuple = (15.0, 35.0),
                   scenario: str = None) -> SceneWorld:
    """Build one scene.

    Args:
        ego_actions: intersection actions of the ego route ('left' / 'right' / 'straight').
        ego_lead_in: (min, max) metres the ego starts before its first intersection.
        num_keyframes: keyframes at ``keyframe_interval`` s; tracks cover them plus 3.5 s (the
            planning horizon) at ``TRACK_DT`` steps.
        scenario: a scenario type of :mod:`drivepi.sim.scenarios` (None: a free mini-dataset scene):
            its cruise speed, no random ego stop, its route and its defining element.
    """
    spec = scenarios.scenario(scenario) if scenario is not None else None
    rng = np.random.default_rng(seed)
    grid2global = pose2d_matrix(rng.uniform(300, 1500), rng.uniform(300, 1500), rng.uniform(-np.pi, np.pi))
    grid = layout.RoadGrid.make(num_roads, block, grid2global)
    duration = (num_keyframes - 1) * keyframe_interval + 3.5
    traffic = TrafficBuilder(grid, rng, duration, TRACK_DT)
    cruise = float(rng.uniform(*(spec.cruise if spec else (5.0, 11.0))))
    ego = traffic.ego(cruise=cruise, actions=ego_actions, stop=rng.random() < 0.3 and spec is None,
                      lead_in=ego_lead_in, scenario=spec)
    for method, args, count in TRAFFIC_MIX:
        for _ in range(count):
            if method == 'moving_vehicle':
                call_args = (args[0], float(rng.uniform(*args[1])), rng.random() < 0.25)
            else:
                call_args = args
            getattr(traffic, method)(*call_args)
    static = _static_solids(grid, rng)
    track = ego['track']
    ego_track = np.c_[_to_global_xy(grid2global, track['xy']), wrap_angle(track['yaw'] + _yaw(grid2global)),
                      track['speed']]
    agents = [_agent_record(a, grid2global, rng, name, k) for k, a in enumerate(traffic.agents)]
    keyframe_times = np.arange(num_keyframes) * keyframe_interval
    meta = dict(seed=int(seed), ego_actions=list(ego['actions']), num_roads=num_roads, block=block)
    if spec is not None:   # the scenario's own agents come first in traffic.agents
        meta.update(scenario=scenario, benchmark_version=scenarios.BENCHMARK_VERSION,
                    scenario_agents=[token(name, 'instance', k) for k in range(traffic.num_scenario_agents)])
    return SceneWorld(name, grid, static, track['t'], ego_track, agents, keyframe_times,
                      int(start_timestamp_us), sensors, meta)


def generate_scenario_world(name: str, seed: int, scenario: str, seconds: float, sensors: SensorSetup,
                            start_timestamp_us: int = 1_700_000_000_000_000) -> SceneWorld:
    """A closed-loop benchmark world: scenario type ``scenario`` (:mod:`drivepi.sim.scenarios`) from
    ``seed``, long enough to drive ``seconds`` s (plus the 3 s planning horizon), on a
    ``BENCHMARK_GRID_ROADS``-street grid.

    Raises:
        ValueError: ``seed`` is outside :data:`~drivepi.sim.scenarios.HELD_OUT_SEEDS` (it could be a training
            world's) or ``scenario`` is unknown.
    """
    if seed not in scenarios.HELD_OUT_SEEDS:
        raise ValueError(f'benchmark world {name}: seed {seed} is outside the held-out seed range '
                         f'[{scenarios.HELD_OUT_SEEDS.start}, {scenarios.HELD_OUT_SEEDS.stop})')
    spec = scenarios.scenario(scenario)
    num_keyframes = int(np.ceil(seconds / 0.5)) + 1
    return generate_world(name, seed, num_keyframes, list(spec.actions), sensors,
                          num_roads=scenarios.BENCHMARK_GRID_ROADS, start_timestamp_us=start_timestamp_us,
                          ego_lead_in=spec.lead_in, scenario=scenario)


def _yaw(mat: np.ndarray) -> float:
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def _to_global_xy(mat: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ mat[:2, :2].T + mat[:2, 3]


def _agent_record(agent: dict, grid2global: np.ndarray, rng, scene: str, k: int) -> dict:
    """World-file record of accepted agent ``k``: global states, deterministic token, body colour."""
    track = agent['track']
    vel = track['velocity'] @ grid2global[:2, :2].T
    states = np.c_[_to_global_xy(grid2global, track['xy']), agent['z'],
                   wrap_angle(track['yaw'] + _yaw(grid2global)), vel]
    return dict(token=token(scene, 'instance', k), category=agent['category'], attribute=agent['attribute'],
                size=list(agent['size']), colour=rng.uniform(0.15, 0.9, 3).tolist(), states=states)


def _static_solids(grid: layout.RoadGrid, rng) -> Solids:
    """Sidewalk slabs, street lights, trees, bushes and buildings (global frame)."""
    boxes, labels, colours = [], [], []

    def add(box, label, colour):
        boxes.append(box)
        labels.append(label)
        colours.append(colour)

    for box in layout.sidewalk_boxes(grid):
        add(box, SIDEWALK, (0.62, 0.6, 0.57))
    blocks = grid.blocks()
    for bx in blocks:
        for by in blocks:
            _fill_block(bx, by, rng, add)
    return Solids(transform_boxes(grid.grid2global, np.array(boxes)), np.array(labels, np.uint8),
                  np.array(colours, float), np.full(len(boxes), -1, np.int64))


def _fill_block(bx: tuple, by: tuple, rng, add) -> None:
    """Trees and lights along the block edge, buildings (set back 5 m) and bushes inside."""
    (x0, x1), (y0, y1) = bx, by
    if x1 - x0 < 12 or y1 - y0 < 12:
        return
    edge = [(x, y0 + 1.5) for x in np.arange(x0 + 3, x1 - 3, rng.uniform(7, 12))] + \
           [(x, y1 - 1.5) for x in np.arange(x0 + 3, x1 - 3, rng.uniform(7, 12))] + \
           [(x0 + 1.5, y) for y in np.arange(y0 + 3, y1 - 3, rng.uniform(7, 12))] + \
           [(x1 - 1.5, y) for y in np.arange(y0 + 3, y1 - 3, rng.uniform(7, 12))]
    for x, y in edge:
        r = rng.random()
        if r < 0.5:
            crown, top = rng.uniform(2.5, 4.0), rng.uniform(5, 8)
            add([x, y, 0, 0.35, 0.35, top - crown * 0.6, 0], VEGETATION, (0.35, 0.25, 0.15))
            add([x, y, top - crown, crown, crown, crown, rng.uniform(0, 1.5)], VEGETATION,
                (0.15, rng.uniform(0.35, 0.55), 0.12))
        elif r < 0.7:
            add([x, y, 0, 0.25, 0.25, rng.uniform(6, 8), 0], MANMADE, (0.4, 0.4, 0.42))
    inner = (x0 + 5, x1 - 5), (y0 + 5, y1 - 5)
    for _ in range(int(rng.integers(1, 5))):
        w, d = rng.uniform(10, 24, 2)
        if inner[0][1] - inner[0][0] < w or inner[1][1] - inner[1][0] < d:
            continue
        cx = rng.uniform(inner[0][0] + w / 2, inner[0][1] - w / 2)
        cy = rng.uniform(inner[1][0] + d / 2, inner[1][1] - d / 2)
        shade = rng.uniform(0.45, 0.8)
        add([cx, cy, 0, w, d, rng.uniform(5, 25), 0], MANMADE, (shade, shade * 0.95, shade * 0.85))
    for _ in range(int(rng.integers(2, 6))):
        add([rng.uniform(x0 + 2, x1 - 2), rng.uniform(y0 + 2, y1 - 2), 0, *rng.uniform(1, 3, 2),
             rng.uniform(0.6, 1.4), rng.uniform(0, np.pi)], VEGETATION, (0.2, 0.45, 0.15))

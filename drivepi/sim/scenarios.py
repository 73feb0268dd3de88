"""Scenario control of the mini-world generator: the closed-loop benchmark's scenario types.

A :class:`Scenario` fixes the ego route (intersection actions, lead-in, cruise speed) and places the
scenario's defining element on it (:class:`Element`): agents (accepted before any background traffic) and
what the logged expert reacts to (a :class:`~drivepi.sim.motion.Obstacle` on its path, or a path
shifted around parked cars). Everything is in the grid frame and drawn from the builder's random
generator, so a world is a function of (seed, scenario type) for a given :data:`BENCHMARK_VERSION`.

Seeds: benchmark worlds use seeds in :data:`HELD_OUT_SEEDS`, which the mini-dataset generator refuses
(:func:`drivepi.sim.mini_dataset.scene_seed`), so no benchmark world is ever a training world.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import shapely

from drivepi.sim.layout import LANE_WIDTH, ground_height
from drivepi.sim.motion import DriveProfile, Obstacle, Path, drive, offset_path, resample
from drivepi.sim.traffic import EGO_FRONT, EGO_SIZE, fillet_path, route_corners

# Bump when a change of drivepi.sim changes the benchmark worlds; the benchmark config must name it.
BENCHMARK_VERSION = 'drivepi-cl-bench-1'
HELD_OUT_SEEDS = range(900_000, 1_000_000)   # world seeds reserved for the benchmark (never trained on)
BENCHMARK_GRID_ROADS = 5                       # 5 x 5 streets: long routes in every direction
PEDESTRIAN = 'human.pedestrian.adult'
COMFORT_DECEL = 1.0   # m/s^2: elements ahead of the ego leave it room to slow down at this rate


@dataclass
class Element:
    """What a scenario adds: ``agents`` (keyword arguments of ``TrafficBuilder.add_agent``), the
    ``obstacle`` the expert stays behind, and a ``path`` replacing the ego route (None: unchanged)."""
    agents: list = field(default_factory=list)
    obstacle: Optional[Obstacle] = None
    path: Optional[Path] = None


@dataclass(frozen=True)
class Scenario:
    """One scenario type: ego ``actions`` at its first intersections, ``lead_in`` (m, range) before the
    first one, ``cruise`` (m/s, range) and ``element(builder, path, free_track) -> Element`` (None: none)."""
    name: str
    actions: tuple
    lead_in: tuple
    cruise: tuple = (7.0, 10.0)
    element: Optional[Callable] = None

    @property
    def num_actions(self) -> int:
        return len(self.actions)

    def place(self, builder, path: Path, free: dict) -> Optional[Element]:
        """The defining element on the ego ``path``, timed by the ego's track ``free`` driven without it."""
        return self.element(builder, path, free) if self.element else None


def _time_at(track: dict, s: float) -> float:
    """First time (s) the track reaches arc length ``s`` (its end time if it never does)."""
    reached = np.flatnonzero(track['s'] >= s)
    return float(track['t'][reached[0]] if len(reached) else track['t'][-1])


def lead_vehicle(builder, path: Path, free: dict) -> Element:
    """A car ahead in the ego lane, stopped (a stalled car, whole scene) or slow (2-4 m/s), far enough for the
    ego to slow down comfortably; the expert follows it."""
    rng = builder.rng
    size = builder._size('vehicle.car')
    slow = bool(rng.random() < 0.5)
    speed = float(rng.uniform(2.0, 4.0)) if slow else 0.0
    room = (free['speed'][0] ** 2 - speed ** 2) / (2 * COMFORT_DECEL)   # m the ego needs to slow down
    start = float(free['s'][0] + room + rng.uniform(10.0, 25.0))
    track = drive(path, DriveProfile(cruise=max(speed, 1e-3), start_s=start, start_speed=speed, accel=0.8,
                                     jerk=1.0, brake_to_end=True), builder.duration, builder.dt)
    obstacle = Obstacle(track['s'] - size[0] / 2 - EGO_FRONT, track['speed'])
    agent = dict(category='vehicle.car', track=track, z=np.zeros(len(track['t'])), size=size,
                 attribute='vehicle.moving' if slow else 'vehicle.stopped')
    return Element([agent], obstacle)


def crossing_pedestrian(builder, path: Path, free: dict) -> Element:
    """A pedestrian crossing the street mid-block from one sidewalk to the other, stepping onto the road
    when the ego is 35-50 m away; the expert yields until the pedestrian has left its lane."""
    rng = builder.rng
    s_cross = float(free['s'][0] + rng.uniform(35.0, 45.0))
    (point,), (yaw,) = path.sample(np.array([s_cross]))
    left = np.array([-np.sin(yaw), np.cos(yaw)])
    centreline = point + left * LANE_WIDTH / 2            # the ego path is the lane centre, right of it
    side = float(rng.choice([-1.0, 1.0]))                  # start on the right (-1) or left (+1) sidewalk
    ped_path = resample(np.array([centreline + side * 7.5 * left, centreline - side * 7.5 * left]))
    walk = float(rng.uniform(1.2, 1.6))

    def lateral(s_ped: np.ndarray) -> np.ndarray:
        """(N,) m left of the ego path of the pedestrian at its arc lengths ``s_ped`` (N,)."""
        return (ped_path.sample(s_ped)[0] - point) @ left

    active_zone = 3.5
    enter = float(ped_path.s[np.flatnonzero(np.abs(lateral(ped_path.s)) < active_zone)[0]])
    t_enter = _time_at(free, s_cross - rng.uniform(35.0, 50.0))
    wait = t_enter - enter / walk
    profile = DriveProfile(cruise=walk, accel=0.8, start_s=max(0.0, -wait * walk),
                           start_speed=walk if wait <= 0 else 0.0, stops=((0.0, wait),) if wait > 0 else ())
    track = drive(ped_path, profile, builder.duration, builder.dt)
    active = np.abs(lateral(track['s'])) < active_zone
    stop_at = s_cross - 0.4 - EGO_FRONT - 1.0
    obstacle = Obstacle(np.where(active, stop_at, np.inf), np.zeros(len(active)), min_gap=1.5)
    agent = dict(category=PEDESTRIAN, track=track, z=ground_height(builder.grid, track['xy']),
                 attribute='pedestrian.moving')
    return Element([agent], obstacle)


def parked_in_lane(builder, path: Path, free: dict) -> Element:
    """Two or three cars parked badly, reaching 0.9-1.3 m into the ego lane on its right (a car keeping to
    its lane centre would hit them); the expert shifts left around them (smooth 12 m ramps), over the
    centreline."""
    rng = builder.rng
    intrusion = float(rng.uniform(0.9, 1.3))
    first = float(free['s'][0] + rng.uniform(18.0, 24.0))
    agents, along = [], first
    for _ in range(int(rng.integers(2, 4))):
        size = builder._size('vehicle.car')
        (point,), (yaw,) = path.sample(np.array([along + size[0] / 2]))
        right = np.array([np.sin(yaw), -np.cos(yaw)])
        xy = point + right * (LANE_WIDTH / 2 - intrusion + size[1] / 2)
        track = builder.still_track(xy, float(yaw))
        agents.append(dict(category='vehicle.car', track=track, z=np.zeros(len(track['t'])), size=size,
                           attribute='vehicle.parked'))
        along += size[0] + float(rng.uniform(1.5, 3.0))
    shift, ramp = intrusion + 0.35, 12.0

    def offset(s):
        up = np.clip((s - (first - 3.0 - ramp)) / ramp, 0, 1)
        down = np.clip(((along + 3.0 + ramp) - s) / ramp, 0, 1)
        return shift * (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down)))

    return Element(agents, path=offset_path(path, offset))


def crossing_vehicle(builder, path: Path, free: dict) -> Element:
    """A car on the crossing street driving straight through the ego's first intersection so that it
    reaches the conflict point 1 s before to 0.5 s after the ego would; the expert yields to it."""
    rng = builder.rng
    node, heading = builder.ego_route_start
    cross_heading = (heading + int(rng.choice([-1, 1]))) % 4
    corners, radii, _ = route_corners(builder.grid, node, cross_heading, 120.0, ['straight'] * 3)
    cross_path = fillet_path(corners, radii)
    hit = shapely.intersection(shapely.LineString(path.points), shapely.LineString(cross_path.points))
    if hit.is_empty:
        raise RuntimeError(f'crossing_vehicle: the crossing street at node {node} misses the ego route')
    hit = shapely.get_coordinates(hit)[0]
    s_ego = float(shapely.line_locate_point(shapely.LineString(path.points), shapely.Point(hit)))
    s_car = float(shapely.line_locate_point(shapely.LineString(cross_path.points), shapely.Point(hit)))
    speed = float(rng.uniform(6.0, 9.0))
    t_conflict = _time_at(free, s_ego - EGO_FRONT) + float(rng.uniform(-1.0, 0.5))
    size = builder._size('vehicle.car')
    track = drive(cross_path, DriveProfile(cruise=speed, start_s=max(0.0, s_car - speed * t_conflict),
                                           start_speed=speed), builder.duration, builder.dt)
    # the expert yields from when the car is 4 s (plus 20 m) before the conflict point until it has passed
    in_conflict = (track['s'] > s_car - 20.0 - 4.0 * speed) & (track['s'] < s_car + size[0] / 2 + EGO_SIZE[1] / 2 + 2.5)
    stop_at = s_ego - size[1] / 2 - EGO_FRONT - 2.0
    obstacle = Obstacle(np.where(in_conflict, stop_at, np.inf), np.zeros(len(in_conflict)), min_gap=1.0)
    agent = dict(category='vehicle.car', track=track, z=np.zeros(len(track['t'])), size=size,
                 attribute='vehicle.moving')
    return Element([agent], obstacle)


SCENARIOS = {s.name: s for s in (
    Scenario('straight', ('straight', 'straight'), (20.0, 40.0)),
    Scenario('left_turn', ('left',), (30.0, 50.0)),
    Scenario('right_turn', ('right',), (30.0, 50.0)),
    Scenario('lead_vehicle', ('straight',), (40.0, 60.0), element=lead_vehicle),
    Scenario('pedestrian_crossing', ('straight',), (60.0, 70.0), element=crossing_pedestrian),
    Scenario('parked_cars', ('straight',), (65.0, 75.0), element=parked_in_lane),
    Scenario('crossing_traffic', ('straight',), (35.0, 55.0), element=crossing_vehicle),
)}
SCENARIO_TYPES = tuple(SCENARIOS)


def scenario(name: str) -> Scenario:
    """The :class:`Scenario` called ``name``.

    Raises:
        ValueError: naming the unknown type and the known ones.
    """
    if name not in SCENARIOS:
        raise ValueError(f'unknown scenario type {name!r}; choose from {SCENARIO_TYPES}')
    return SCENARIOS[name]

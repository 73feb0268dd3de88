"""Traffic of a mini world (grid frame): the ego route and the agents, sampled as tracks.

Vehicles and cyclists follow lanes through the street grid (straight / left / right at each
intersection, right-hand traffic); pedestrians walk sidewalks or cross on zebra crossings;
parked vehicles, standing pedestrians, cones and barriers stand still. Candidates whose footprint
would ever overlap the ego's or an accepted agent's are rejected, so the logged scene is collision free.
"""
import numpy as np

from drivepi.geometry import EGO_LENGTH, EGO_WIDTH
from drivepi.sim.layout import CROSSWALK, LANE_WIDTH, ROAD_HALF_WIDTH, SIDEWALK_OUTER, RoadGrid, ground_height
from drivepi.sim.motion import DriveProfile, Path, drive, fillet_path, resample

# nuScenes category -> (length, width, height) ranges in metres
CATEGORY_SIZES = {
    'vehicle.car': ((4.2, 4.9), (1.8, 2.0), (1.5, 1.8)),
    'vehicle.truck': ((6.0, 8.0), (2.3, 2.6), (2.8, 3.4)),
    'vehicle.bus.rigid': ((10.5, 12.0), (2.8, 3.0), (3.2, 3.6)),
    'vehicle.trailer': ((10.0, 12.0), (2.5, 2.8), (3.5, 3.9)),
    'vehicle.construction': ((5.5, 6.5), (2.5, 2.8), (3.0, 3.4)),
    'vehicle.bicycle': ((1.7, 1.9), (0.6, 0.7), (1.6, 1.8)),
    'vehicle.motorcycle': ((2.0, 2.3), (0.8, 0.9), (1.4, 1.6)),
    'human.pedestrian.adult': ((0.6, 0.8), (0.6, 0.8), (1.6, 1.9)),
    'movable_object.trafficcone': ((0.4, 0.45), (0.4, 0.45), (0.8, 1.0)),
    'movable_object.barrier': ((1.8, 2.2), (0.5, 0.6), (0.9, 1.1)),
}
EGO_SIZE = (EGO_LENGTH, EGO_WIDTH, 1.6)  # l, w, h of the ego car (m)
EGO_REAR_AXLE_OFFSET = 1.0             # box centre ahead of the rear axle (m)
HEADINGS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
ACTIONS = {'straight': 0, 'left': 1, 'right': -1}   # change of heading index
# the generated expert drives like a calm human, inside the closed-loop comfort bounds
# (configs/_base_/closed_loop.py scoring.comfort_bounds): gentle, jerk-limited speed changes and
# curve speeds that keep the yaw rate and lateral acceleration low
EGO_PROFILE = dict(accel=1.2, decel=2.5, lat_accel=1.6, jerk=1.2, response=1.2, brake_to_end=True)
SCENARIO_ATTEMPTS = 10   # placements of a scenario's element tried before giving up
EGO_BORDER_MARGIN = 8.0  # m: the ego route ends this far inside the world border
EGO_FRONT = EGO_REAR_AXLE_OFFSET + EGO_SIZE[0] / 2   # m from the ego's rear axle to its front bumper


def route_corners(grid: RoadGrid, node: tuple, heading: int, lead_in: float, actions: list) -> tuple:
    """Lane polyline corners of a route through the grid.

    Args:
        node: (i, j) index of the first intersection (centre ``(centres[i], centres[j])``).
        heading: index into ``HEADINGS`` of the travel direction towards it.
        lead_in: metres driven before reaching the first intersection.
        actions: action names per intersection; at the grid border the route ends.

    Returns:
        corners (K,2) of the lane line (right of the centreline by half a lane), radii (K-2,), the
        actions actually taken.
    """
    c = grid.centres
    pos = np.array([c[node[0]], c[node[1]]])
    centre_pts, taken = [pos - HEADINGS[heading] * lead_in], []
    for action in actions:
        centre_pts.append(pos.copy())
        new_heading = (heading + ACTIONS[action]) % 4
        nxt = np.array(node) + HEADINGS[new_heading].astype(int)
        if not (0 <= nxt[0] < len(c) and 0 <= nxt[1] < len(c)):
            centre_pts.append(pos + HEADINGS[new_heading] * (grid.half_extent - np.abs(pos).max() + 5))
            taken.append(action)
            heading = new_heading
            break
        node, heading = tuple(nxt), new_heading
        pos = np.array([c[node[0]], c[node[1]]])
        taken.append(action)
    else:
        centre_pts.append(pos)
    headings_in = [_heading_index(b - a) for a, b in zip(centre_pts[:-1], centre_pts[1:])]
    right = lambda h: np.array([HEADINGS[h][1], -HEADINGS[h][0]])  # noqa: E731
    half = LANE_WIDTH / 2
    corners = [centre_pts[0] + half * right(headings_in[0])]
    radii = []
    for k in range(1, len(centre_pts) - 1):
        h_in, h_out = headings_in[k - 1], headings_in[k]
        offset = half * right(h_in) if h_in == h_out else half * (right(h_in) + right(h_out))
        corners.append(centre_pts[k] + offset)
        radii.append(7.5 if (h_out - h_in) % 4 == 1 else 4.0)
    corners.append(centre_pts[-1] + half * right(headings_in[-1]))
    return np.array(corners), radii, taken


def inside_world(path: Path, half_extent: float) -> Path:
    """``path`` cut where it first leaves the square ``[-half_extent, half_extent]^2`` (grid frame)."""
    outside = np.flatnonzero(np.abs(path.points).max(axis=1) > half_extent)
    return path if not len(outside) else resample(path.points[:max(outside[0], 2)])


def _heading_index(d: np.ndarray) -> int:
    return int(np.argmax(HEADINGS @ (d / np.linalg.norm(d))))


class TrafficBuilder:
    """Samples collision-free tracks for the ego and the agents of one scene (grid frame)."""

    def __init__(self, grid: RoadGrid, rng: np.random.Generator, duration: float, dt: float):
        self.grid, self.rng, self.duration, self.dt = grid, rng, duration, dt
        self.circles = []   # accepted footprints: (T, k, 2) centres and (k,) radii
        self.agents = []
        self.ego_xy = None  # (T,2) ego track, set by ego(); agents are placed near it
        self.ego_route_start = None  # (first intersection node, heading) of the ego route, set by ego()
        self.num_scenario_agents = 0  # the first agents are the scenario's defining element

    # ---------------------------------------------------------------- ego
    def ego(self, cruise: float, actions: list, stop: bool, lead_in: tuple = (15.0, 35.0), scenario=None) -> dict:
        """The ego's track (rear-axle pose, grid frame) and the actions it performs; it starts
        ``lead_in`` (range, m) before its first intersection, inside the grid, and drives the human-like
        :data:`EGO_PROFILE`, coming to rest before the route leaves the world.

        ``scenario`` (a :class:`drivepi.sim.scenarios.Scenario`): the route takes every action (it never
        ends at the border first), and the scenario's defining element is placed on it, the ego reacting
        to it; the element's agents are accepted before any other.
        """
        for _ in range(SCENARIO_ATTEMPTS if scenario else 1):
            placed = self._place_ego(cruise, actions, stop, lead_in, scenario)
            if placed is not None:
                return placed
        raise RuntimeError(f'scenario {scenario.name}: its element overlapped the ego in {SCENARIO_ATTEMPTS} '
                           'placements; change the scenario or the seed')

    def _place_ego(self, cruise: float, actions: list, stop: bool, lead_in: tuple, scenario) -> dict:
        """One attempt of :meth:`ego`; None (nothing accepted) when a scenario agent overlaps the ego."""
        if scenario is None:
            start = tuple(self.rng.integers(1, len(self.grid.centres) - 1, size=2)), int(self.rng.integers(4))
        else:   # every action inside the grid, then straight on to the border, long enough to cruise
            actions = list(actions) + ['straight'] * len(self.grid.centres)
            start = self._full_route_start(actions, lead_in, scenario.num_actions, cruise * self.duration)
        self.ego_route_start = start
        path_corners, radii, taken = route_corners(self.grid, *start, self.rng.uniform(*lead_in), actions)
        path = inside_world(fillet_path(path_corners, radii), self.grid.half_extent - EGO_BORDER_MARGIN)
        stops = ((float(self.rng.uniform(8, 25)), float(self.rng.uniform(1.5, 3.0))),) if stop else ()
        profile = DriveProfile(cruise=cruise, stops=stops, **EGO_PROFILE)
        element = scenario.place(self, path, drive(path, profile, self.duration, self.dt)) if scenario else None
        if element is not None:
            path = element.path or path
        track = drive(path, profile, self.duration, self.dt, element.obstacle if element else None)
        num_circles, num_agents = len(self.circles), len(self.agents)
        self._accept(self._box_centres(track, EGO_REAR_AXLE_OFFSET), track['yaw'], EGO_SIZE[:2])
        for agent in element.agents if element else ():
            if not self.add_agent(**agent):
                del self.circles[num_circles:], self.agents[num_agents:]
                return None
        self.ego_xy = track['xy'][::10]
        self.num_scenario_agents = len(self.agents) - num_agents
        return dict(track=track, actions=taken, path=path)

    def _full_route_start(self, actions: list, lead_in: tuple, num_required: int, min_length: float) -> tuple:
        """A random (first intersection node, heading) from which the route takes its first ``num_required``
        ``actions`` inside the grid, starts inside the world for every lead-in in ``lead_in`` (m) and is at
        least ``min_length`` m long."""
        n, limit = len(self.grid.centres), self.grid.half_extent - EGO_BORDER_MARGIN
        starts = []
        for node in [(i, j) for i in range(n) for j in range(n)]:
            for heading in range(4):
                corners, _, taken = route_corners(self.grid, node, heading, lead_in[0], actions)
                first = corners[0] - HEADINGS[heading] * (lead_in[1] - lead_in[0])
                length = np.linalg.norm(np.diff(corners, axis=0), axis=1).sum()
                long_enough = length - 2 * EGO_BORDER_MARGIN > min_length
                if len(taken) > num_required and np.abs(first).max() < limit and long_enough:
                    starts.append((node, heading))
        if not starts:
            raise ValueError(f'no route of {min_length:.0f} m in a {n}x{n} street grid takes the actions '
                             f'{actions[:num_required]}; use a larger grid')
        return starts[int(self.rng.integers(len(starts)))]

    # ---------------------------------------------------------------- agents
    def add_agent(self, category: str, track: dict, z: np.ndarray, attribute: str, size=None) -> bool:
        """Accept an agent if its footprint never overlaps an accepted one; returns whether it was."""
        size = size if size is not None else self._size(category)
        if not self._free(track['xy'], track['yaw'], size[:2]):
            return False
        self._accept(track['xy'], track['yaw'], size[:2])
        self.agents.append(dict(category=category, size=size, track=track, z=z, attribute=attribute))
        return True

    def moving_vehicle(self, category: str, cruise: float, stop: bool) -> bool:
        c = self.grid.centres
        nodes = [(i, j) for i in range(len(c)) for j in range(len(c)) if self._near_ego((c[i], c[j]), 100.0)]
        node = nodes[int(self.rng.integers(len(nodes)))]
        actions = list(self.rng.choice(list(ACTIONS), size=4, p=[0.5, 0.25, 0.25]))
        corners, radii, _ = route_corners(self.grid, node, int(self.rng.integers(4)),
                                          self.rng.uniform(10, 70), actions)
        path = fillet_path(corners, radii)
        stops = ((float(self.rng.uniform(5, 40)), float(self.rng.uniform(1, 4))),) if stop else ()
        track = drive(path, DriveProfile(cruise=cruise, stops=stops), self.duration, self.dt)
        moving = track['speed'].max() > 0.1
        attr = 'cycle.with_rider' if category in ('vehicle.bicycle', 'vehicle.motorcycle') else (
            'vehicle.moving' if moving else 'vehicle.stopped')
        return self.add_agent(category, track, np.zeros(len(track['t'])), attr)

    def parked(self, category: str, attribute: str, lateral: float = None, along_margin: float = 12.0) -> bool:
        """A still object ``lateral`` m right of a random street's centreline, aligned with it
        (``None``: in the parking strip, 0.25 m off the kerb)."""
        size = self._size(category)
        if lateral is None:
            lateral = ROAD_HALF_WIDTH - 0.25 - size[1] / 2
        axis, c, along, direction = self._street_spot(along_margin)
        xy, yaw = self._street_point(axis, c, along, direction, lateral)
        return self._still(category, attribute, xy, yaw, size)

    def pedestrian_walk(self) -> bool:
        axis, c, along, direction = self._street_spot(SIDEWALK_OUTER)
        lat = self.rng.uniform(ROAD_HALF_WIDTH + 0.8, SIDEWALK_OUTER - 0.6)
        a, yaw = self._street_point(axis, c, along, direction, lat)
        path = resample(np.array([a, a + 60 * np.array([np.cos(yaw), np.sin(yaw)])]))
        track = drive(path, DriveProfile(cruise=self.rng.uniform(1.0, 1.6), accel=0.8),
                      self.duration, self.dt)
        return self.add_agent('human.pedestrian.adult', track, ground_height(self.grid, track['xy']),
                              'pedestrian.moving')

    def pedestrian_crossing(self) -> bool:
        """A pedestrian walking the sidewalk onto a zebra crossing and across the street."""
        axis, street, along, _ = self._street_spot(0.0)
        cross = self.grid.centres[np.argmin(np.abs(self.grid.centres - along))]
        along = cross + self.rng.choice([-1, 1]) * np.mean(CROSSWALK)
        side = self.rng.choice([-1, 1])
        pts = [(along + side * self.rng.uniform(3, 10) * np.sign(along - cross), side * 7.5),
               (along, side * 7.5), (along, -side * 7.5),
               (along, -side * 8.0)]
        pts = np.array([[a, street + lat] if axis == 0 else [street + lat, a] for a, lat in pts])
        path = resample(pts)
        start = float(self.rng.uniform(0, 4))
        track = drive(path, DriveProfile(cruise=self.rng.uniform(1.1, 1.7), accel=0.8, start_s=start),
                      self.duration, self.dt)
        return self.add_agent('human.pedestrian.adult', track, ground_height(self.grid, track['xy']),
                              'pedestrian.moving')

    def pedestrian_standing(self) -> bool:
        axis, c, along, direction = self._street_spot(SIDEWALK_OUTER)
        xy, yaw = self._street_point(axis, c, along, direction, self.rng.uniform(6.6, 8.5))
        return self._still('human.pedestrian.adult', 'pedestrian.standing', xy, yaw)

    def work_zone(self) -> int:
        """Cones along a parking strip and barriers behind them; returns how many were placed."""
        axis, c, along, direction = self._street_spot(20.0)
        placed = 0
        for k in range(int(self.rng.integers(4, 8))):
            xy, yaw = self._street_point(axis, c, along + 2.5 * k * direction, direction, 3.9)
            placed += self._still('movable_object.trafficcone', '', xy, yaw)
        for k in range(int(self.rng.integers(2, 4))):
            xy, yaw = self._street_point(axis, c, along + 2.3 * k * direction, direction, 5.2)
            placed += self._still('movable_object.barrier', '', xy, yaw)
        return placed

    # ---------------------------------------------------------------- helpers
    def _still(self, category, attribute, xy, yaw, size=None) -> bool:
        """A still agent standing on the ground (kerb height on sidewalks)."""
        track = self.still_track(xy, yaw)
        z = float(ground_height(self.grid, xy[None])[0])
        return self.add_agent(category, track, np.full(len(track['t']), z), attribute, size)

    def still_track(self, xy: np.ndarray, yaw: float) -> dict:
        """Track of something standing at ``xy`` (2,) facing ``yaw`` for the whole scene."""
        steps = int(round(self.duration / self.dt)) + 1
        return dict(t=np.arange(steps) * self.dt, xy=np.repeat(xy[None], steps, 0),
                    yaw=np.full(steps, yaw), speed=np.zeros(steps), velocity=np.zeros((steps, 2)))

    def _street_spot(self, margin: float, near: float = 60.0, tries: int = 30) -> tuple:
        """Random (axis, centreline, along position, direction) on a street, ``margin`` m off crossings
        and (if possible within ``tries``) within ``near`` m of the ego's route."""
        segments = [s for s in self.grid.segments(margin) if s[1] - s[0] > 4]
        for _ in range(tries):
            lo, hi = segments[int(self.rng.integers(len(segments)))]
            lo, hi = max(lo, -self.grid.half_extent + 5), min(hi, self.grid.half_extent - 5)
            spot = (int(self.rng.integers(2)), float(self.rng.choice(self.grid.centres)),
                    float(self.rng.uniform(lo, hi)), int(self.rng.choice([-1, 1])))
            xy = (spot[2], spot[1]) if spot[0] == 0 else (spot[1], spot[2])
            if self._near_ego(xy, near):
                break
        return spot

    def _near_ego(self, xy, radius: float) -> bool:
        return self.ego_xy is None or bool(np.min(np.linalg.norm(self.ego_xy - np.asarray(xy), axis=1)) <= radius)

    @staticmethod
    def _street_point(axis, c, along, direction, lateral) -> tuple:
        """Grid-frame (xy, yaw) of a point ``lateral`` m right of the centreline, facing ``direction``."""
        lat = -direction * lateral
        xy = np.array([along, c + lat]) if axis == 0 else np.array([c - lat, along])
        yaw = (0.0 if direction > 0 else np.pi) if axis == 0 else (np.pi / 2 if direction > 0 else -np.pi / 2)
        return xy, yaw

    def _size(self, category: str) -> tuple:
        return tuple(float(self.rng.uniform(*r)) for r in CATEGORY_SIZES[category])

    @staticmethod
    def _box_centres(track: dict, offset: float) -> np.ndarray:
        return track['xy'] + offset * np.stack([np.cos(track['yaw']), np.sin(track['yaw'])], -1)

    @staticmethod
    def _footprint(xy, yaw, lw) -> tuple:
        """Circles covering an l x w footprint: centres (T,k,2) and radius."""
        length, width = lw
        k = max(1, int(np.ceil(length / width)))
        offsets = (np.arange(k) + 0.5) / k * length - length / 2
        fwd = np.stack([np.cos(yaw), np.sin(yaw)], -1)
        centres = xy[:, None] + offsets[None, :, None] * fwd[:, None]
        return centres, np.full(k, np.hypot(length / (2 * k), width / 2))

    def _free(self, xy, yaw, lw, margin: float = 0.4) -> bool:
        if not self.circles:
            return True
        centres, radii = self._footprint(xy, yaw, lw)
        other_c = np.concatenate([c for c, _ in self.circles], axis=1)
        other_r = np.concatenate([r for _, r in self.circles])
        d = np.linalg.norm(centres[:, :, None] - other_c[:, None], axis=-1)
        return bool(np.all(d > radii[None, :, None] + other_r[None, None] + margin))

    def _accept(self, xy, yaw, lw) -> None:
        self.circles.append(self._footprint(xy, yaw, lw))
